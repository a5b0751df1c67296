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
import { processStartTime } from '../processes.js';
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
  /**
   * Aborting it unmounts and ends serve(); files still open on a busy
   * mount are served for up to STOP_DRAIN_MS more (a lazy unmount's too).
   */
  stop: AbortSignal;
  /** Aborting it (a second SIGTERM) ends that wait at once. */
  stopNow?: AbortSignal | undefined;
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

/** Whether the kernel lists a zkfs mount at `dir`: undefined where the mount table cannot be read. */
async function mountedAt(dir: string): Promise<boolean | undefined> {
  const table = await readMountTable().catch(() => undefined);
  return table && mountAt(table, dir)?.fsType === ZKFS_FSTYPE;
}

/** Resolves when the kernel no longer lists a zkfs mount at `dir` (someone ran umount). */
function watchUnmount(dir: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(async () => {
      if ((await mountedAt(dir)) === false) {
        clearInterval(timer);
        resolve();
      }
    }, 500);
    const done = () => {
      clearInterval(timer);
      resolve();
    };
    if (signal.aborted) done();
    else signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * How long a stop (SIGTERM, SIGINT) keeps serving files still open on a
 * mount it had to detach: less than systemd's default TimeoutStopSec (90 s),
 * so that the daemon writes back what they hold and exits before a SIGKILL
 * could lose it. A second signal (stopNow) ends the wait at once.
 */
export const STOP_DRAIN_MS = 60_000;

/** Resolves when `signal` is aborted (at once if it is). */
function aborted(signal: AbortSignal | undefined, cancel: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (!signal || cancel.aborted) return;
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true, signal: cancel });
  });
}

/**
 * Resolves `ms` after now, unless `cancel` is aborted first. Its listener on
 * `cancel` goes when the time is up: serveOpenFiles() asks every 100 ms for
 * as long as files stay open, and listeners left behind would pile up (Node
 * warns of a leak past ten).
 */
