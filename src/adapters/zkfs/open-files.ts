/**
 * Open files of one mount. All handles on one znode share one OpenFile (so a
 * process that opens a file twice sees its own writes, as on a local disk);
 * the OpenFile keeps the bytes, the data version read at open, and whether
 * they changed. Each flush writes the whole content with one setData at that
 * version, one flush at a time per file.
 */

import type { PendingAttrs } from '../../core/zkfs/attrs.js';
import { FsError } from '../../core/zkfs/errors.js';
import { FileBuffer } from '../../core/zkfs/file-buffer.js';
import { isWithin } from '../../core/zkfs/paths.js';

export interface OpenFile {
  znode: string;
  /** Path in the mount, for log messages. */
  mountPath: string;
  buffer: FileBuffer;
  /** Data version the buffer is based on. */
  version: number;
  /**
   * The node the buffer came from: the zxid that created it (a node made
   * again under the name has another, though its data version may be the
   * same), and the tree's watch epoch when that was known (tree.ts). For a
   * file made here, known from its create (file-ops.ts knowMadeNode), or
   * else from its first write-back.
   */
  identity?: NodeIdentity | undefined;
  /**
   * For a file made here whose node is not known yet (no identity): the
   * tree's watch epoch before it was made (file-ops.ts goneUnheard).
   */
  madeEpoch?: number | undefined;
  /** Bumped by every change; the buffer is clean when `flushedSeq === seq`. */
  seq: number;
  flushedSeq: number;
  /** The content of data version `version`, as read or written back (never changed). */
  base: Buffer;
  /** How much of `base` the buffer still starts with: all of it, unless a truncation cut it since. */
  keptLength: number;
  /**
   * The `seq` of the last change other than an O_APPEND write or a
   * truncation that shortens (a write at an offset, a truncation that
   * lengthens). While none came after the content of `version`
   * (`rewrittenSeq <= flushedSeq`), the buffer is the first `keptLength`
   * bytes of `base` with bytes appended, and a write-back that another
   * client's change refused may append the same bytes to the node as it is
   * now (file-ops.ts, appendToCurrent).
   */
  rewrittenSeq: number;
  /** The shortest length a truncation cut the buffer to while its write-back was on its way. */
  cutInFlight: number;
  refs: number;
  /** How many of those handles are open for writing. */
  writerRefs: number;
  /** Unlinked here: its content goes nowhere. */
  deleted: boolean;
  /**
   * Deleted by another client while open for writing or with changes: those
   * are refused at write-back (EIO), even when a node made again under the
   * name has the data version they were based on; appends alone go to the
   * file under the name (file-ops.ts, appendToName).
   */
  deletedElsewhere?: boolean | undefined;
  /**
   * Its O_APPEND writes went, after such a deletion, to the file made again
   * under its name: each write-back appends to whatever is there then.
   */
  followsName?: boolean | undefined;
  /**
   * Another client changed the node since `buffer` was read: a handle that
   * only reads reads the new data, as on a local disk (tail -f on a log
   * another host writes). Handles open for writing keep what they opened,
   * to write back at that version or fail.
   */
  behind?: boolean | undefined;
  /**
   * Where the bytes appended with O_APPEND since the last other change (a
   * write at an offset, a truncation) start in the buffer, and the `seq` of
   * the first of them: the tail that can still go out alone when a rewrite
   * made here cannot be written back (file-ops.ts, salvageAppends).
   */
  tail?: { from: number; seq: number } | undefined;
  /**
   * A write-back sent and never answered before the wait for ZooKeeper ran
   * out: the next one first asks ZooKeeper whether it landed (file-ops.ts,
   * settleDoubt), so that it neither appends its bytes again nor takes its
   * new version for another client's.
   */
  inDoubt?: SentWrite | undefined;
  /** Changes `from`..`to` (seqs) were O_APPEND writes that a salvage wrote to the node. */
  salvaged?: { from: number; to: number } | undefined;
  /** Time of the last local change, shown by getattr while dirty. */
  mtimeMs: number;
  /** The tail of this file's flush queue. */
  flushing: Promise<void>;
  /**
   * Set when a write or truncate was refused as too large: from then on the
   * buffer is never written back, so the znode keeps its last complete
   * content instead of the prefix written before the refusal.
   */
  refused?: FsError | undefined;
  /**
   * Times set (futimens) while the buffer was not yet written back, as cp -a
   * and tar do before close: applied once the flush has made the new version.
   */
  pendingTimes?: { atimeMs: number; mtimeMs: number } | undefined;
  /**
   * Mode and owner set while the buffer held data never yet written back
   * (a file made here and being written, as `cp -a` sets its mode before
   * close): they go with its first write-back, so other hosts see its
   * content and these together.
   */
  pendingAttrs?: PendingAttrs | undefined;
}

