/**
 * Mounting a ZkVfs with FUSE: our own connection to the kernel
 * (fuse/device.ts) answering its requests (fuse/ops.ts).
 *
 * zkfs speaks the kernel protocol itself rather than through libfuse:
 * libfuse 2 (all that a Node binding offered) cannot keep the kernel's
 * directory and page caches across opens, sends every close to the daemon
 * and drops a time update that sets only one of atime and mtime (touch -m,
 * tar). Each kernel request it handed to JavaScript crossed threads twice.
 */
import { NodeTable } from '../core/fuse/node-table.js';
import { invalAttrs, invalEntry, invalInode } from '../core/fuse/notifications.js';
import { baseName, parentPath, toMountPath, toZnode } from '../core/zkfs/paths.js';
import { run } from './exec.js';
import type { PollCounters } from './fuse/busy-poll.js';
import { openFuseDevice } from './fuse/device.js';
import { GapDeletions } from './fuse/gap-deletions.js';
import { requestHandler } from './fuse/ops.js';
import { type Leaving, Orphans } from './fuse/orphans.js';
import type { ReaderKind } from './fuse/request-reader.js';
import type { Logger } from './logger.js';
import type { FileAttr } from './zkfs/attr-ops.js';
import type { KernelLink } from './zkfs/kernel-notify.js';
import type { ZkVfs } from './zkfs/vfs.js';

export { toErrno } from './fuse/errno.js';

export interface FuseMountOptions {
  allowOther?: boolean;
  allowRoot?: boolean;
  readOnly?: boolean;
  /** Programs on the mount may not be executed (-o noexec). */
  noExec?: boolean;
  /** Shown as the mount's source in the mount table. */
  fsname: string;
  /** Makes the mount type `fuse.<subtype>`. */
  subtype: string;
  /** Seconds the kernel may cache attributes, names, listings and pages (kept exact by kernel-notify.ts). */
  attrTimeoutS?: number;
  /** How long an operation waits for a lost connection (ms): a change waits as long for the checks after it (fuse/ops.ts). */
  reconnectTimeoutMs: number;
  /** Microseconds to keep polling for the next request after each answer, rather than sleep (default 0). */
  busyPollUs?: number;
  /** Take requests over io_uring where the kernel offers them (default true; fuse/request-reader.ts). */
  ioUring?: boolean;
  /** ZooKeeper cannot be reached now: a program interrupted while its read waits for it is let go. */
  serverLost?: () => boolean;
  log: Logger;
}

export interface FuseMount {
  dir: string;
  /**
   * Detaches the mount from the tree (umount -l) and keeps the connection:
   * programs holding files open in it go on using them until closeNative().
   */
  detach(): Promise<void>;
  /** Ends the connection (after an unmount or detach). Idempotent. */
  closeNative(): void;
  /** Resolves when the kernel has ended the connection (nothing holds a detached mount any more). */
  ended: Promise<void>;
  /** What kernel-notify.ts needs to drop the kernel's stale copies. */
  kernel: KernelLink;
  /** What polling for the next request has done so far (fuse/busy-poll.ts). */
  polling(): PollCounters;
  /** How requests are read, and what the native reader answered by itself. */
  reader(): ReaderStatus;
}

export interface ReaderStatus {
  kind: ReaderKind;
  /** Opens for reading and their releases answered without JavaScript (fuse/request-reader.ts). */
  opens: number;
  releases: number;
  /** GETXATTR of names zkfs never has, answered there too; absent from a daemon older than it. */
  xattrs?: number;
  /** Queues taking requests over io_uring (0: read from /dev/fuse); absent from a daemon older than it. */
  ringQueues?: number;
  /**
   * Times a queue's thread went from idle to normal priority, having waited
   * for its CPU behind a busy program (src/native/fuse-ring.c); with queues only.
   */
  ringRaised?: number;
}

/** How long the kernel may take to send FUSE_INIT after the mount. */
const INIT_TIMEOUT_MS = 10_000;

