/**
 * FUSE requests to ZkVfs calls: decode a request, find the path its node id
 * stands for, call the filesystem, encode the answer. Errors become errnos
 * in errno.ts; node ids and their paths live in core/fuse/node-table.ts.
 *
 * How zkfs uses the protocol, and why:
 * - OPENDIR is answered "not implemented", so the kernel opens directories
 *   itself and keeps their listings cached (invalidated by kernel-notify.ts
 *   when a watch says a directory changed);
 * - listings are READDIRPLUS: names come with their attributes, so a walk
 *   needs no LOOKUP per entry;
 * - a file opened read-only keeps the kernel's page cache and skips FLUSH on
 *   close: re-reading an unchanged file costs one OPEN (and the RELEASE the
 *   kernel sends without waiting for it);
 * - a file opened for reading, unchanged since the daemon last opened or
 *   listed it from memory, is opened by the native reader without entering JavaScript
 *   (request-reader.ts); should the kernel ask to read through that handle
 *   (its pages dropped), it reads the node's current data, as on a
 *   read-only mount, where a handle opened here reads the data it was
 *   opened with;
 * - a file opened for writing is written to ZooKeeper on FLUSH (close), with
 *   the version check against the version it was opened at.
 *   (Answering OPEN "not implemented" would spare that OPEN too, but then
 *   the kernel opens files without telling us, and a write could no longer
 *   be checked against the version its program opened.)
 * - a read-only mount has no writes to check or publish at close, so there
 *   OPEN and FLUSH are answered "not implemented": the kernel then opens and
 *   closes files by itself, re-reading an unchanged file costs no request at
 *   all, and a READ (handle 0) reads the node's current data.
 */

import { Interrupts } from '../../core/fuse/interrupts.js';
import { childPath, type NodeTable } from '../../core/fuse/node-table.js';
import {
  ArgReader,
  Op,
  OpenFlag,
  type RequestHeader,
  readHeader,
  readInit,
  readRename,
  readSetattr,
  type Unique,
} from '../../core/fuse/protocol.js';
import {
  type Attr,
  attrReply,
  createReply,
  dataReply,
  direntReply,
  entryReply,
  errorReply,
  handleOpened,
  nodesHandedOut,
  openReply,
  statfsReply,
  writeReply,
} from '../../core/fuse/replies.js';
import type { Creator } from '../../core/zkfs/attrs.js';
import { FsError, isFsError } from '../../core/zkfs/errors.js';
import { baseName, DATA_FILE } from '../../core/zkfs/paths.js';
import type { Logger } from '../logger.js';
import type { FileAttr } from '../zkfs/attr-ops.js';
import type { PathRead } from '../zkfs/file-ops.js';
import { NOT_CACHED } from '../zkfs/resolve.js';
import type { ZkVfs } from '../zkfs/vfs.js';
import { ENOSYS, ERRNO, failureCode, toErrno } from './errno.js';
import { type GapFreeRead, readOutsideGaps } from './gap-deletions.js';
import { answerInit } from './init.js';
import { Listings } from './listings.js';
import type { Leaving, Orphans } from './orphans.js';
import { renameNode } from './rename.js';
import type { FastOpens, RequestRing } from './request-reader.js';
import { applySetattr } from './setattr.js';
import { readXattr, xattrAnswer } from './xattrs.js';

export interface OpsOptions {
  vfs: ZkVfs;
  log: Logger;
  /** Seconds the kernel may keep names and attributes, as of now. */
  validS: () => number;
  /** The mount is read-only: the kernel opens and closes files without us. */
  readOnly: boolean;
  /** The node ids handed to the kernel (shared with kernel-notify.ts). */
  nodes: NodeTable<FileAttr>;
  /** What deleted files still open answer (shared with the watch's deletions). */
  orphans: Orphans;
  send(message: Buffer): boolean;
  /** Read-only opens the native reader may answer by itself (request-reader.ts). */
  fast?: FastOpens;
  /** Requests over io_uring, taken where the kernel offers them (request-reader.ts). */
  ring?: RequestRing;
  /** Called once the kernel has accepted FUSE_INIT. */
  onInit(): void;
  /** ZooKeeper cannot be reached now: requests wait for it (an interrupted one that changes nothing may end). */
  serverLost?(): boolean;
  /**
   * Pending while names the kernel held across a watch gap are being
   * checked for deletion (fuse/gap-deletions.ts), for `capMs` at most
   * (default 5 s); undefined otherwise.
   */
  gapSettled?(capMs?: number): Promise<void> | undefined;
  /**
   * How long a change through a node the kernel holds (SETATTR; CREATE,
   * MKDIR, SYMLINK, UNLINK, RMDIR, RENAME in a directory it holds) waits for
   * those checks at most: as long as an operation waits for a lost
   * connection (ms).
   */
  changeWaitMs: number;
  /**
   * A name a rename or create here has just made was deleted by another
   * host right after (`leaving`: the node put there, as this mount made or
   * moved it): as for a deletion the watch reports (fuse.ts).
   */
  goneElsewhere?(leaving: Leaving): void;
  /** The kernel must look `path` up again: the node it holds under that name is not the one there (fuse.ts). */
  nameStale?(path: string): void;
  /**
   * The kernel must drop its attributes of node `id`, and ask for them
   * again; resolves once it has (fuse.ts).
   */
  nodeStale?(id: number): Promise<unknown>;
}