/** What a rename or removal holds write-backs of: the files at or below `znode`, or at it alone (`exact`). */
export interface HoldTarget {
  znode: string;
  exact?: boolean;
}

const noop = () => {};

function holds(targets: readonly HoldTarget[], znode: string): boolean {
  return targets.some((t) => (t.exact ? znode === t.znode : isWithin(znode, t.znode)));
}

/**
 * Whether `file` goes to whatever file is under its name (its appends, after
 * another host deleted or rotated it): it writes at no version of its own,
 * so a node made again under the name is where its bytes should go.
 */
function followsName(file: OpenFile): boolean {
  return file.followsName === true || file.deletedElsewhere === true;
}

/**
 * A data version no node has: ZooKeeper's count from 0, and -1 asks for
 * any. A write-back at it is refused as another client's change would be.
 */
export const NO_VERSION = -2;

/**
 * A watch epoch the tree never has: a file whose node is "known since" it,
 * or made "since" it, asks ZooKeeper before its next write-back whether the
 * node under its name is still its own (file-ops.ts goneUnheard).
 */
export const UNSURE_EPOCH = -1;

export interface NodeIdentity {
  czxid: bigint;
  watchEpoch: number;
}

export interface Handle {
  file: OpenFile;
  writable: boolean;
  append: boolean;
  /**
   * This handle changed the buffer since its last flush. Only such a handle's
   * flush or release writes back: a reader closing, or the late release of a
   * handle that was already flushed, must not push another writer's
   * half-finished content to ZooKeeper.
   */
  pending: boolean;
  /**
   * This handle only truncated the file (O_TRUNC, ftruncate) since its last
   * flush. Programs close a duplicate descriptor right after opening (the
   * shell's `>`, dd), which sends a flush before any data is written: that
   * flush must not publish the emptied file, so a truncation alone is written
   * back by the next flush that follows a write, by fsync, or at release.
   */
  truncated: boolean;
  /** The `seq` of this handle's first and last writes since its last flush (none: 0). */
  firstWriteSeq: number;
  lastWriteSeq: number;
}

/**
 * A write-back as sent: `data` at data version `version`, whose content was
 * `over`, made of the buffer as it stood at change `seq` (`bufferLength`
 * bytes of it).
 */
export interface SentWrite {
  data: Buffer;
  over: Buffer;
  version: number;
  seq: number;
  bufferLength: number;
}

export function isDirty(file: OpenFile): boolean {
  return file.seq !== file.flushedSeq;
}

/**
 * Whether all `file` holds beyond (a part cut from the start of) the
 * content of its data version was appended with O_APPEND.
 */
export function onlyAppended(file: OpenFile): boolean {
  return file.rewrittenSeq <= file.flushedSeq && file.buffer.length >= file.keptLength;
}

/** `file`'s buffer starts with `content`, the data of its data version `version` (written back). */
export function rebase(file: OpenFile, content: Buffer, version: number): void {
  file.version = version;
  file.base = content;
  file.keptLength = content.length;
  // What of the tail is in `content` is written; what was appended after it is the tail now.
  if (file.tail && file.tail.from < content.length) {
    file.tail =
      file.buffer.length > content.length ? { from: content.length, seq: file.tail.seq } : undefined;
  }
}

/** `file`, clean, takes `content`, the data of data version `version` of the node `identity`, as read. */
export function takeVersion(file: OpenFile, content: Buffer, version: number, identity: NodeIdentity): void {
  file.buffer.reset(content);
  rebase(file, content, version);
  knowNode(file, identity);
}

/**
 * `file`'s node is `identity`, as ZooKeeper said just now (a read, a
 * write-back, a check): whatever doubt its create left is settled.
 */
export function knowNode(file: OpenFile, identity: NodeIdentity): void {
  file.identity = identity;
  file.madeEpoch = undefined;
}

/**
 * Whether `file` holds exactly the bytes of `version` and nothing here can
 * change it: no handle open for writing (an open for writing waits for the
 * stores on their way before it answers), and no change kept from one.
 */
export function isReadOnlyAt(file: OpenFile, version: number): boolean {
  return file.writerRefs === 0 && !isDirty(file) && !file.deleted && file.version === version;
}

/** `file`'s node is gone: changes made through its handles, before or after, have nowhere to go. */
export function markDeletedElsewhere(file: OpenFile): void {
  if (file.writerRefs > 0 || isDirty(file)) file.deletedElsewhere = true;
}

export class OpenFiles {
  private readonly handles = new Map<number, Handle>();
  private readonly files = new Map<string, OpenFile>();
  /** Renames and removals under way, holding write-backs (whileHeld). */
  private readonly holds = new Set<{ targets: readonly HoldTarget[]; gate: Promise<void> }>();
  /** Writes by path of files not open here under way (trackPathWrite), which holds wait for too. */
  private readonly pathWrites = new Set<{ znode: string; settled: Promise<void> }>();
  private nextFh = 1;