/** Mounts `vfs` at `dir`; resolves once the kernel has initialised the mount. */
export async function mountFuse(vfs: ZkVfs, dir: string, options: FuseMountOptions): Promise<FuseMount> {
  const log = options.log;
  let initialised: () => void = () => {};
  const init = new Promise<void>((resolve) => {
    initialised = resolve;
  });
  const nodes = new NodeTable<FileAttr>();
  const orphans = new Orphans(nodes, vfs);
  // Made once the device is open (its deletions notify the kernel); requests may come before.
  let gap: GapDeletions | undefined;
  const device = await openFuseDevice(
    {
      dir,
      fsname: options.fsname,
      subtype: options.subtype,
      // allow_root lets in root and the user who mounted, who is root here (mount -i needs it): the
      // kernel's default. Taken for allow_other, it let every local user read the whole tree.
      allowOther: options.allowOther === true,
      readOnly: options.readOnly === true,
      noExec: options.noExec === true,
      busyPollUs: options.busyPollUs ?? 0,
      ioUring: options.ioUring !== false,
      log,
    },
    (send, fast, ring) => {
      // Whatever changes in the cache, allowances to open without JavaScript lapse: from the first request on.
      vfs.tree.onChange = fast.changed;
      return requestHandler({
        vfs,
        log,
        validS: () => vfs.tree.kernelKeepsMs((options.attrTimeoutS ?? 1) * 1000) / 1000,
        readOnly: options.readOnly === true,
        nodes,
        orphans,
        send,
        fast,
        ring,
        gapSettled: (capMs) => gap?.settled(capMs),
        changeWaitMs: options.reconnectTimeoutMs,
        goneElsewhere: (leaving) => replaced(leaving),
        nameStale: (path) => dropName(path),
        nodeStale: (id) => device.notify(invalAttrs(id)),
        onInit: () => initialised(),
        serverLost: options.serverLost,
      });
    },
  );
  /** The kernel's entry for `path` goes: its next lookup finds the node there now. */
  const dropName = (path: string) => {
    const parent = nodes.idOf(parentPath(path));
    if (parent !== undefined) void device.notify(invalEntry(parent, baseName(path)));
  };
  // Another client's deletion: a program holding the file open goes on reading it, and its
  // attributes (read afresh) count no link.
  const deleted = (leaving: Leaving | undefined, znode: string) => {
    orphans.gone(leaving);
    vfs.deletedElsewhere(znode);
    if (leaving) void device.notify(invalInode(leaving.id));
  };
  vfs.tree.onDeleting = (znode) => {
    const leaving = orphans.leaving(toMountPath(vfs.tree.root, znode));
    return () => deleted(leaving, znode);
  };
  /**
   * Deleted, and another node under its name now, which the kernel may have
   * looked up meanwhile and found as the old node: its next lookup must find
   * the new one.
   */
  const replaced = (leaving: Leaving) => {
    deleted(leaving, toZnode(vfs.tree.root, leaving.path));
    dropName(leaving.path);
  };
  // The same for deletions made while the watch was down, found once it is back.
  gap = new GapDeletions(
    nodes,
    orphans,
    vfs,
    (leaving, madeAgain) =>
      madeAgain ? replaced(leaving) : deleted(leaving, toZnode(vfs.tree.root, leaving.path)),
    log,
  );
  vfs.tree.onWatchLost = (lastZxid) => gap?.watchLost(lastZxid);
  vfs.tree.onWatchBack = () => {
    vfs.watchBack();
    void gap?.watchBack();
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), INIT_TIMEOUT_MS);
  });
  const outcome = await Promise.race([
    init.then(() => 'ready' as const),
    device.ended.then(() => 'ended' as const),
    timeout,
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    await run('umount', ['-l', dir], { logger: log }).catch(() => {});
    device.close();
    throw new Error(
      outcome === 'timeout' ? 'the kernel did not initialise the mount' : 'the FUSE connection ended at once',
    );
  }
  let closed = false;
  const closeNative = () => {
    if (closed) return;
    closed = true;
    device.close();
  };
  return {
    dir,
    closeNative,
    polling: device.polling,
    reader: () => {
      const { opens, releases, xattrs, raised } = device.fast.answered();
      const ringQueues = device.ringQueues();
      return {
        kind: device.readerKind,
        opens,
        releases,
        xattrs,
        ringQueues,
        ...(ringQueues ? { ringRaised: raised } : {}),
      };
    },
    kernel: {
      nodeIdOf: (path) => nodes.idOf(path),
      knownPaths: () => nodes.paths(),
      notify: device.notify,
      store: device.store,
      prepareStores: device.prepareStores,
      sizeHeld: (id) => nodes.told(id)?.size,
    },
    detach: async () => {
      if (closed) return;
      await run('umount', ['-l', dir], { logger: log, purpose: `unmounting ${dir}` }).catch(
        (error: unknown) => log.debug(`umount -l ${dir}: ${String(error)}`),
      );
    },
    ended: device.ended,
  };
}