const O_ACCMODE = 0o3;
/** How long a request that changes nothing waits before its program's interruption ends it (ms). */
const INTERRUPT_AFTER_MS = 1000;
/** How often an interruption not acted on yet is looked at again (ms). */
const INTERRUPT_RECHECK_MS = 250;
/**
 * How much longer than --reconnect-timeout a change waits for the checks of
 * a watch gap: they take a listing per directory once the watch is back, so
 * a connection back just in time still leaves them time to run.
 */
const CHECKS_GRACE_MS = 5000;
/** Operations the kernel may send that zkfs does not implement; it falls back or gives up by itself. */
const UNSUPPORTED: ReadonlyMap<number, number> = new Map([
  [Op.OPENDIR, ENOSYS],
  [Op.ACCESS, ENOSYS],
  [Op.LSEEK, ENOSYS],
  [Op.COPY_FILE_RANGE, ENOSYS],
  [Op.FALLOCATE, ERRNO.ENOTSUP],
  [Op.TMPFILE, ERRNO.ENOTSUP],
  [Op.LINK, ERRNO.EPERM],
  [Op.MKNOD, ERRNO.EPERM],
]);

/**
 * Requests that change nothing an OPEN's answer depends on. Any other
 * request tells the native reader that its allowances have lapsed
 * (request-reader.ts); a change from elsewhere reaches it through the cache.
 */
const UNCHANGING: ReadonlySet<number> = new Set([
  Op.INIT,
  Op.LOOKUP,
  Op.FORGET,
  Op.BATCH_FORGET,
  Op.GETATTR,
  Op.READLINK,
  Op.OPEN,
  Op.READ,
  Op.STATFS,
  Op.RELEASE,
  Op.FLUSH,
  Op.FSYNC,
  Op.GETXATTR,
  Op.LISTXATTR,
  Op.OPENDIR,
  Op.READDIR,
  Op.READDIRPLUS,
  Op.RELEASEDIR,
  Op.FSYNCDIR,
  Op.ACCESS,
  Op.INTERRUPT,
  Op.LSEEK,
]);

/**
 * Who asks: the request's uid and gid, the caller's fsuid and fsgid. A node
 * it makes is its own (attrs.ts, newEntry). The modes of CREATE and MKDIR
 * come with the caller's umask applied: zkfs does not ask for FUSE_DONT_MASK.
 */
function callerOf(h: RequestHeader): Creator {
  return { uid: h.uid, gid: h.gid };
}

function toAttr(a: FileAttr, ino: number): Attr {
  return { ...a, ino };
}

/** How an open for reading is answered: the page cache kept, no FLUSH at close. */
const READ_OPEN_FLAGS = OpenFlag.KEEP_CACHE | OpenFlag.NOFLUSH;

/**
 * The handle of a file the kernel opened by itself (read-only mounts), or of
 * a deleted one opened as it was (reads answered from orphans.ts); real
 * handles start at 1.
 */
const NO_HANDLE = 0;

/** Reads of a name's attributes for a lookup, at most, while other clients' changes keep coming. */
const HANDOUT_TRIES = 3;