function after(ms: number, cancel: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = () => clearTimeout(timer);
    const timer = setTimeout(() => {
      cancel.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    cancel.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Serves a detached mount, as the kernel keeps it for programs holding
 * files open in it, until they have all closed them (each written back at
 * its close, as always), the kernel ends the connection, or the wait a stop
 * allows is over: STOP_DRAIN_MS after `stop` is aborted (or after this wait
 * started, if it already was), or at once when `stopNow` is.
 */
async function serveOpenFiles(
  vfs: ZkVfs,
  mount: FuseMount,
  stop: AbortSignal,
  stopNow: AbortSignal | undefined,
): Promise<void> {
  const cancel = new AbortController();
  let over = false;
  const limit = Promise.race([
    mount.ended,
    aborted(stopNow, cancel.signal),
    aborted(stop, cancel.signal).then(() => after(STOP_DRAIN_MS, cancel.signal)),
  ]).then(() => {
    over = true;
  });
  try {
    while (!over && vfs.openHandles > 0) await Promise.race([limit, after(100, cancel.signal)]);
  } finally {
    cancel.abort();
  }
}

/**
 * A stop: writes back what open files hold, unmounts, and when programs
 * still hold files open, detaches the mount (as `umount --lazy`) and
 * serves them until they close them (serveOpenFiles). Then ends the
 * connection: a write after that fails (ENOTCONN), but what was written
 * before is in ZooKeeper.
 */
async function unmountAndDrain(
  mount: FuseMount,
  vfs: ZkVfs,
  dir: string,
  log: Logger,
  stop: AbortSignal,
  stopNow: AbortSignal | undefined,
): Promise<void> {
  await vfs.flushAll();
  try {
    await run('umount', [dir], { logger: log, purpose: `unmounting ${dir}`, timeoutMs: 30_000 });
  } catch (error) {
    log.warn(
      `${dir} is busy, detaching it lazily and serving the files still open until they are closed ` +
        `(at most ${STOP_DRAIN_MS / 1000} s; a second SIGTERM ends this at once): ` +
        `${error instanceof Error ? error.message : String(error)}`,
    );
    await mount.detach();
    await serveOpenFiles(vfs, mount, stop, stopNow);
    await closeDrained(vfs, log);
  }
  mount.closeNative();
}

/**
 * The kernel ended the connection while `dir` is still mounted (aborted
 * through /sys/fs/fuse/connections, or an io_uring queue failed): every
 * access there fails (ENOTCONN) and no close will come. Writes back what
 * files still open hold, and unmounts the dead mount point, so that a new
 * mount can take its place (the Docker plugin mounts afresh once this
 * daemon has gone).
 */
async function endDeadMount(mount: FuseMount, vfs: ZkVfs, dir: string, log: Logger): Promise<void> {
  log.error(
    `the FUSE connection of ${dir} ended while it was mounted (aborted, or failed as logged above): ` +
      'writing back files still open and unmounting it',
  );
  await closeDrained(vfs, log);
  await mount.detach();
  mount.closeNative();
}

/** After serveOpenFiles(): writes back what files still open hold, saying so. */
async function closeDrained(vfs: ZkVfs, log: Logger): Promise<void> {
  if (vfs.openHandles > 0) {
    log.warn(`${vfs.openHandles} file(s) still open: writing back what they hold and closing the mount`);
  }
  await vfs.flushAll();
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
        noExec: resolved.fuseOptions.includes('noexec'),
        busyPollUs: resolved.busyPollUs,
        ioUring: resolved.ioUring,
        attrTimeoutS: coherence.attrTimeoutMs / 1000,
        reconnectTimeoutMs: coherence.reconnectTimeoutMs,
        serverLost: () => client.state !== 'connected',
        log,
      });
    } catch (error) {
      throw new OperationError(
        `could not mount FUSE at ${dir}: ${error instanceof Error ? error.message : String(error)}`,
        {
          detail: 'is /dev/fuse present, and are you root (mounting takes root)?',
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
      vfs.ctx.changeMark = () => kernel.mark();
      vfs.ctx.changedSince = (path, mark) => kernel.changedSince(path, mark);
      vfs.ctx.settleStores = (path) => kernel.settled(path);
      vfs.ctx.pagesStale = (path) => kernel.apply([{ path, entry: false }]);
    } else {
      log.warn(
        `the kernel may show other hosts' changes only after --attr-timeout (${coherence.attrTimeoutMs} ms)`,
      );
    }
    const startedAt = new Date().toISOString();
    await writeMountRecord({
      dir,
      pid: process.pid,
      startTime: processStartTime(process.pid),
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

    const watching = new AbortController();
    const connectionEnded = await Promise.race([
      watchUnmount(dir, watching.signal).then(() => false),
      aborted(options.stop, watching.signal).then(() => false),
      mount.ended.then(() => true),
    ]);
    watching.abort();
    // Before the /dev/fuse descriptor is closed, whose number could then be reused.
    notifier?.close();
    if (connectionEnded && !options.stop.aborted && (await mountedAt(dir))) {
      await endDeadMount(mount, vfs, dir, log);
      throw new OperationError(`the FUSE connection of ${dir} ended while it was mounted`, {
        detail: `files still open were written back to ZooKeeper and ${dir} was unmounted; mount it again to go on`,
      });
    }
    const reason = options.stop.aborted ? 'stopped' : 'unmounted';
    if (reason === 'stopped') {
      log.info(`stopping: unmounting ${dir}`);
      await unmountAndDrain(mount, vfs, dir, log, options.stop, options.stopNow);
    } else {
      // Unmounted lazily with files open (umount --lazy): the kernel still sends their requests.
      log.info(`${dir} was unmounted`);
      if (vfs.openHandles > 0)
        log.info(`serving ${vfs.openHandles} file(s) still open until they are closed`);
      await serveOpenFiles(vfs, mount, options.stop, options.stopNow);
      await closeDrained(vfs, log);
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
