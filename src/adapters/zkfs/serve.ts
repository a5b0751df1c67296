/**
 * A mount's whole life in this process: connect, check (or create) the
 * ZooKeeper path, mount with FUSE, record the mount in the run directory,
 * then wait until asked to stop or until someone unmounts it, flush what is
 * still buffered, unmount, and close the session.
 */
import { OperationError } from '../../core/errors.js';
import { sessionIdentities } from '../../core/zkfs/acl.js';
import { type CoherenceOptions, resolveCoherenceOptions } from '../../core/zkfs/coherence-options.js';
import type { ResolvedMountOptions } from '../../core/zkfs/mount-options.js';
import { zkChild } from '../../core/zkfs/paths.js';
import { run } from '../exec.js';
import { type FuseMount, mountFuse } from '../fuse.js';
import type { Logger } from '../logger.js';
import { mountAt, readMountTable } from '../mountinfo.js';
import { isZkError, type ZkApi } from '../zookeeper.js';
import { KernelNotifier } from './kernel-notify.js';
import { PageStore } from './page-store.js';
import { removeMountRecord, writeMountRecord } from './run-state.js';
import { ZkSession } from './session.js';
import {
  collectStatus,
  removeDeadStatusSockets,
  type StatusServer,
  serveStatus,
  statusSocketPath,
} from './status-socket.js';
import { ZkVfs } from './vfs.js';
import { WatchedTree } from './watch-cache.js';

/** The mount table type of every zkfs mount (`fuse.<subtype>`). */
export const ZKFS_FSTYPE = 'fuse.zkfs';
export const ZKFS_SUBTYPE = 'zkfs';

export interface ServeOptions {
  resolved: ResolvedMountOptions;
  dir: string;
  auth?: { user: string; password: string } | undefined;
  /** Create the ZooKeeper path when it does not exist. */
  createPath: boolean;
  connectTimeoutMs: number;
  /** Freshness of cached metadata when the servers cannot watch (before ZooKeeper 3.6), ms. */
  cacheTtlMs?: number;
  /** Cache size, kernel attribute timeout, reconnect and session timeouts (defaults when absent). */
  coherence?: CoherenceOptions | undefined;
  logFile?: string | undefined;
  log: Logger;
  /** Aborting it unmounts and ends serve(). */
  stop: AbortSignal;
  /** Called once the mount is live. */
  onReady?: (pid: number) => void;
}

export interface ServeResult {
  dir: string;
  /** Why the mount ended. */
  reason: 'stopped' | 'unmounted';
}

async function ensurePath(client: ZkApi, path: string, create: boolean, log: Logger): Promise<void> {
  try {
    if (await client.exists(path)) return;
    if (!create) throw new OperationError(`ZooKeeper path ${path} does not exist`);
    let current = '';
    for (const part of path.split('/').filter(Boolean)) {
      current = zkChild(current === '' ? '/' : current, part);
      await client.create(current, Buffer.alloc(0)).catch((error: unknown) => {
        if (!isZkError(error, 'NODE_EXISTS')) throw error;
      });
    }
    log.info(`created ZooKeeper path ${path}`);
  } catch (error) {
    if (isZkError(error, 'NO_AUTH')) {
      throw new OperationError(`ZooKeeper refused access to ${path} (check --auth)`);
    }
    throw error;
  }
}

async function checkReadable(client: ZkApi, path: string): Promise<void> {
  try {
    await client.getChildren(path);
  } catch (error) {
    if (isZkError(error, 'NO_AUTH')) {
      throw new OperationError(`ZooKeeper refused to list ${path} with the given credentials (check --auth)`);
    }
    throw error;
  }
}

/** Resolves when the kernel no longer lists a zkfs mount at `dir` (someone ran umount). */
function watchUnmount(dir: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(async () => {
      const table = await readMountTable().catch(() => undefined);
      if (table && mountAt(table, dir)?.fsType !== ZKFS_FSTYPE) {
        clearInterval(timer);
        resolve();
      }
    }, 500);
    signal.addEventListener('abort', () => {
      clearInterval(timer);
      resolve();
    });
  });
}