  /** The OpenFile of `znode`, if any handle has it open. */
  byZnode(znode: string): OpenFile | undefined {
    return this.files.get(znode);
  }

  /**
   * Whether the file open on `znode` holds writes that a handle still open
   * will write back (not those refused as too large, which never are): a directory's
   * `_zoo_data_` then counts as there, as a listing shows it.
   */
  hasUnsavedWrites(znode: string): boolean {
    const file = this.files.get(znode);
    return file !== undefined && isDirty(file) && file.writerRefs > 0 && !file.refused;
  }

  /** Adopts a freshly read file, or returns the one already open. */
  attach(
    znode: string,
    mountPath: string,
    data: Buffer,
    version: number,
    maxSize: number,
    identity?: NodeIdentity,
  ): OpenFile {
    const existing = this.files.get(znode);
    if (existing) return existing;
    const file: OpenFile = {
      znode,
      mountPath,
      buffer: new FileBuffer(data, Math.max(maxSize, data.length)),
      version,
      identity,
      madeEpoch: undefined,
      seq: 0,
      flushedSeq: 0,
      base: data,
      keptLength: data.length,
      rewrittenSeq: 0,
      cutInFlight: Number.POSITIVE_INFINITY,
      refs: 0,
      writerRefs: 0,
      deleted: false,
      mtimeMs: Date.now(),
      flushing: Promise.resolve(),
    };
    this.files.set(znode, file);
    return file;
  }

  open(file: OpenFile, options: { writable: boolean; append: boolean }): number {
    // fh 0 means "no handle" to the kernel (a file it opened itself), and fh travels as a uint32 here.
    let fh = this.nextFh;
    while (this.handles.has(fh) || fh === 0) fh = (fh + 1) % 0xffffffff;
    this.nextFh = (fh + 1) % 0xffffffff;
    file.refs++;
    if (options.writable) file.writerRefs++;
    this.handles.set(fh, {
      file,
      ...options,
      pending: false,
      truncated: false,
      firstWriteSeq: 0,
      lastWriteSeq: 0,
    });
    return fh;
  }

  get(fh: number): Handle {
    const handle = this.handles.get(fh);
    if (!handle) throw new FsError('EBADF', `no open file with handle ${fh}`);
    return handle;
  }

  /** Drops a handle; returns its file and whether that was the last handle on it. */
  close(fh: number): { file: OpenFile; last: boolean } {
    const handle = this.get(fh);
    this.handles.delete(fh);
    const file = handle.file;
    file.refs--;
    if (handle.writable) file.writerRefs--;
    const last = file.refs <= 0;
    if (last && this.files.get(file.znode) === file) this.files.delete(file.znode);
    return { file, last };
  }

  /**
   * Marks the files at or below `znode` unlinked: later flushes write
   * nothing. Also those only handles hold after a refused write-back: left
   * where they were, a node made again under the name could take their
   * bytes at its version. Not those that follow their name (followsName).
   */
  markDeleted(znode: string): void {
    this.markUnlinked({ znode });
  }

  /** Marks the file open on exactly `znode` unlinked: a directory's `_zoo_data_`, whose children stay. */
  markDeletedAt(znode: string): void {
    this.markUnlinked({ znode, exact: true });
  }

  private markUnlinked(target: HoldTarget): void {
    for (const file of this.everyFile()) {
      if (!holds([target], file.znode) || followsName(file)) continue;
      file.deleted = true;
      if (this.files.get(file.znode) === file) this.files.delete(file.znode);
    }
  }

  /**
   * Another client deleted `znode`: the file open on it keeps its bytes for
   * its handles, and an open of a node made again under the name reads that
   * one. Changes made through its handles, before or after, have nowhere to
   * go: writing them back fails and says so. So do those of files only
   * handles hold (a write-back refused, detach): a node made again under
   * the name may reach the data version their buffers are of.
   */
  deletedElsewhere(znode: string): void {
    const named = this.files.get(znode);
    if (named) {
      this.files.delete(znode);
      markDeletedElsewhere(named);
    }
    for (const handle of this.handles.values()) {
      if (handle.file.znode === znode) markDeletedElsewhere(handle.file);
    }
  }

  /**
   * A write-back of `file` was refused for good (another client changed or
   * deleted the node): later opens read the node as it is instead of
   * joining changes that can never be written (an `echo >> f` would fail,
   * unreported by the shell). Handles already open keep it.
   */
  detach(file: OpenFile): void {
    if (this.files.get(file.znode) === file) this.files.delete(file.znode);
  }