/** The function device.ts calls with every request. */
export function requestHandler(o: OpsOptions): (buf: Buffer, length: number) => void {
  const { vfs, log, validS, nodes, orphans } = o;
  // A read-only mount has the kernel open files by itself (OPEN is "not implemented"): nothing to allow.
  const fast = o.readOnly ? undefined : o.fast;
  /**
   * Lets the native reader answer opens for reading of node `id` at `path`,
   * which memory has just answered for (an open, or a listing begun when
   * changes stood at `since`), while they would be answered alike.
   */
  const allowReads = (id: number, path: string, since?: number): void => {
    if (fast && baseName(path) !== DATA_FILE && vfs.reopensAlike(path))
      fast.allow(id, READ_OPEN_FLAGS, since);
  };
  const listings = new Listings(
    vfs,
    nodes,
    validS,
    { since: () => fast?.changes() ?? 0, file: allowReads },
    () => o.gapSettled?.(),
  );

  /** The path of node `id`; `gone` is the error when the node is no longer in the tree. */
  const pathOf = (id: number, gone: 'ENOENT' | 'ESTALE' = 'ENOENT'): string => {
    const path = nodes.path(id);
    if (path === undefined) throw new FsError(gone, `node ${id} is no longer in the tree`);
    return path;
  };
  /**
   * The path of node `id` for a step of a path walk (a lookup in it, an
   * open of it). A node no longer in the tree is ESTALE there, not ENOENT:
   * the name the kernel walked may stand for a new node now (another host
   * replaced the file by a rename over it, as editors and certbot do), and
   * on ESTALE the kernel walks the path again, asking afresh, so the
   * program opens the new file instead of failing.
   */
  const walkedPathOf = (id: number): string => pathOf(id, 'ESTALE');
  /**
   * The same for the directory a lookup is in, but for one deleted and
   * kept for a program inside it (its working directory): nothing is in
   * it, ENOENT, as on a local disk; walking again would not leave it.
   */
  const lookupDirOf = (id: number): string => {
    if (orphans.has(id)) throw new FsError('ENOENT', `node ${id} is a deleted directory`);
    return walkedPathOf(id);
  };

  /**
   * An open of a node the kernel holds whose name now stands for nothing
   * (another host renamed or deleted the file since the kernel looked it
   * up): ESTALE, not ENOENT, so the kernel walks the path again, asking
   * afresh; then `>> log` (O_CREAT) makes the file again, as on a local
   * disk, instead of failing with "No such file or directory", and a plain
   * open fails with ENOENT from that walk.
   */
  const goneIsStale = (error: unknown, path: string): unknown =>
    error instanceof FsError && error.code === 'ENOENT'
      ? new FsError('ESTALE', `${path} is gone: the kernel looks it up again`)
      : error;
  /** `path` with attributes `a` for the kernel, under the node id it will know it by (one more reference). */
  const handOutAs = (path: string, a: FileAttr): { id: number; attr: Attr } => {
    const id = nodes.lookup(path, a);
    return { id, attr: toAttr(a, id) };
  };
  /**
   * The same with the attributes as they are now. Read again when another
   * client deleted, made or changed this name meanwhile: `path` may stand
   * for another node now (replaced by a rename over it), and the kernel
   * must not take the new node with the old one's size, which cuts its
   * reads short or pads them with zeros; nor keep the old size of a file
   * written meanwhile, whose change's notice found no node of it in the
   * kernel to drop. Where it keeps changing, the last read is handed out
   * with attributes the kernel asks for again at once (`settled` false).
   * Read again too when the watch was down or came back meanwhile, once it
   * is back and what the kernel held has been checked: a node read before
   * then may have been replaced unheard of, and the checks cover only the
   * names the kernel held when the watch went (gap-deletions.ts).
   */
  const handOut = async (path: string): Promise<{ id: number; attr: Attr; settled: boolean }> => {
    let read: GapFreeRead<FileAttr>;
    let changed: boolean;
    for (let tries = 1; ; tries++) {
      let deletions = 0;
      read = await readOutsideGaps(
        vfs,
        () => o.gapSettled?.(),
        () => {
          deletions = vfs.deletionsElsewhere;
          return vfs.getattr(path);
        },
      );
      // Without kernel notifications (no marks), any deletion elsewhere may have been this name's.
      changed =
        !read.clean ||
        (read.mark === undefined ? vfs.deletionsElsewhere !== deletions : vfs.changedSince(path, read.mark));
      if (!changed || !read.clean || tries === HANDOUT_TRIES) break;
    }
    return { ...handOutAs(path, read.value), settled: !changed };
  };
  /**
   * The entry reply for `path`: at once when memory holds its attributes,
   * as for a program walking files whose kernel entries have timed out. A
   * name the kernel holds waits first for the checks of a watch gap (as
   * its attributes and reads do), which may find it replaced meanwhile:
   * handed out before them, the old node would take the new file's
   * attributes, then be found gone and answer with the old file's data.
   */
  const entry = (unique: Unique, path: string): Buffer | Promise<Buffer> =>
    nodes.idOf(path) === undefined ? entryNow(unique, path) : whenSettled(path, () => entryNow(unique, path));
  const entryNow = (unique: Unique, path: string): Buffer | Promise<Buffer> => {
    const a = cachedAttr(path);
    if (a === NOT_CACHED)
      return handOut(path).then(({ id, attr, settled }) =>
        entryReply(unique, id, attr, validS(), settled ? validS() : 0),
      );
    const { id, attr } = handOutAs(path, a);
    return entryReply(unique, id, attr, validS());
  };
  /** The attribute reply giving node `id` attributes `a`, which it answers with should its name go. */
  const told = (unique: Unique, id: number, a: FileAttr): Buffer => {
    nodes.tell(id, a);
    return attrReply(unique, toAttr(a, id), validS());
  };
  /**
   * The reply to an OPEN for reading of node `id`, whose name went as the
   * program's path walk reached it (another host replaced the file by a
   * rename over it, say): as on a local disk, the program opens the file it
   * reached, as it was. Without its data here, ESTALE: the kernel walks the
   * path again.
   */
  const openedAsItWas = (unique: Unique, id: number): Buffer | Promise<Buffer> => {
    if (orphans.readable(id)) return readOpened(unique, id, NO_HANDLE, orphans.attr(id).size);
    throw new FsError('ESTALE', `node ${id} was deleted as it was being opened`);
  };
  /**
   * The reply to an OPEN for reading of node `id` once `fh` is open. If
   * another client deleted its name meanwhile, what was opened may be the
   * node made again under it, which the kernel's node (its size) does not
   * stand for: that handle goes, and the node opens as it was, as for an
   * OPEN that comes after the name went.
   */
  const openedForReading = async (unique: Unique, id: number, fh: number, path: string): Promise<Buffer> => {
    await pendingFor(path);
    if (nodes.path(id) !== undefined) return readOpened(unique, id, fh, vfs.sizeOf(fh));
    await vfs.release(fh);
    return openedAsItWas(unique, id);
  };
  /** Whether the kernel holds node `id` at `size`, as far as this mount told it. */
  const sizeAsTold = (id: number, size: number): boolean => {
    const told = nodes.told(id);
    return told === undefined || told.size === size;
  };
  /**
   * The reply to an OPEN for reading of node `id` with handle `fh`, whose
   * reads get `size` bytes, sent once the kernel holds the node at that
   * size: the kernel stops reads at the size it holds, and a program sizes
   * its read by fstat(). They differ when the node changed and the
   * invalidation that tells the kernel is still on its way, behind others
   * (after a session expired, the kernel is told to drop every name it
   * holds): the new content, read here, was cut to the old size. So the
   * kernel drops the node's attributes first: it asks for them before the
   * program's read or fstat(), and drops its pages itself on finding
   * another size or mtime. Dropping attributes alone takes no lock: not the
   * directory's, as dropping a name does (kernel-notify.ts), nor a page's,
   * which a read in flight holds.
   */
  const readOpened = (unique: Unique, id: number, fh: number, size: number): Buffer | Promise<Buffer> =>
    afterDropping(id, !sizeAsTold(id, size), () => openReply(unique, fh, READ_OPEN_FLAGS));
  /** `reply()`, once the kernel has dropped node `id`'s attributes where `stale` says they are wrong. */
  const afterDropping = (id: number, stale: boolean, reply: () => Buffer): Buffer | Promise<Buffer> =>
    stale && o.nodeStale ? o.nodeStale(id).then(reply) : reply();
  /**
   * The reply to a READ of node `id` by its path, with `read.data` cut from
   * content of `read.size` bytes. Where the content outgrew the size the
   * kernel holds (its own opens, on a read-only mount, ask nothing of the
   * daemon that readOpened could check), the kernel stops this read at that
   * size, and this reply cannot move it: the node's attributes go first, so
   * that the program's next read() asks for them, finds the new size and
   * reads on to the content's end, rather than taking the old size for it.
   * Not where the content shrank: the kernel cuts its size to a short reply
   * itself, unless attributes were dropped since it asked (attr_version),
   * when it would hand the program zeros past the content's end.
   */
  const readFrom = (unique: Unique, id: number, read: PathRead): Buffer | Promise<Buffer> => {
    const told = nodes.told(id);
    return afterDropping(id, told !== undefined && read.size > told.size, () => dataReply(unique, read.data));
  };
  /**
   * Removals here of a name's node on their way, by that name: an unlink or
   * rmdir of it, a rename of it or over it. Until one is done the node table
   * still gives the name's node id the path, but ZooKeeper may already hold
   * another node there: the file this rename moved, or another host's, whose
   * deletion of the node was taken for this removal's own while it was out
   * (own-writes.ts). An open or read of the path (which the node the kernel
   * holds, at its size, stood for) waits for it, then finds that node gone,
   * and opens or reads it as it was; a change of its attributes waits too,
   * and then finds it gone (ESTALE), or, after a rename, follows it.
   */
  const leavingNames = new Map<string, Promise<void>>();
  /** Awaits `removal` of the node at each of `paths`, with opens, reads and attribute changes of them waiting for it. */
  const removing = async (paths: readonly string[], removal: Promise<void>): Promise<void> => {
    for (const path of paths) leavingNames.set(path, removal);
    try {
      await removal;
    } finally {
      for (const path of paths) if (leavingNames.get(path) === removal) leavingNames.delete(path);
    }
  };
  /** The removal here of `path`'s node under way, if any. */
  const leavingFor = (path: string | undefined): Promise<void> | undefined =>
    path === undefined ? undefined : leavingNames.get(path);
  /**
   * What an answer to a request by `path` for a node the kernel holds waits
   * for before it is trusted to be that node's: a removal here of the path's
   * node, and the checks of names deleted while the watch was down, which
   * the watch did not report (gap-deletions.ts). Undefined when neither is
   * under way.
   */
  const pendingFor = (path: string | undefined): Promise<unknown> | undefined => {
    const leaving = leavingFor(path);
    if (!leaving) return o.gapSettled?.();
    // Checks that start while the removal is on its way are waited for too.
    return leaving.catch(() => {}).then(() => o.gapSettled?.());
  };
  /** `work` at once, or once what `path` waits for is done (memory may answer it, with the new node's already). */
  const whenSettled = (
    path: string | undefined,
    work: () => Buffer | Promise<Buffer>,
  ): Buffer | Promise<Buffer> => {
    const pending = pendingFor(path);
    return pending ? pending.then(work) : work();
  };
  /**
   * `work` once what nodes `ids` wait for is done, for a change made
   * through them: a node's attributes, or a name made or removed in a
   * directory. A read that spanned the checks of a watch gap is made again
   * after them; a change cannot be taken back, so it waits them out,
   * longer than a read's 5 s where a long gap takes it (a session that
   * expired is out for longer than that). Before them, a node another
   * host replaced meanwhile leads to the new one by the old one's path:
   * fchmod of a descriptor of the old file set the new file's mode, and
   * `rm x` in a program's working directory, made again elsewhere, removed
   * the new directory's x. Should they not be done within `changeWaitMs`
   * (and CHECKS_GRACE_MS for the checks themselves, once the connection is
   * back late), ETIMEDOUT, as for an operation whose connection did not come
   * back: sent after that, the change could again go out ahead of them.
   * While any gap is being checked, every such change waits: the checks are
   * the mount's, not a directory's.
   */
  const whenSettledToChange = async (
    ids: readonly number[],
    work: () => Promise<Buffer>,
  ): Promise<Buffer> => {
    const leavingAny = () => {
      for (const id of ids) {
        const leaving = leavingFor(nodes.path(id));
        if (leaving) return leaving;
      }
      return undefined;
    };
    const waitMs = o.changeWaitMs + CHECKS_GRACE_MS;
    let until: number | undefined;
    for (;;) {
      // A removal here ends by itself: each of its requests has its own time limit.
      const leaving = leavingAny();
      if (leaving) {
        await leaving.catch(() => {});
        continue;
      }
      const left = until === undefined ? waitMs : until - Date.now();
      const checks = o.gapSettled?.(Math.max(left, 0));
      if (!checks) return work();
      until ??= Date.now() + waitMs;
      if (left <= 0) {
        throw new FsError(
          'ETIMEDOUT',
          `not made: the names the kernel held across a watch gap were still being checked after ${Math.round(waitMs / 1000)} s (--reconnect-timeout, and the checks' own time)`,
        );
      }
      await checks;
    }
  };
  /** getattr() from memory (ENOENT thrown as getattr() would), or NOT_CACHED. */
  const cachedAttr = (path: string): FileAttr | typeof NOT_CACHED => {
    const a = vfs.getattrCached(path);
    if (a === undefined) throw new FsError('ENOENT', `${path} does not exist`);
    return a;
  };

  /** The kernel dropped `count` references to node `id`: once none is left, so does what answered for it. */
  const forget = (id: number, count: number): void => {
    if (!nodes.forget(id, count)) return;
    orphans.forgotten(id);
    listings.forgotten(id);
  };

  /**
   * Sends what `work` answers to request `h`, or the errno it fails with.
   * With `undo`, the request changes nothing and may be interrupted while it
   * waits (core/fuse/interrupts.ts): an answer that comes after the program
   * was answered EINTR goes to `undo` instead, to take back what it hands out.
   */
  const answer = (
    h: RequestHeader,
    what: () => string,
    work: () => Promise<Buffer> | Buffer,
    undo?: (reply: Buffer) => void,
  ): void => {
    vfs.counters.byOpcode[h.opcode] = (vfs.counters.byOpcode[h.opcode] ?? 0) + 1;
    let pending: Promise<Buffer> | Buffer;
    try {
      pending = work();
    } catch (error) {
      pending = Promise.reject(error);
    }
    if (Buffer.isBuffer(pending)) {
      o.send(pending);
      return;
    }
    if (undo) interrupts.track(h.unique, Date.now());
    const wanted = () => !undo || interrupts.settle(h.unique);
    pending.then(
      (reply) => {
        if (wanted()) o.send(reply);
        else undo?.(reply);
      },
      (error: unknown) => {
        const code = failureCode(error);
        vfs.counters.errors[code] = (vfs.counters.errors[code] ?? 0) + 1;
        if (wanted()) o.send(errorReply(h.unique, toErrno(error, log, what)));
      },
    );
  };
  const interrupts = new Interrupts();
  /** Nothing to take back: the answer hands out nothing. */
  const nothing = (): void => {};
  /** Closes the handle an OPEN answer gives out. */
  const closeUnsent = (reply: Buffer): void => {
    const fh = handleOpened(reply);
    if (fh === undefined || fh === NO_HANDLE || fast?.isFastHandle(fh)) return;
    void Promise.resolve(vfs.release(fh)).catch(() => {});
  };
  /** Takes back the reference a LOOKUP answer hands out. */
  const unhandEntry = (reply: Buffer): void => {
    for (const id of nodesHandedOut(reply, false)) forget(id, 1);
  };
  /** Takes back the references a READDIRPLUS answer hands out. */
  const unhandListing = (reply: Buffer): void => {
    for (const id of nodesHandedOut(reply, true)) forget(id, 1);
  };

  return (buf: Buffer, length: number): void => {
    const h = readHeader(buf);
    const r = new ArgReader(buf, length);
    const u = h.unique;
    // What a RELEASE, FLUSH or FSYNC writes to ZooKeeper changes the cache, which says so itself.
    if (!UNCHANGING.has(h.opcode)) fast?.changed();
    switch (h.opcode) {
      case Op.INIT: {
        answerInit(u, readInit(buf, length), o.send, o.ring);
        o.onInit();
        return;
      }
      case Op.FORGET:
        forget(h.nodeId, r.u64());
        return;
      case Op.BATCH_FORGET: {
        const count = r.u32();
        r.skip(4);
        for (let i = 0; i < count; i++) forget(r.u64(), r.u64());
        return;
      }
      case Op.INTERRUPT: {
        // Only a request that waits in vain (the connection lost, or no answer for a while): one
        // answered soon anyway should not surprise its program with an EINTR (SA_RESTART does not
        // restart a FUSE request). The kernel asks once: until then, it is asked again here.
        const interrupted = r.u64();
        const since = interrupts.waitingSince(interrupted);
        if (since === undefined) return;
        const endIfInVain = (): void => {
          if (interrupts.waitingSince(interrupted) === undefined) return; // answered meanwhile
          if (!o.serverLost?.() && Date.now() - since < INTERRUPT_AFTER_MS) {
            setTimeout(endIfInVain, INTERRUPT_RECHECK_MS).unref();
            return;
          }
          interrupts.interrupt(interrupted);
          vfs.counters.errors.EINTR = (vfs.counters.errors.EINTR ?? 0) + 1;
          o.send(errorReply(interrupted, ERRNO.EINTR));
        };
        endIfInVain();
        return;
      }
      case Op.DESTROY:
        o.send(errorReply(u, 0));
        return;
    }
    const unsupported = UNSUPPORTED.get(h.opcode);
    if (unsupported !== undefined) {
      o.send(errorReply(u, unsupported));
      return;
    }
    const where = () => nodes.path(h.nodeId) ?? `node ${h.nodeId}`;
    /** `name` in the request's directory, for a log line (`/name` at the root, not `//name`). */
    const whereChild = (name: string) => {
      const parent = nodes.path(h.nodeId);
      return parent === undefined ? `node ${h.nodeId}/${name}` : childPath(parent, name);
    };
    switch (h.opcode) {
      case Op.LOOKUP: {
        const name = r.name();
        answer(
          h,
          () => `lookup ${whereChild(name)}`,
          () => entry(u, childPath(lookupDirOf(h.nodeId), name)),
          unhandEntry,
        );
        return;
      }
      case Op.GETATTR:
        answer(
          h,
          () => `getattr ${where()}`,
          () =>
            whenSettled(nodes.path(h.nodeId), () => {
              const path = nodes.path(h.nodeId);
              // Deleted, and still open somewhere: as it was.
              const gone = () => attrReply(u, toAttr(orphans.attr(h.nodeId), h.nodeId), validS());
              if (path === undefined) return gone();
              // Gone since the kernel looked it up (another host renamed or deleted it): stat(2) and
              // open(2) walk the path again on ESTALE, and find the name made again or missing.
              let a: FileAttr | typeof NOT_CACHED;
              try {
                a = cachedAttr(path);
              } catch (error) {
                throw goneIsStale(error, path);
              }
              if (a !== NOT_CACHED) return told(u, h.nodeId, a);
              // Deleted meanwhile, the name may stand for a node made again under it: not this one.
              return vfs.getattr(path).then(
                (fresh) =>
                  whenSettled(path, () =>
                    nodes.path(h.nodeId) === undefined ? gone() : told(u, h.nodeId, fresh),
                  ),
                (error: unknown) => {
                  if (nodes.path(h.nodeId) === undefined) return gone();
                  throw goneIsStale(error, path);
                },
              );
            }),
          nothing,
        );
        return;
      case Op.SETATTR: {
        const req = readSetattr(r);
        answer(
          h,
          () => `setattr ${where()}`,
          // After a removal of the node here and the checks of a watch gap: before them, a name
          // another host replaced meanwhile still leads to the new file, and fchmod(2), fchown(2)
          // or futimens(2) of a descriptor of the old one would change the new one. Found gone,
          // the node answers ESTALE (a call by path walks it again; one through a descriptor
          // fails, where a local disk would change the unlinked file).
          () =>
            whenSettledToChange([h.nodeId], async () => {
              // Gone since the kernel looked it up (another host renamed or deleted it): truncate(2),
              // chmod(2) and open(O_TRUNC) walk the path again on ESTALE, and find the name made
              // again (or make it) or missing, as they would have had they come a moment later.
              const path = pathOf(h.nodeId, 'ESTALE');
              const a = await applySetattr(vfs, req, path).catch((error: unknown) => {
                throw goneIsStale(error, path);
              });
              return told(u, h.nodeId, a);
            }),
        );
        return;
      }
      case Op.READLINK:
        answer(
          h,
          () => `readlink ${where()}`,
          async () => dataReply(u, Buffer.from(await vfs.readlink(pathOf(h.nodeId)))),
          nothing,
        );
        return;
      case Op.SYMLINK: {
        const name = r.name();
        const target = r.name();
        answer(
          h,
          () => `symlink ${whereChild(name)}`,
          () =>
            whenSettledToChange([h.nodeId], async () => {
              const path = childPath(pathOf(h.nodeId), name);
              await vfs.symlink(target, path, callerOf(h));
              return entry(u, path);
            }),
        );
        return;
      }
      case Op.MKDIR: {
        const mode = r.u32();
        r.skip(4);
        const name = r.name();
        answer(
          h,
          () => `mkdir ${whereChild(name)}`,
          () =>
            whenSettledToChange([h.nodeId], async () => {
              const path = childPath(pathOf(h.nodeId), name);
              await vfs.mkdir(path, mode, callerOf(h));
              return entry(u, path);
            }),
        );
        return;
      }
      case Op.UNLINK:
      case Op.RMDIR: {
        const name = r.name();
        const op = h.opcode === Op.UNLINK ? 'unlink' : 'rmdir';
        answer(
          h,
          () => `${op} ${whereChild(name)}`,
          () =>
            whenSettledToChange([h.nodeId], async () => {
              const path = childPath(pathOf(h.nodeId), name);
              const leaving = orphans.leaving(path);
              const removal = (op === 'unlink' ? vfs.unlink(path) : vfs.rmdir(path)).then(
                () => orphans.gone(leaving),
                (error: unknown) => {
                  // Gone already: another host's deletion, which may have been heard as this one's.
                  if (isFsError(error) && error.code === 'ENOENT') orphans.gone(leaving);
                  throw error;
                },
              );
              await removing([path], removal);
              return errorReply(u, 0);
            }),
        );
        return;
      }
      case Op.RENAME:
      case Op.RENAME2: {
        const req = readRename(r, h.opcode === Op.RENAME2);
        answer(
          h,
          () => `rename ${where()}`,
          () =>
            whenSettledToChange([h.nodeId, req.newDir], async () => {
              const from = childPath(pathOf(h.nodeId), req.oldName);
              const to = childPath(pathOf(req.newDir), req.newName);
              // A file renamed over stays readable to programs holding it open.
              const replaced = orphans.leaving(to);
              // Taken before: once the name is another host's file, memory describes that one.
              const moving = orphans.leaving(from);
              const done = renameNode(vfs, from, to, req.flags).then(async () => {
                // Another host's deletion of `from` was heard since the kernel looked it up (its node
                // kept as it was, in orphans): the node moved is not that one, which the kernel is
                // about to call `to`, with the old file's pages.
                const movedOther = moving === undefined || nodes.idOf(from) !== moving.id;
                orphans.gone(replaced);
                nodes.renamed(from, to);
                if (movedOther) o.nameStale?.(to);
                // Another host's rename over `to` right after this one: its notices came before this
                // rename's reply was acted on, so the node moved to `to` stands for a file now gone.
                // A stat meanwhile waits for this (whenSettled), and never gets the new file's size.
                else if (await vfs.replacedSinceMade(to).catch(() => false))
                  o.goneElsewhere?.({ ...moving, path: to });
              });
              await removing([from, to], done);
              return errorReply(u, 0);
            }),
        );
        return;
      }
      case Op.OPEN: {
        if (o.readOnly) {
          o.send(errorReply(u, ENOSYS));
          return;
        }
        const flags = r.u32();
        const reading = (flags & O_ACCMODE) === 0;
        const openFlags = reading ? READ_OPEN_FLAGS : OpenFlag.KEEP_CACHE;
        if (!reading) fast?.changed();
        const openIt = (): Buffer | Promise<Buffer> => {
          if (reading && nodes.path(h.nodeId) === undefined) return openedAsItWas(u, h.nodeId);
          const path = walkedPathOf(h.nodeId);
          const fh = vfs.openCached(path, flags);
          if (fh === undefined) {
            const opened = vfs.open(path, flags);
            const stale = (error: unknown): never => {
              throw goneIsStale(error, path);
            };
            if (reading) return opened.then((got) => openedForReading(u, h.nodeId, got, path), stale);
            return opened.then((got) => openReply(u, got, openFlags), stale);
          }
          if (!reading) return openReply(u, fh, openFlags);
          const size = vfs.sizeOf(fh);
          // Answered from memory: until something changes, the next open for reading needs no JavaScript.
          if (sizeAsTold(h.nodeId, size)) allowReads(h.nodeId, path);
          return readOpened(u, h.nodeId, fh, size);
        };
        answer(
          h,
          () => `open ${where()}`,
          () => (reading ? whenSettled(nodes.path(h.nodeId), openIt) : openIt()),
          reading ? closeUnsent : undefined,
        );
        return;
      }
      case Op.CREATE: {
        // A created file is always open for writing; O_EXCL decides what a name made meanwhile means.
        const flags = r.u32();
        const mode = r.u32();
        r.skip(8);
        const name = r.name();
        answer(
          h,
          () => `create ${whereChild(name)}`,
          () =>
            whenSettledToChange([h.nodeId], async () => {
              const path = childPath(pathOf(h.nodeId), name);
              const created = await vfs.create(path, mode, flags, callerOf(h));
              const { id, attr } = created.attr ? handOutAs(path, created.attr) : await handOut(path);
              // Deleted or replaced by another host right after: the program gets the file it made,
              // and the name, once this reply is in, the node under it now.
              const leaving = created.gone && orphans.leaving(path, created.gone);
              if (leaving) o.goneElsewhere?.(leaving);
              return createReply(u, id, attr, validS(), created.fh, OpenFlag.KEEP_CACHE);
            }),
        );
        return;
      }
      case Op.READ: {
        const fh = r.u64();
        const offset = r.u64();
        const size = r.u32();
        answer(
          h,
          () => `read ${where()}`,
          () => {
            if (fh !== NO_HANDLE && !fast?.isFastHandle(fh)) {
              const data = vfs.read(fh, size, offset);
              return Buffer.isBuffer(data) ? dataReply(u, data) : data.then((d) => dataReply(u, d));
            }
            const path = nodes.path(h.nodeId);
            // Deleted, and still open somewhere: as it was.
            const asItWas = () => dataReply(u, orphans.read(h.nodeId, size, offset));
            if (path === undefined) return asItWas();
            // ZooKeeper tells of a change before it answers a read that sees it: data of a node
            // that replaced this one (another host's rename over it, or one here; or a name
            // replaced while the watch was down, found when it is back: pendingFor)
            // arrive after the node went from the table, and are not this file's, whose size the
            // kernel holds.
            return vfs.readPath(path, size, offset).then(async (read) => {
              await pendingFor(path);
              if (nodes.path(h.nodeId) === undefined) return asItWas();
              return readFrom(u, h.nodeId, read);
            });
          },
          nothing,
        );
        return;
      }
      case Op.WRITE: {
        const fh = r.u64();
        const offset = r.u64();
        const size = r.u32();
        r.skip(4 + 8 + 4 + 4);
        const data = r.bytes(size);
        answer(
          h,
          () => `write ${where()}`,
          () => {
            const written = vfs.write(fh, data, offset);
            // The kernel grows the file's size itself on a write: what it was told (which a file
            // deleted while open answers with, fuse/orphans.ts) grows with it, or a program still
            // holding a file made here, written and then deleted would find it empty.
            const end = offset + written;
            nodes.retell(h.nodeId, (told) => (end > told.size ? { ...told, size: end } : told));
            return writeReply(u, written);
          },
        );
        return;
      }
      case Op.STATFS:
        answer(
          h,
          () => 'statfs',
          () => statfsReply(u, vfs.statfs()),
        );
        return;
      case Op.RELEASE:
      case Op.FLUSH:
      case Op.FSYNC: {
        const fh = r.u64();
        if (fh === NO_HANDLE) {
          // A file the kernel opened itself: nothing to write back. On a read-only mount, no more
          // FLUSHes please (ENOSYS turns them off for the whole connection); on one written to, the
          // FLUSH at close is how a write-back failure reaches the program, and a kernel before
          // 5.16, which ignores FOPEN_NOFLUSH on an open answered without a handle, asks here too.
          o.send(errorReply(u, h.opcode === Op.FLUSH && o.readOnly ? ENOSYS : 0));
          return;
        }
        if (fast?.isFastHandle(fh)) {
          // Opened for reading by the native reader: nothing to write back.
          o.send(errorReply(u, 0));
          return;
        }
        const op = h.opcode === Op.RELEASE ? 'release' : h.opcode === Op.FLUSH ? 'flush' : 'fsync';
        answer(
          h,
          () => `${op} ${where()}`,
          () => {
            const done = op === 'release' ? vfs.release(fh) : op === 'flush' ? vfs.flush(fh) : vfs.fsync(fh);
            return done ? done.then(() => errorReply(u, 0)) : errorReply(u, 0);
          },
        );
        return;
      }
      case Op.RELEASEDIR:
      case Op.FSYNCDIR:
      case Op.SYNCFS:
        o.send(errorReply(u, 0));
        return;
      case Op.READDIR:
      case Op.READDIRPLUS:
        answer(
          h,
          () => `readdir ${where()}`,
          () => {
            const plus = h.opcode === Op.READDIRPLUS;
            // Deleted while a program works in it (our own rmdir the kernel answers itself): empty.
            if (nodes.path(h.nodeId) === undefined && orphans.has(h.nodeId)) {
              return direntReply(u, [], plus, validS());
            }
            return listings.reply(h, r, pathOf(h.nodeId), plus);
          },
          h.opcode === Op.READDIRPLUS ? unhandListing : nothing,
        );
        return;
      case Op.GETXATTR:
      case Op.LISTXATTR:
      case Op.SETXATTR:
      case Op.REMOVEXATTR: {
        const req = readXattr(h.opcode, r);
        answer(
          h,
          () => `${req.kind} ${where()}`,
          () => xattrAnswer(vfs, u, pathOf(h.nodeId), req),
        );
        return;
      }
      default:
        o.send(errorReply(u, ENOSYS));
    }
  };
}