async function waitForHandles(vfs: ZkVfs, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (vfs.openHandles > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

async function unmountAndDrain(mount: FuseMount, vfs: ZkVfs, dir: string, log: Logger): Promise<void> {
  await vfs.flushAll();
  try {
    await run('umount', [dir], { logger: log, purpose: `unmounting ${dir}`, timeoutMs: 30_000 });
    mount.closeNative();
  } catch (error) {
    log.warn(
      `${dir} is busy, detaching it lazily: ${error instanceof Error ? error.message : String(error)}`,
    );
    await mount.unmount();
    // Programs that still hold files open can go on writing: give them a moment, then flush again.
    await waitForHandles(vfs, 10_000);
    await vfs.flushAll();
  }
}

export async function serveZkfs(options: ServeOptions): Promise<ServeResult> {
  const { resolved, dir, log } = options;
  const coherence = options.coherence ?? resolveCoherenceOptions({});
  const client = await ZkSession.open({
    connectString: resolved.connectString,
    auth: options.auth,
    connectTimeoutMs: options.connectTimeoutMs,
    sessionTimeoutMs: coherence.sessionTimeoutMs,
    reconnectTimeoutMs: coherence.reconnectTimeoutMs,
    logger: log,
  });
  let mount: FuseMount | undefined;
  let status: StatusServer | undefined;
  let notifier: KernelNotifier | undefined;
  try {
    await ensurePath(client, resolved.path, options.createPath && !resolved.readOnly, log);
    await checkReadable(client, resolved.path);
    // Kept exact by a watch; it drops what it holds across reconnections and new sessions.
    const tree = new WatchedTree(client, resolved.path, log, {
      cacheBytes: coherence.cacheBytes,
      fallbackTtlMs: options.cacheTtlMs ?? 1000,
    });
    await tree.start();
    const vfs = new ZkVfs({
      client,
      root: resolved.path,
      mode: resolved.mode,
      readOnly: resolved.readOnly,
      maxFileSize: resolved.maxFileSize,
      defaults: { uid: resolved.uid, gid: resolved.gid, umask: resolved.umask },
      log,
      tree,
      identities: sessionIdentities(options.auth),
    });
    try {
      mount = await mountFuse(vfs, dir, {
        fsname: `zkfs:${resolved.path}`.replace(/,/g, '_'),
        subtype: ZKFS_SUBTYPE,
        allowOther: resolved.fuseOptions.includes('allow_other'),
        allowRoot: resolved.fuseOptions.includes('allow_root'),
        readOnly: resolved.readOnly,
        busyPollUs: resolved.busyPollUs,
        attrTimeoutS: coherence.attrTimeoutMs / 1000,
        log,
      });
    } catch (error) {
      throw new OperationError(
        `could not mount FUSE at ${dir}: ${error instanceof Error ? error.message : String(error)}`,
        {
          detail: 'is /dev/fuse present and are you root (or is allow_other permitted in /etc/fuse.conf)?',
        },
      );
    }
    // The kernel keeps attributes, names and pages for --attr-timeout; watches tell it what changed.
    const polling = mount.polling;
    const reader = mount.reader;
    notifier = await KernelNotifier.open(mount.kernel, log);
    if (notifier) {
      const kernel = notifier;
      tree.onStale = (stale) => kernel.apply(stale);
      const pages = new PageStore(vfs.ctx, tree, kernel);
      vfs.ctx.onReadStart = (path) => pages.readAhead(path);
      vfs.ctx.onOpenRead = (path, znode) => pages.opened(path, znode);
      vfs.ctx.onList = () => kernel.prepareStores();
      vfs.ctx.settleStores = (path) => kernel.settled(path);
    } else {
      log.warn(
        `the kernel may show other hosts' changes only after --attr-timeout (${coherence.attrTimeoutMs} ms)`,
      );
    }
    const startedAt = new Date().toISOString();
    await writeMountRecord({
      dir,
      pid: process.pid,
      hosts: resolved.connectString,
      path: resolved.path,
      mode: resolved.mode,
      readOnly: resolved.readOnly,
      logFile: options.logFile,
      startedAt,
    }).catch((error: unknown) => log.warn(`could not record the mount: ${String(error)}`));
    for (const path of await removeDeadStatusSockets().catch(() => [])) {
      log.info(`removed ${path}, left by a daemon that was killed`);
    }
    const about = { dir, hosts: resolved.connectString, path: resolved.path, mode: resolved.mode };
    status = await serveStatus(
      statusSocketPath(process.pid),
      () =>
        collectStatus({
          mount: { ...about, readOnly: resolved.readOnly, startedAt },
          session: client,
          tree,
          vfs,
          notifier,
          attrTimeoutMs: coherence.attrTimeoutMs,
          polling,
          reader,
        }),
      log,
    );
    log.info(
      `mounted ${resolved.connectString}${resolved.path} at ${dir} (${resolved.mode} mode${resolved.readOnly ? ', read-only' : ''})`,
    );
    options.onReady?.(process.pid);

    await watchUnmount(dir, options.stop);
    // Before the /dev/fuse descriptor is closed, whose number could then be reused.
    notifier?.close();
    const reason = options.stop.aborted ? 'stopped' : 'unmounted';
    if (reason === 'stopped') {
      log.info(`stopping: unmounting ${dir}`);
      await unmountAndDrain(mount, vfs, dir, log);
    } else {
      log.info(`${dir} was unmounted`);
      await waitForHandles(vfs, 5_000);
      await vfs.flushAll();
      mount.closeNative();
    }
    return { dir, reason };
  } finally {
    notifier?.close();
    await status?.close();
    await removeMountRecord(dir, process.pid);
    await client.close();
  }
}