  /**
   * Runs `work` (a rename or removal here) holding the write-backs of every
   * file at or under any of `targets`: those already on their way (and
   * writes by path, trackPathWrite) land first, and those that start
   * meanwhile wait until it is done, so that no write-back crosses it: one
   * landing after it would go to a node it moved or made.
   */
  async whileHeld<T>(targets: readonly HoldTarget[], work: () => Promise<T>): Promise<T> {
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const hold = { targets, gate };
    this.holds.add(hold);
    const before: Promise<void>[] = [];
    for (const file of this.everyFile()) {
      if (!holds(targets, file.znode)) continue;
      before.push(file.flushing);
      file.flushing = file.flushing.then(() => gate);
    }
    for (const write of this.pathWrites) if (holds(targets, write.znode)) before.push(write.settled);
    try {
      await Promise.all(before);
      return await work();
    } finally {
      this.holds.delete(hold);
      open();
    }
  }

  /**
   * What a write-back of a file on `znode` waits for first: the holds under
   * way over it (a file opened, or re-keyed by another rename, after a hold
   * began is not in its chain).
   */
  heldFor(znode: string): Promise<void> | undefined {
    const gates = [...this.holds].filter((h) => holds(h.targets, znode)).map((h) => h.gate);
    return gates.length === 0 ? undefined : Promise.all(gates).then(() => {});
  }

  /**
   * Makes holds that begin while `done` (a write by path to `znode` of a file
   * not open here: truncate(2), which reads the node and writes it at the
   * version read) is under way wait for it, as for a write-back: landing
   * after a move, it would reach the node moved in at the same version. The
   * caller found `heldFor(znode)` empty in the same turn.
   */
  trackPathWrite<T>(znode: string, done: Promise<T>): Promise<T> {
    const entry = { znode, settled: done.then(noop, noop) };
    this.pathWrites.add(entry);
    entry.settled.then(() => this.pathWrites.delete(entry));
    return done;
  }

  /** Files open by name and those only handles still hold (detached, or deleted elsewhere). */
  private everyFile(): Set<OpenFile> {
    const files = new Set(this.files.values());
    for (const handle of this.handles.values()) files.add(handle.file);
    return files;
  }

  /** Another client changed `znode`'s data (a watch said so). */
  changedElsewhere(znode: string): void {
    const file = this.files.get(znode);
    if (file) file.behind = true;
  }

  /** Changes made while no watch reported them may have reached any open file. */
  allChangedElsewhere(): void {
    for (const file of this.files.values()) file.behind = true;
  }

  /** Re-keys open files after a rename of `from` to `to` (versions restart at 0 if unchanged, else NO_VERSION). */
  moved(
    from: string,
    to: string,
    versions: ReadonlyMap<string, number>,
    mountFrom: string,
    mountTo: string,
    made: { zxid: bigint | undefined; watchEpoch: number },
  ): void {
    for (const file of this.everyFile()) {
      const key = file.znode;
      if (!isWithin(key, from) || followsName(file)) continue;
      const named = this.files.get(key) === file;
      if (named) this.files.delete(key);
      file.znode = to + key.slice(from.length);
      if (file.mountPath === mountFrom || file.mountPath.startsWith(`${mountFrom}/`)) {
        file.mountPath = mountTo + file.mountPath.slice(mountFrom.length);
      }
      // The new node's versions count from 0 again: a buffer of the moved version is of version 0
      // now; one of an older version (another client wrote after it was opened) is of no version
      // of the new node, or its write-back could land once the new node reached that number. A
      // file only its handles hold was refused already: so it stays.
      if (named && versions.get(key) === file.version) {
        file.version = 0;
      } else {
        file.version = NO_VERSION;
        file.behind = true; // a reader reads what was moved, though the change's notice comes later
      }
      // The rename made a new node (a create and a delete), whose czxid is the zxid of the
      // transaction (`made`); unknown, the node counts as made here at `made.watchEpoch`, asked
      // about by its bytes after a watch gap. A doubt whether the node moved was this file's at
      // all stays: the moved node is asked about by its bytes.
      const unsure = file.identity?.watchEpoch === UNSURE_EPOCH || file.madeEpoch === UNSURE_EPOCH;
      file.identity =
        unsure || made.zxid === undefined ? undefined : { czxid: made.zxid, watchEpoch: made.watchEpoch };
      file.madeEpoch = unsure ? UNSURE_EPOCH : made.zxid === undefined ? made.watchEpoch : undefined;
      if (named) this.files.set(file.znode, file);
    }
  }

  /** The handles open for writing on `file`, oldest first. */
  writers(file: OpenFile): Handle[] {
    return [...this.handles.values()].filter((h) => h.file === file && h.writable);
  }

  /** Number of open handles (the daemon waits for them to drain before it exits). */
  get openCount(): number {
    return this.handles.size;
  }

  allFiles(): OpenFile[] {
    return [...new Set([...this.handles.values()].map((h) => h.file))];
  }
}
