/**
 * File contents: open reads the znode's data and version once; reads and
 * writes work on the shared buffer; flush (every close, fsync) writes the
 * whole content with one setData checked against that version. A write that
 * would lose another client's newer data is refused with EIO and the reason
 * logged — never a silent overwrite. A file can never grow past
 * --max-file-size or past what one ZooKeeper request carries (EFBIG), and
 * nothing is ever cut short.
 */
import { aclAllows, PERM_WRITE, sessionIdentities } from '../../core/zkfs/acl.js';
import {
  type Creator,
  defaultPerms,
  effectiveAttrs,
  encodeMeta,
  type MetaEntry,
  newEntry,
  parseMeta,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  showsEntry,
  withEntry,
  withTimes,
} from '../../core/zkfs/attrs.js';
import { FsError, isFsError } from '../../core/zkfs/errors.js';
import { droppableMarks, type MarkedNode, markedAsFile, withoutEntries } from '../../core/zkfs/file-marks.js';
import { allowsRegularFiles } from '../../core/zkfs/modes.js';
import { baseName, checkNewName, DATA_FILE, parentPath, toZnode, zkChild } from '../../core/zkfs/paths.js';
import { RACE_BUDGET_MS, raceWaitMs } from '../../core/zkfs/race-backoff.js';
import {
  docWrite,
  requestBytes,
  setDataBytes,
  ZK_MAX_REQUEST_BYTES,
  type ZkOp,
} from '../../core/zkfs/zk-ops.js';
import { isZkError, type MultiStats, transactionZxid, type ZkError, type ZkStat } from '../zookeeper.js';
import {
  applyPendingTimes,
  type FileAttr,
  fileEntryOwner,
  getattrCached,
  parentAttrs,
  settlePendingAttrs,
} from './attr-ops.js';
import { asFsError, commitWithRetry } from './commit.js';
import { entriesStillThere } from './gone-names.js';
import {
  type Handle,
  isDirty,
  knowNode,
  markDeletedElsewhere,
  NO_VERSION,
  type NodeIdentity,
  type OpenFile,
  onlyAppended,
  rebase,
  type SentWrite,
  takeVersion,
  UNSURE_EPOCH,
} from './open-files.js';
import {
  assertWritable,
  type LinkTarget,
  lookup,
  lookupCached,
  NOT_CACHED,
  type NodeTarget,
  resolve,
  resolveDir,
  type Target,
  type VfsContext,
} from './resolve.js';
import type { NodeData } from './tree.js';

const O_ACCMODE = 0o3;
const O_RDONLY = 0o0;
const O_WRONLY = 0o1;
const O_RDWR = 0o2;
const O_APPEND = 0o2000;
const O_EXCL = 0o200;

function checkRequestSize(znode: string, length: number, what: string): void {
  const bytes = setDataBytes(znode, length);
  if (bytes > ZK_MAX_REQUEST_BYTES) {
    throw new FsError(
      'EFBIG',
      `${what}: ${length} bytes at ${znode} need a ${bytes}-byte request (limit ${ZK_MAX_REQUEST_BYTES})`,
    );
  }
}

/**
 * EACCES at open when the node's ACL certainly refuses this session WRITE:
 * the data would only be refused at close, an error shells never report.
 */
async function checkWriteAcl(ctx: VfsContext, znode: string, path: string): Promise<void> {
  const acl = await ctx.tree.acl(znode).catch(() => undefined); // reading an ACL needs READ or ADMIN
  if (!acl) return;
  const identities = ctx.identities ?? sessionIdentities();
  if (aclAllows(acl, identities, PERM_WRITE) === 'no') {
    throw new FsError('EACCES', `the ACL of ${path} does not let this session write`);
  }
}

/** The file (or `_zoo_data_`) at `path`: EISDIR for a directory, EINVAL for a symbolic link. */
async function resolveFile(ctx: VfsContext, path: string): Promise<Exclude<Target, LinkTarget>> {
  const target = await resolve(ctx, path);
  if (target.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
  if (target.type === 'symlink') throw new FsError('EINVAL', `${path} is a symbolic link`);
  return target;
}

/** A node's data and stat, through the cache; the stat is kept as the node's current one. */
async function readNode(ctx: VfsContext, znode: string, mountPath: string): Promise<NodeData> {
  const node = await ctx.tree.readData(znode).catch((error: unknown) => {
    throw asFsError(error, `reading ${mountPath}`);
  });
  ctx.tree.stats.set(znode, node.stat);
  return node;
}

/** Reads a node's data fresh into the open-file table (or refreshes a clean buffer). */
async function load(ctx: VfsContext, znode: string, mountPath: string): Promise<OpenFile> {
  const existing = ctx.files.byZnode(znode);
  if (existing && isDirty(existing)) return existing;
  return adopt(ctx, znode, mountPath, await readNode(ctx, znode, mountPath));
}

/** `node`, just read, into the open-file table. */
function adopt(ctx: VfsContext, znode: string, mountPath: string, { data, stat }: NodeData): OpenFile {
  const open = ctx.files.byZnode(znode);
  if (open && !isDirty(open) && stat.version > open.version && open.writerRefs > 0) {
    // Handles open for writing keep the version they opened, and their write-back fails once
    // another client changed the node (as catchUp() leaves them): taking the newer content here
    // would have their writes go over that change unchecked. This open reads the node as it is.
    ctx.files.detach(open);
  } else if (open) {
    // Another open raced this one, or holds the file; a clean buffer takes the newer content.
    if (!isDirty(open) && stat.version >= open.version) {
      takeVersion(open, data, stat.version, identityOf(ctx, stat));
    }
    return open;
  }
  return ctx.files.attach(znode, mountPath, data, stat.version, ctx.maxFileSize, identityOf(ctx, stat));
}

/**
 * open() for reading, done at once when memory holds everything it needs,
 * as it does for a program re-reading files: each of open()'s turns of the
 * event loop comes before the kernel can answer the program. The handle,
 * or undefined when open() must be called (which then does the same work).
 */
export function openCached(ctx: VfsContext, path: string, flags: number): number | undefined {
  if ((flags & O_ACCMODE) !== O_RDONLY) return undefined;
  const target = lookupCached(ctx, path);
  if (target === NOT_CACHED || target?.type !== 'file') return undefined;
  const open = ctx.files.byZnode(target.znode);
  let file = open && isDirty(open) ? open : undefined;
  // onOpenRead() reads ahead only for a file whose data memory lacks: not one whose data was just found here.
  if (file) ctx.onOpenRead?.(path, target.znode);
  else {
    const node = ctx.tree.cachedData(ctx.pathKeys.of(path));
    if (!node) return undefined;
    file = adopt(ctx, target.znode, path, node);
  }
  return ctx.files.open(file, { writable: false, append: (flags & O_APPEND) !== 0 });
}

/**
 * Whether a read-only open of `path` that openCached() just answered would
 * be answered alike, but for its handle, until the tree's cache changes:
 * that cache is kept exact by a watch (a time-limited one expires without
 * telling), and no handle holds data not yet written (which an open for
 * reading would share).
 */
export function reopensAlike(ctx: VfsContext, path: string): boolean {
  if (!ctx.tree.exact) return false;
  const open = ctx.files.byZnode(ctx.pathKeys.of(path).znode);
  return open === undefined || !isDirty(open);
}

/** What memory holds of a name now: see lastSeen(). */
export interface LastSeen {
  /** Undefined when memory lacks them (then so might it a directory's or link's nature). */
  attr: FileAttr | undefined;
  /** A regular file's data (or what memory holds under a node of unknown type), when held. */
  data: Buffer | undefined;
  open: OpenFile | undefined;
}

/**
 * A regular file's attributes and data as memory holds them now, without
 * waiting: what a program holding it open still reads once it is deleted
 * (fuse/orphans.ts), and its open buffer here, if any. A directory's
 * attributes alone: a program working in it still looks at it (`stat .`,
 * `cd ..`). Undefined for anything else; the attributes or data are left
 * out when memory lacks them.
 */
export function lastSeen(ctx: VfsContext, path: string): LastSeen | undefined {
  // As memory holds it, though the name was deleted moments ago (replaced again and again, say).
  const cached = getattrCached(ctx, path, true);
  const attr = cached === NOT_CACHED ? undefined : cached;
  const type = attr && attr.mode & S_IFMT;
  if (type === S_IFDIR) return { attr, data: undefined, open: undefined };
  if (type !== undefined && type !== S_IFREG) return undefined;
  const keys = ctx.pathKeys.of(path);
  return { attr, data: ctx.tree.cachedData(keys)?.data, open: ctx.files.byZnode(keys.znode) };
}

export async function open(ctx: VfsContext, path: string, flags: number): Promise<number> {
  const target = await resolveFile(ctx, path);
  const writable = (flags & O_ACCMODE) === O_WRONLY || (flags & O_ACCMODE) === O_RDWR;
  if (writable) {
    assertWritable(ctx);
    await checkWriteAcl(ctx, target.znode, path);
  }
  if (!writable) ctx.onOpenRead?.(path, target.znode);
  const file = await load(ctx, target.znode, path);
  const fh = ctx.files.open(file, { writable, append: (flags & O_APPEND) !== 0 });
  // Open here, the file gets no new store; one already on its way must land before any write.
  if (writable) await ctx.settleStores?.(path);
  return fh;
}

/** A created file's handle, and its attributes when known without asking ZooKeeper. */
export interface Created {
  fh: number;
  attr?: FileAttr;
  /**
   * The file as made, when another client deleted or replaced it right
   * after (its handle writes back as to a file deleted elsewhere): what a
   * program holding it still sees.
   */
  gone?: LastSeen;
}

/**
 * What a create finds when the name exists: EEXIST for O_EXCL; otherwise,
 * as open(O_CREAT) opens a file that exists, ESTALE, on which the kernel
 * looks the name up again and opens what it finds there. The kernel sends a
 * create only for a name it believes missing, so without O_EXCL the name
 * was made meanwhile, here or by another client (two hosts running
 * `echo x > f` at once); EEXIST failed one of them.
 */
function nameTaken(path: string, flags: number): FsError {
  return (flags & O_EXCL) !== 0
    ? new FsError('EEXIST', `${path} exists`)
    : new FsError('ESTALE', `${path} was made meanwhile: the kernel looks it up again and opens it`);
}

/**
 * Creates an empty file (or opens `_zoo_data_`, which always exists for a
 * directory). `flags` are the open flags; without them the name must be new.
 * The file is `creator`'s (attrs.ts, newEntry), when given.
 */
export async function create(
  ctx: VfsContext,
  path: string,
  mode: number,
  flags: number = O_EXCL,
  creator?: Creator,
): Promise<Created> {
  assertWritable(ctx);
  const parent = await resolveDir(ctx, parentPath(path));
  const name = baseName(path);
  if (name === DATA_FILE) {
    const file = await load(ctx, parent.znode, path);
    const fh = ctx.files.open(file, { writable: true, append: (flags & O_APPEND) !== 0 });
    await ctx.settleStores?.(path);
    return { fh };
  }
  checkNewName(name, parent.isRoot);
  if (!allowsRegularFiles(ctx.mode)) {
    throw new FsError('ENOTSUP', `dir mode: only ${DATA_FILE} can be a file`);
  }
  if (await lookup(ctx, path)) throw nameTaken(path, flags);
  const znode = toZnode(ctx.root, path);
  const entry = newEntry('file', mode, ctx.defaults, creator, creator && (await parentAttrs(ctx, parent)));
  // Taken before the create is sent: a gap while it is out may hide a replacement of the new node.
  const watchEpoch = ctx.tree.watchEpoch;
  const made = await makeFile(ctx, parent, znode, entry, Buffer.alloc(0)).catch((error: unknown) => {
    if (isZkError(error, 'NODE_EXISTS') && error.path === znode) {
      // Another client made it since the lookup: what this mount holds of the name is stale.
      ctx.tree.forget(znode);
      ctx.tree.forget(parent.znode);
      throw nameTaken(path, flags);
    }
    throw asFsError(error, `creating ${path}`);
  });
  ctx.tree.forget(znode);
  ctx.tree.forget(parent.znode);
  ctx.files.markDeleted(znode); // a stale buffer of an earlier file by this name
  const file = ctx.files.attach(znode, path, Buffer.alloc(0), 0, ctx.maxFileSize);
  // The kernel wants the new file's attributes at once: they are known (empty, version 0,
  // the entry just written; times are this host's clock until the first write brings the
  // server's), so no stat is read back, which cost a round trip per file.
  const now = Date.now();
  const times = effectiveAttrs('file', { mtimeMs: now, version: 0 }, entry, ctx.defaults);
  const attr: FileAttr = { ...times, atimeMs: now, ctimeMs: now, size: 0, nlink: 1 };
  // O_APPEND counts from the start: two hosts' `>> f` making f at once each append (writeBack).
  const fh = ctx.files.open(file, { writable: true, append: (flags & O_APPEND) !== 0 });
  knowMadeNode(ctx, file, made, watchEpoch);
  // Another client's deletion of the name, or rename over it, right after this create: its
  // notices came with the create's and were taken for its own. Unnoticed, the file's version 0
  // would be written back over a node made again under the name (also at version 0), and the
  // kernel's new node would give the other file's size. Asked of ZooKeeper only after such a notice;
  // where asking fails, the file's next write-back asks again (goneUnheard), as after a watch gap.
  const replaced = await ctx.tree.replacedSinceMade(znode).catch(() => undefined);
  if (replaced === undefined) askBeforeWriteBack(file);
  if (!replaced) return { fh, attr };
  ctx.files.deletedElsewhere(znode);
  return { fh, attr, gone: { attr, data: undefined, open: file } };
}

/**
 * Records which node `file`, just made and open, is, so that a write-back
 * after a watch gap finds out whether another host replaced it meanwhile
 * (goneUnheard), rather than writing over a node made again under the name
 * at the same data version 0: by the transaction of the multi that made it
 * (`made`: every stat it left carries it), or, where it left none (it made
 * the directory's document too; its reply was lost), by a stat read in the
 * background, not to hold the create up. That read is kept only if nothing
 * since says it may be of another node: no deletion heard, no watch gap, no
 * doubt left unsettled (askBeforeWriteBack), no rename or write-back of the
 * file. `watchEpoch` is the tree's before the create was sent.
 */
function knowMadeNode(ctx: VfsContext, file: OpenFile, made: MultiStats, watchEpoch: number): void {
  const zxid = transactionZxid(made);
  if (zxid !== undefined) {
    file.identity ??= { czxid: zxid, watchEpoch };
    return;
  }
  file.madeEpoch = watchEpoch;
  const { znode } = file;
  ctx.client.exists(znode).then(
    (stat) => {
      const same =
        file.znode === znode && ctx.tree.watchEpoch === watchEpoch && file.madeEpoch === watchEpoch;
      if (stat && same && !file.identity && !file.deletedElsewhere && !file.deleted)
        file.identity = { czxid: stat.czxid, watchEpoch };
    },
    () => {},
  );
}

/**
 * Has `file`'s next write-back ask ZooKeeper whether its node is still the
 * one made here, as after a watch gap: a doubt about it could not be settled.
 * An identity the create's own stats gave is checked by its czxid; one a
 * background read gave (`madeEpoch` set) may be of the other client's node,
 * read after it replaced this one, so only the bytes check is left.
 */
function askBeforeWriteBack(file: OpenFile): void {
  if (file.identity && file.madeEpoch === undefined) {
    file.identity = { ...file.identity, watchEpoch: UNSURE_EPOCH };
  } else {
    file.identity = undefined;
    file.madeEpoch = UNSURE_EPOCH;
  }
}

/**
 * Makes file `znode` in `parent`, holding `data`, and its entry in the
 * directory's document, in one multi (made again from fresh reads while
 * other hosts win the race for the document). The document sheds the marks
 * of siblings memory knows to hold data, each checked at the data version
 * seen (core/zkfs/file-marks.ts). The ZkError of a name taken meanwhile
 * (NODE_EXISTS at `znode`) is the caller's to answer. Resolves to the
 * multi's stats (ZkClient.multi).
 */
async function makeFile(
  ctx: VfsContext,
  parent: NodeTarget,
  znode: string,
  entry: MetaEntry,
  data: Buffer,
): Promise<MultiStats> {
  const name = baseName(znode);
  const nodeOf = (sibling: string): MarkedNode | undefined =>
    ctx.tree.stats.peek(zkChild(parent.znode, sibling)) ?? undefined;
  // Once a sibling's check fails (emptied, replaced or unreadable meanwhile), the create goes
  // on without dropping any mark: one failing op is named per attempt, and a directory of
  // such siblings must not run the create out of attempts.
  // Only from a tree kept exact by a watch: a stat kept by time may be of a node deleted and made
  // again since, at the same data version, which a check cannot tell apart.
  let dropping = ctx.tree.exact;
  const checked = new Set<string>();
  const retryAlso = (error: ZkError): boolean => {
    if (error.path === undefined || !checked.has(error.path)) return false;
    dropping = false;
    return true;
  };
  return ctx.proofs.during((token) =>
    commitWithRetry(
      ctx.tree,
      async (attempt): Promise<ZkOp[]> => {
        const doc =
          attempt === 0 ? await ctx.tree.meta(parent.znode) : await ctx.tree.freshMeta(parent.znode);
        const acl = await ctx.tree.acl(parent.znode);
        const kept = await entriesStillThere(ctx, parent, doc);
        const dropped = dropping ? droppableMarks(kept, name, nodeOf) : [];
        const entries = withEntry(
          withoutEntries(
            kept,
            dropped.map((mark) => mark.name),
          ),
          name,
          entry,
        );
        checked.clear();
        const checks = dropped.map((mark): ZkOp => {
          const path = zkChild(parent.znode, mark.name);
          checked.add(path);
          return { op: 'check', path, version: mark.version };
        });
        return [
          { op: 'create', path: znode, data, acl, readBack: false },
          ...checks,
          docWrite(doc.path, doc.version, encodeMeta(token.mark(entries)), acl, undefined, token.shows),
        ];
      },
      { retryAlso },
    ),
  );
}

export function read(
  ctx: VfsContext,
  fh: number,
  length: number,
  position: number,
): Buffer | Promise<Buffer> {
  const file = ctx.files.get(fh).file;
  if (position === 0) ctx.onReadStart?.(file.mountPath);
  if (file.behind && followsNode(ctx, file)) {
    return catchUp(ctx, file).then(() => file.buffer.read(position, length));
  }
  return file.buffer.read(position, length);
}

/**
 * Whether `file` should show its node's current data: only handles that read
 * have it open, nothing of it waits to be written back, and its name still
 * stands for it (a file deleted while open is read as it was).
 */
function followsNode(ctx: VfsContext, file: OpenFile): boolean {
  return (
    file.writerRefs === 0 &&
    !isDirty(file) &&
    !file.deleted &&
    !file.deletedElsewhere &&
    ctx.files.byZnode(file.znode) === file
  );
}

/** Reads the data another client wrote into `file`'s buffer, still nobody's but readers'. */
async function catchUp(ctx: VfsContext, file: OpenFile): Promise<void> {
  file.behind = false; // a change heard while reading marks it again
  let node: NodeData;
  try {
    node = await readNode(ctx, file.znode, file.mountPath);
  } catch (error) {
    // Gone meanwhile: read as it was, like a file deleted while open.
    if (error instanceof FsError && error.code === 'ENOENT') return;
    file.behind = true;
    throw error;
  }
  if (followsNode(ctx, file) && node.stat.version > file.version) {
    takeVersion(file, node.data, node.stat.version, identityOf(ctx, node.stat));
  }
}

/** Bytes read by path, and the size of the content they were cut from. */
export interface PathRead {
  data: Buffer;
  size: number;
}

/**
 * A read of a file nobody opened through us (read-only mounts, where the
 * kernel opens files by itself): the node's current data, from the cache.
 */
export async function readPath(
  ctx: VfsContext,
  path: string,
  length: number,
  position: number,
): Promise<PathRead> {
  const target = await resolveFile(ctx, path);
  const { data } = await readNode(ctx, target.znode, path);
  if (position === 0) ctx.onReadStart?.(path);
  return { data: data.subarray(position, position + length), size: data.length };
}

export function write(ctx: VfsContext, fh: number, data: Buffer, position: number): number {
  assertWritable(ctx);
  const handle = ctx.files.get(fh);
  const file = handle.file;
  // The kernel computes the append offset from the size it last saw; the buffer is the truth.
  const offset = handle.append ? file.buffer.length : position;
  handle.pending = true;
  file.pendingTimes = undefined; // a write after futimens makes its own mtime
  const written = refuseTooLarge(ctx, file, () => {
    checkRequestSize(
      file.znode,
      Math.max(file.buffer.length, offset + data.length),
      `writing ${file.mountPath}`,
    );
    return file.buffer.write(data, offset);
  });
  file.seq++;
  if (handle.firstWriteSeq === 0) handle.firstWriteSeq = file.seq;
  handle.lastWriteSeq = file.seq;
  if (handle.append) file.tail ??= { from: offset, seq: file.seq };
  else {
    file.rewrittenSeq = file.seq;
    file.tail = undefined;
  }
  file.mtimeMs = Date.now();
  return written;
}

/**
 * Notes change `file.seq`, a truncation from `before` bytes to `size`: one
 * that shortens keeps the buffer a prefix of what it was (a log cut by
 * copytruncate, then appended to); one that lengthens writes zeros.
 */
function truncated(file: OpenFile, before: number, size: number): void {
  if (size > before) file.rewrittenSeq = file.seq;
  else file.keptLength = Math.min(file.keptLength, size);
  if (size > before || (file.tail && size <= file.tail.from)) file.tail = undefined;
  file.cutInFlight = Math.min(file.cutInFlight, size);
}

/**
 * Runs a write; an EFBIG marks the file so its partial content (what the
 * program wrote before) is never written back, and later opens read the
 * node as it is instead of joining changes that can never be written.
 */
function refuseTooLarge<T>(ctx: VfsContext, file: OpenFile, step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (error instanceof FsError && error.code === 'EFBIG') {
      file.refused = error;
      ctx.files.detach(file);
    }
    throw error;
  }
}

/** `file`'s node as it is now; null when it is gone. Any other failure is the write-back's refusal. */
async function currentNode(ctx: VfsContext, file: OpenFile): Promise<NodeData | null> {
  try {
    return await ctx.client.getData(file.znode);
  } catch (error) {
    if (isZkError(error, 'NO_NODE')) return null;
    throw await refusal(ctx, file, error, file.buffer.length);
  }
}

/** Whether `stat` is of a node made after the one `file` came from, under the same name. */
function isAnotherNode(file: OpenFile, stat: ZkStat): boolean {
  return file.identity !== undefined && stat.czxid !== file.identity.czxid;
}

/** The node of `stat`, as known now. */
function identityOf(ctx: VfsContext, stat: ZkStat): NodeIdentity {
  return { czxid: stat.czxid, watchEpoch: ctx.tree.watchEpoch };
}

/** goneUnheard found the node of a write-back gone or made again before the write was sent again. */
class NodeGone extends Error {}

/**
 * The check before a write read from node `znode` of `czxid` is sent again
 * after its reply was lost: at the data version read, it could land in a
 * node another host made under the name meanwhile at that same version
 * (each new node starts at 0). Throws NodeGone when the node there is not
 * that one.
 */
function sameNodeBeforeResend(ctx: VfsContext, znode: string, czxid: bigint): () => Promise<void> {
  return async () => {
    if ((await ctx.client.exists(znode))?.czxid !== czxid) throw new NodeGone();
  };
}

/**
 * Whether `file`'s node was deleted, or deleted and made again, without the
 * mount hearing of it: asked of ZooKeeper only when the watch was lost
 * since the node was known (or there is none), since a write at the data
 * version read would land in a node made again that has the same version.
 * A file made here whose node is not known (knowMadeNode) is told from one
 * made again by its bytes: the same node at the same data version holds the
 * same bytes, so a node at its version with another length is another's
 * (an empty one made again is not told apart, and loses nothing).
 */
async function goneUnheard(ctx: VfsContext, file: OpenFile): Promise<boolean> {
  const known = file.identity;
  const since = known?.watchEpoch ?? file.madeEpoch;
  if (since === undefined || (ctx.tree.exact && since === ctx.tree.watchEpoch)) return false;
  let stat: ZkStat | null;
  try {
    stat = await ctx.client.exists(file.znode);
  } catch (error) {
    throw asFsError(error, `writing ${file.mountPath}`);
  }
  if (!known) return !stat || (stat.version === file.version && stat.dataLength !== file.base.length);
  if (stat?.czxid !== known.czxid) return true;
  knowNode(file, identityOf(ctx, stat));
  return false;
}

/** EFBIG when appending makes `file` `length` bytes: more than --max-file-size or one request carries. */
function checkAppendedSize(file: OpenFile, length: number): void {
  if (length > file.buffer.maxSize) {
    throw new FsError('EFBIG', `appending to ${file.mountPath}: ${length} bytes exceed --max-file-size`);
  }
  checkRequestSize(file.znode, length, `appending to ${file.mountPath}`);
}

/** The failure of changes to a file whose node is gone; later opens read the name afresh. */
function lostToDeletion(ctx: VfsContext, file: OpenFile): FsError {
  ctx.files.detach(file);
  // Its later write-backs too: a node made again under the name may reach the version it was of.
  markDeletedElsewhere(file);
  ctx.log.error(`write to ${file.mountPath} lost: another client deleted it while it was open`);
  return new FsError('EIO', `${file.mountPath} was deleted`);
}

async function writeBack(ctx: VfsContext, file: OpenFile, by?: Handle): Promise<void> {
  try {
    await writeBackData(ctx, file, by);
  } finally {
    // A mode or owner that waited for data that did not go (or went another way): on its own now.
    if (file.pendingAttrs) await settlePendingAttrs(ctx, file);
  }
}

async function writeBackData(ctx: VfsContext, file: OpenFile, by?: Handle): Promise<void> {
  if (!isDirty(file) || file.deleted) return;
  // Its appends went out alone, ahead of a rewrite here that cannot be written back.
  if (by && file.salvaged && appendedWithin(by, file.salvaged.from, file.salvaged.to)) return;
  if (file.refused) {
    ctx.log.warn(
      `${file.mountPath}: not written back: ${file.refused.message}; it keeps its previous content`,
    );
    ctx.pagesStale?.(file.mountPath);
    throw new FsError('EFBIG', file.refused.message);
  }
  if (file.deletedElsewhere || file.followsName || (await goneUnheard(ctx, file))) {
    await appendToName(ctx, file);
    return;
  }
  if (file.inDoubt) {
    await settleDoubt(ctx, file, file.inDoubt);
    if (!isDirty(file)) return;
  }
  const seq = file.seq;
  const content = file.buffer.content();
  ctx.log.debug(`write back ${file.mountPath}: ${content.length} bytes over data version ${file.version}`);
  const sent = { data: content, over: file.base, version: file.version, seq, bufferLength: content.length };
  let stat: ZkStat;
  file.cutInFlight = Number.POSITIVE_INFINITY;
  // Sent again once the connection or session is back: the watch was down meanwhile.
  let resending = false;
  const beforeResend = async () => {
    resending = true;
    if (await goneUnheard(ctx, file)) throw new NodeGone();
  };
  try {
    stat =
      (await writeWithAttrs(ctx, file, content, beforeResend)) ??
      (await settlePendingAttrs(ctx, file).then(() =>
        content.length === 0 && baseName(file.mountPath) !== DATA_FILE
          ? writeEmpty(ctx, file.znode, file.version, beforeResend)
          : ctx.client.setData(file.znode, content, file.version, { beforeResend }),
      ));
  } catch (error) {
    if (error instanceof NodeGone) {
      await appendToName(ctx, file);
      return;
    }
    // Sent, and nothing says whether it landed (no answer, or the check before sending it again
    // failed): the next write-back asks first.
    if (isZkError(error, 'TIMEOUT') ? error.unanswered : resending && !isZkError(error)) file.inDoubt = sent;
    if (isZkError(error, 'BAD_VERSION') && onlyAppended(file)) {
      if (error.resent && (await landedBeforeLoss(ctx, file, sent))) return;
      await appendToCurrent(ctx, file);
      return;
    }
    if (isZkError(error, 'NO_NODE') && !error.resent) {
      await appendToName(ctx, file);
      return;
    }
    if (
      isZkError(error, 'BAD_VERSION') &&
      !error.resent &&
      by &&
      file.tail &&
      appendedWithin(by, file.tail.seq)
    ) {
      await salvageAppends(ctx, file);
      return;
    }
    throw await refusal(ctx, file, error, content.length);
  }
  written(ctx, file, stat, seq, content);
  await applyTimes(ctx, file, stat);
}

/**
 * Empties file `znode` at data `version`, keeping its mark as a file
 * (core/zkfs/file-marks.ts): in one multi with its directory's document,
 * which gains the mark where it lacks it and is checked where it has it,
 * so that a create elsewhere that saw the file hold data cannot drop the
 * mark after this write. Fails as setData would when the file's own op
 * does; the document's races are run again from a fresh read, and a
 * document this session may not read or write leaves the data to go
 * alone, as it did before marks were dropped.
 */
async function writeEmpty(
  ctx: VfsContext,
  znode: string,
  version: number,
  beforeResend?: () => Promise<void>,
): Promise<ZkStat> {
  const dir = parentPath(znode);
  const name = baseName(znode);
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const doc = attempt === 0 ? await ctx.tree.meta(dir) : await ctx.tree.freshMeta(dir);
    const mark = markedAsFile(doc.value.entries.get(name));
    let docOp: ZkOp;
    if (mark === undefined && doc.version !== undefined) {
      docOp = { op: 'check', path: doc.path, version: doc.version };
    } else {
      const entry = mark ?? { t: 'f' };
      const acl = doc.version === undefined ? await ctx.tree.acl(dir) : [];
      const data = encodeMeta(withEntry(doc.value, name, entry));
      // Read back after a lost reply, the document may hold another host's change to the entry since.
      const applied = (now: Buffer) => parseMeta(now).entries.get(name)?.t === 'f';
      docOp = docWrite(doc.path, doc.version, data, acl, applied);
    }
    const ops: ZkOp[] = [{ op: 'setData', path: znode, data: Buffer.alloc(0), version }, docOp];
    try {
      const stats = await ctx.client.multi(ops, { beforeResend });
      // A tree kept by time holds the document as it was, without the mark: the file would show as a directory.
      if (docOp.op !== 'check') ctx.tree.metas.invalidate(dir);
      const stat = stats[0] ?? (await ctx.tree.freshStat(znode));
      if (!stat) throw new FsError('EIO', `${znode} was deleted as it was emptied`);
      return stat;
    } catch (error) {
      // Anything but the document's op is the caller's, as a setData's failure would be.
      if (!isZkError(error) || error.opIndex !== 1) throw error;
      if (!isZkError(error, 'BAD_VERSION', 'NODE_EXISTS', 'NO_NODE')) {
        return ctx.client.setData(znode, Buffer.alloc(0), version, { beforeResend });
      }
      ctx.tree.metas.invalidate(dir);
      if (!(await retryAfterRace(true, started, attempt))) {
        throw new FsError(
          'EIO',
          `emptying ${znode}: other clients changed ${dir}'s metadata before each attempt`,
          {
            cause: error,
          },
        );
      }
    }
  }
}

/**
 * Writes `content` back with the times a program set since its last write
 * (futimens before close, as cp -a and tar do), pinned to the version this
 * write makes, and the mode and owner set before a first write-back
 * (attr-ops.ts, neverWrittenBack), in one transaction with the directory's
 * document: not a second request after it. Resolves to the file's new
 * stat; undefined, having written nothing, when nothing waits, or it
 * cannot go along (the version is not known, the name holds another node
 * now, the two do not fit one request, another host changed the document
 * first): the mode and owner then go first, the data alone and the times
 * after them. A failure of the file's own write is the caller's to answer,
 * as a setData's would be.
 */
async function writeWithAttrs(
  ctx: VfsContext,
  file: OpenFile,
  content: Buffer,
  beforeResend: () => Promise<void>,
): Promise<ZkStat | undefined> {
  const times = file.pendingTimes;
  const attrs = file.pendingAttrs;
  if ((!times && !attrs) || file.version < 0) return undefined;
  const target = await fileEntryOwner(ctx, file);
  if (!target) return undefined;
  // Where the document cannot be read now, the data are not held up for it.
  const doc = await ctx.tree.meta(target.metaDir).catch(() => undefined);
  if (!doc) return undefined;
  // Only a document not made yet needs an ACL (its directory's); asked otherwise, a stale one
  // would cost a request for nothing.
  const acl = doc.version === undefined ? await ctx.tree.acl(target.metaDir).catch(() => undefined) : [];
  if (!acl) return undefined;
  const before = doc.value.entries.get(target.entryName);
  const timed = times ? withTimes(before, times.atimeMs, times.mtimeMs, file.version + 1) : before;
  // Emptied, it needs its mark as a file again (core/zkfs/file-marks.ts); the document's version guards it.
  const entry: MetaEntry = { ...timed, ...attrs, ...(content.length === 0 ? { t: 'f' } : {}) };
  const data = encodeMeta(withEntry(doc.value, target.entryName, entry));
  // Sent again after a lost reply, the document may have been rewritten since by another host.
  const applied = (now: Buffer) => showsEntry(now, target.entryName, entry);
  const ops: ZkOp[] = [
    { op: 'setData', path: file.znode, data: content, version: file.version },
    docWrite(doc.path, doc.version, data, acl, applied),
  ];
  if (requestBytes(ops) > ZK_MAX_REQUEST_BYTES) return undefined;
  let stats: readonly (ZkStat | undefined)[];
  try {
    stats = await ctx.client.multi(ops, { beforeResend });
  } catch (error) {
    // Only the document's check failed, so the file's passed: its data were not written.
    if (isZkError(error) && error.opIndex === 1) return undefined;
    throw error;
  }
  if (file.pendingTimes === times) file.pendingTimes = undefined;
  if (file.pendingAttrs === attrs) file.pendingAttrs = undefined;
  // As in writeEmpty: a tree kept by time must not pair the empty data with a document without the mark.
  if (content.length === 0) ctx.tree.metas.invalidate(target.metaDir);
  const stat = stats[0] ?? (await ctx.tree.freshStat(file.znode));
  if (!stat) throw new FsError('EIO', `${file.mountPath} was deleted as it was written back`);
  return stat;
}

/** Data version `stat` of `file` holds `content`, its buffer as it stood at change `seq`. */
function written(ctx: VfsContext, file: OpenFile, stat: ZkStat, seq: number, content: Buffer): void {
  rebase(file, content, stat.version);
  knowNode(file, identityOf(ctx, stat));
  // A truncation since `seq` left the buffer a shorter prefix of `content`.
  file.keptLength = Math.min(content.length, file.cutInFlight);
  file.flushedSeq = seq;
  ctx.tree.stats.set(file.znode, stat);
  // Written from a file later opens no longer join (adopt()): the one open under the name now
  // reads the node again, since ZooKeeper's notice of this write, being this mount's, says nothing.
  if (ctx.files.byZnode(file.znode) !== file) ctx.files.changedElsewhere(file.znode);
}

async function applyTimes(ctx: VfsContext, file: OpenFile, stat: ZkStat): Promise<void> {
  if (!file.pendingTimes || file.flushedSeq !== file.seq) return;
  await applyPendingTimes(ctx, file, stat.version).catch((error: unknown) => {
    ctx.log.warn(
      `${file.mountPath}: times not kept: ${error instanceof Error ? error.message : String(error)}`,
    );
  });
}

/**
 * Another client changed a file that only O_APPEND writes changed here
 * since its data version (a log several hosts append to): the bytes
 * appended here go at the end of the node as it is now, as O_APPEND writes
 * land at the end of the file on a local disk, instead of failing a close
 * that shells do not report (`echo line >> log` loses the line). Tried
 * again, as a shared document is, while other clients keep winning.
 */
async function appendToCurrent(ctx: VfsContext, file: OpenFile): Promise<void> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const node = await currentNode(ctx, file);
    if (!node) return appendToName(ctx, file);
    // What the awaits let in: a rewrite, a deletion, a refusal as too large.
    if (file.deleted) return;
    if (file.refused) throw new FsError('EFBIG', file.refused.message);
    // Deleted and made again (or a directory now) before the mount heard of it.
    if (file.deletedElsewhere || isAnotherNode(file, node.stat)) return appendToName(ctx, file);
    const merged = onlyAppended(file) ? appendedTo(file, node.data) : undefined;
    if (!merged) throw await refusal(ctx, file, 'conflict', file.buffer.length);
    const seq = file.seq;
    const appended = file.buffer.length - file.keptLength;
    const sent = file.buffer.length;
    checkAppendedSize(file, merged.length);
    ctx.log.debug(
      `write back ${file.mountPath}: ${appended} bytes appended over data version ${node.stat.version} ` +
        `(another client wrote after the version it was opened at)`,
    );
    let stat: ZkStat;
    file.cutInFlight = Number.POSITIVE_INFINITY;
    const write = { data: merged, over: node.data, version: node.stat.version, seq, bufferLength: sent };
    const beforeResend = sameNodeBeforeResend(ctx, file.znode, node.stat.czxid);
    try {
      stat =
        merged.length === 0
          ? await writeEmpty(ctx, file.znode, node.stat.version, beforeResend)
          : await ctx.client.setData(file.znode, merged, node.stat.version, { beforeResend });
    } catch (error) {
      // Another node took the name before the write went again: the next round sees it (appendToName).
      if (error instanceof NodeGone) continue;
      if (isZkError(error, 'TIMEOUT') && error.unanswered) file.inDoubt = write;
      if (isZkError(error, 'BAD_VERSION') && error.resent && (await landedBeforeLoss(ctx, file, write)))
        return;
      if (await lostRace(error, started, attempt)) continue;
      if (isZkError(error, 'NO_NODE') && !error.resent) return appendToName(ctx, file);
      throw await refusal(ctx, file, error, merged.length);
    }
    await landed(ctx, file, { merged, stat, seq, sent }, "after another client's change");
    return;
  }
}

/**
 * An append-only write-back of `sent.data` (made of the buffer as it was,
 * `sent.bufferLength` bytes, at change `sent.seq`), sent at data version
 * `sent.version`, whose content was `sent.over`, whose reply was lost, and
 * which, sent again, found another client's write (BAD_VERSION): whether
 * the first send had landed, another client appending after it. Appenders
 * only add at the end, so the node holding those bytes as its head says it
 * did: the bytes are not appended again (nor the close failed with EIO,
 * which made a program that retried write the line twice); else they go at
 * the end as after any race lost to another appender. Bytes another client
 * appended meanwhile that are the very bytes sent here pass for them: the
 * same line from two hosts at one moment then shows once. A write that cut
 * the file (copytruncate) sent the start of the old content, which the old
 * content with another client's bytes after it begins with too: it landed
 * only if the node no longer begins with the old content.
 */
async function landedBeforeLoss(ctx: VfsContext, file: OpenFile, sent: SentWrite): Promise<boolean> {
  const node = await currentNode(ctx, file);
  return node !== null && !isAnotherNode(file, node.stat) && appendsLanded(ctx, file, sent, node);
}

/**
 * landedBeforeLoss, given `node`: the file's own node as it is now, or,
 * for a file that follows its name (appendToName), the node under it.
 */
async function appendsLanded(
  ctx: VfsContext,
  file: OpenFile,
  sent: SentWrite,
  node: NodeData,
): Promise<boolean> {
  // Sent at no version a node has (NO_VERSION), it was refused wherever it went.
  if (sent.version < -1 || node.stat.version <= sent.version) return false;
  const { data, over, seq, bufferLength } = sent;
  if (!startsWith(node.data, data)) return false;
  if (!startsWith(data, over) && startsWith(node.data, over)) return false;
  await landed(
    ctx,
    file,
    { merged: node.data, stat: node.stat, seq, sent: bufferLength },
    'after its reply was lost',
  );
  return true;
}

/**
 * `doubt`, a write-back of `file` sent and never answered before the wait
 * for ZooKeeper ran out (the close that sent it failed with ETIMEDOUT):
 * whether it landed, asked before the next write-back is sent. Landed, it
 * is written: appends as after a lost reply (landedBeforeLoss), anything
 * else when the node holds exactly its bytes at a later version. Else the
 * next write-back goes as if it had never been sent. Throws, keeping the
 * doubt, while ZooKeeper cannot be asked.
 */
async function settleDoubt(ctx: VfsContext, file: OpenFile, doubt: SentWrite): Promise<void> {
  const node = await currentNode(ctx, file);
  file.inDoubt = undefined;
  if (!node || isAnotherNode(file, node.stat)) return;
  if (onlyAppended(file)) await appendsLanded(ctx, file, doubt, node);
  else if (node.stat.version > doubt.version && node.data.equals(doubt.data)) {
    written(ctx, file, node.stat, doubt.seq, doubt.data);
  }
}

function startsWith(bytes: Buffer, head: Buffer): boolean {
  return bytes.length >= head.length && bytes.subarray(0, head.length).equals(head);
}

/**
 * After a race lost to another client (`raced`), while the time for trying
 * since `started` lasts: waits, and says to read the node again and retry.
 */
async function retryAfterRace(raced: boolean, started: number, attempt: number): Promise<boolean> {
  if (!raced || Date.now() - started >= RACE_BUDGET_MS) return false;
  await new Promise((r) => setTimeout(r, raceWaitMs(attempt)));
  return true;
}

/** A race lost to another client's write (BAD_VERSION): see retryAfterRace. */
function lostRace(error: unknown, started: number, attempt: number): Promise<boolean> {
  return retryAfterRace(isZkError(error, 'BAD_VERSION') && !error.resent, started, attempt);
}

/**
 * Appended bytes reached the node: `merged`, sent at change `seq` with the
 * buffer `sent` bytes long, is its content now (`stat`: its stat, null when
 * it is gone already). The buffer becomes that content with what was
 * appended since; emptied meanwhile (copytruncate), it holds only what was
 * appended since. A rewrite, or another cut, made here meanwhile was at
 * offsets into the old content: EIO, naming `how` the bytes went.
 */
async function landed(
  ctx: VfsContext,
  file: OpenFile,
  sent: { merged: Buffer; stat: ZkStat | null; seq: number; sent: number },
  how: string,
): Promise<void> {
  const { merged, stat, seq } = sent;
  const cut = file.cutInFlight;
  if (!onlyAppended(file) || (cut !== Number.POSITIVE_INFINITY && cut !== 0)) {
    ctx.files.detach(file);
    ctx.log.error(
      `write to ${file.mountPath} refused: rewritten here while appending ${how}; reopen the file and write again`,
    );
    throw new FsError('EIO', `conflicting write to ${file.mountPath}`);
  }
  if (cut !== 0) file.buffer.reset(Buffer.concat([merged, file.buffer.view().subarray(sent.sent)]));
  if (stat) {
    written(ctx, file, stat, seq, merged);
    await applyTimes(ctx, file, stat);
  } else {
    // The node is gone already. Its version is never used: the next write-back (appendToName)
    // reads what is under the name first.
    rebase(file, merged, 0);
    file.keptLength = Math.min(merged.length, file.cutInFlight);
    file.flushedSeq = seq;
  }
}

/**
 * A file another client deleted while it was open here, or renamed away
 * (ZooKeeper cannot tell the two apart: `mv log log.1` on another host is a
 * create and a delete): when only O_APPEND writes changed it here since
 * what was written back, the bytes appended go to the end of the file now
 * under its name, made again if none is there, as the next `>> log` would.
 * On a local disk they would land in the renamed file; here they would be
 * lost, and a shell never reports a failed close. Any other change fails
 * (EIO). From then on, each write-back of the file appends what was
 * appended since to what is under the name at that moment, never a whole
 * buffer at a data version that a node made again could also have.
 */
async function appendToName(ctx: VfsContext, file: OpenFile): Promise<void> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    // Removed here while the write-back was on its way: its content goes nowhere, as on a local disk.
    if (file.deleted) return;
    // Nothing to read for a change that is not only appends: it fails at once, as it always did.
    if (!onlyAppended(file)) {
      throw lostToDeletion(ctx, file);
    }
    // A directory or a symbolic link took the name: the bytes have no file to go to.
    const there = await lookup(ctx, file.mountPath).catch(() => undefined);
    const current = await currentNode(ctx, file);
    // What the awaits let in: a deletion here, a refusal as too large.
    if (file.deleted) return;
    if (file.refused) throw new FsError('EFBIG', file.refused.message);
    const elsewhere = there !== undefined && there.type !== 'file';
    // A directory's _zoo_data_ is its node's data: nothing to make again in its place.
    const unmade = !current && (baseName(file.mountPath) === DATA_FILE || !allowsRegularFiles(ctx.mode));
    if (!onlyAppended(file) || elsewhere || unmade) {
      throw lostToDeletion(ctx, file);
    }
    // Its last write-back got no answer: landed, its bytes are there, whatever it went to.
    const doubt = file.inDoubt;
    file.inDoubt = undefined;
    if (doubt && current && (await appendsLanded(ctx, file, doubt, current))) {
      file.deletedElsewhere = false;
      file.followsName = true;
      ctx.files.detach(file);
      if (!isDirty(file)) return;
      continue;
    }
    const seq = file.seq;
    const sent = file.buffer.length;
    const appended = Buffer.from(file.buffer.view().subarray(file.keptLength));
    const merged = current ? Buffer.concat([current.data, appended]) : appended;
    const write = {
      data: merged,
      over: current?.data ?? Buffer.alloc(0),
      // A create: any node found under the name is later.
      version: current?.stat.version ?? -1,
      seq,
      bufferLength: sent,
    };
    checkAppendedSize(file, merged.length);
    file.cutInFlight = Number.POSITIVE_INFINITY;
    let stat: ZkStat | null;
    try {
      if (current) {
        const beforeResend = sameNodeBeforeResend(ctx, file.znode, current.stat.czxid);
        stat = await ctx.client.setData(file.znode, merged, current.stat.version, { beforeResend });
      } else {
        const parent = await resolveDir(ctx, parentPath(file.mountPath));
        await makeFile(
          ctx,
          parent,
          file.znode,
          newEntry('file', defaultPerms('file', ctx.defaults), ctx.defaults),
          merged,
        );
        ctx.tree.forget(file.znode);
        ctx.tree.forget(parent.znode);
        stat = await ctx.client.exists(file.znode).catch(() => null);
      }
    } catch (error) {
      // Another node took the name before the write went again: the bytes go to that one. Should
      // the first send have landed, they are also in the node that was there, now renamed or gone.
      if (error instanceof NodeGone) continue;
      if (isZkError(error, 'TIMEOUT') && error.unanswered) file.inDoubt = write;
      // Another client wrote, deleted or made the file between the read and the write.
      const raced = current
        ? isZkError(error, 'BAD_VERSION', 'NO_NODE') && !error.resent
        : isZkError(error, 'NODE_EXISTS') && error.path === file.znode;
      if (await retryAfterRace(raced, started, attempt)) continue;
      // Its directory is gone too: the bytes have nowhere to go.
      if ((isFsError(error) && error.code === 'ENOENT') || isZkError(error, 'NO_NODE')) {
        throw lostToDeletion(ctx, file);
      }
      ctx.files.detach(file);
      throw asFsError(error, `appending to ${file.mountPath}`);
    }
    await landed(ctx, file, { merged, stat, seq, sent }, 'to the file now under its name');
    if (!file.followsName) {
      ctx.log.warn(
        `${file.mountPath} was deleted or renamed away by another client while open here: ` +
          `${appended.length} bytes appended here went to the file now under its name` +
          (current ? '' : ', made again'),
      );
    }
    file.deletedElsewhere = false;
    file.followsName = true;
    // Later opens read the file under the name afresh rather than join one that only appends to it.
    ctx.files.detach(file);
    return;
  }
}

/** Whether every write of `handle` since its last flush was an O_APPEND write with a seq from `from` to `to`. */
function appendedWithin(handle: Handle, from: number, to = Number.POSITIVE_INFINITY): boolean {
  return (
    handle.append && handle.firstWriteSeq >= from && handle.firstWriteSeq > 0 && handle.lastWriteSeq <= to
  );
}

/**
 * Another client changed a file that a program here rewrote (a write at an
 * offset) and others appended to with O_APPEND since (`echo line >> log`
 * while an editor holds it open): the rewrite cannot be written back, but
 * the bytes appended after it can go to the end of the node as it is now,
 * as O_APPEND writes would on a local disk. The rewrite stays, to fail
 * (EIO) for the handles that made it; the appenders' flushes succeed.
 */
async function salvageAppends(ctx: VfsContext, file: OpenFile): Promise<void> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const node = await currentNode(ctx, file);
    const tail = file.tail;
    if (file.deleted) return;
    if (!node) {
      throw lostToDeletion(ctx, file);
    }
    if (!tail || file.deletedElsewhere || isAnotherNode(file, node.stat)) {
      throw await refusal(ctx, file, 'conflict', file.buffer.length);
    }
    const seq = file.seq;
    const end = file.buffer.length;
    const appended = Buffer.from(file.buffer.view().subarray(tail.from));
    const merged = Buffer.concat([node.data, appended]);
    checkAppendedSize(file, merged.length);
    let stat: ZkStat;
    try {
      stat = await ctx.client.setData(file.znode, merged, node.stat.version, {
        beforeResend: sameNodeBeforeResend(ctx, file.znode, node.stat.czxid),
      });
    } catch (error) {
      // Another node took the name before the write went again: the next round refuses it.
      if (error instanceof NodeGone) continue;
      if (await lostRace(error, started, attempt)) continue;
      throw await refusal(ctx, file, error, merged.length);
    }
    ctx.log.warn(
      `${file.mountPath}: another client changed it since it was opened here, so what was rewritten ` +
        `here cannot be written back; the ${appended.length} bytes appended after that went to its end`,
    );
    ctx.tree.stats.set(file.znode, stat);
    file.salvaged = { from: tail.seq, to: seq };
    // Appended meanwhile, and nothing else: the tail that is left.
    if (file.tail === tail) file.tail = file.buffer.length > end ? { from: end, seq: seq + 1 } : undefined;
    return;
  }
}

/**
 * What `file`, holding only appends since its data version (onlyAppended),
 * becomes over `now`, what another client made of that version: its
 * appended bytes after `now`; when a truncation here cut the content
 * first (copytruncate), after that cut and what the other client appended
 * since (kept: it was not there to be copied). Undefined when that client
 * changed more than the end of a content cut here: a real conflict.
 */
function appendedTo(file: OpenFile, now: Buffer): Buffer | undefined {
  const appended = file.buffer.view().subarray(file.keptLength);
  if (file.keptLength === file.base.length) return Buffer.concat([now, appended]);
  const base = file.base;
  if (!startsWith(now, base)) return undefined;
  return Buffer.concat([base.subarray(0, file.keptLength), now.subarray(base.length), appended]);
}

/**
 * The failure to report for a write-back of `file` (`length` bytes) that
 * `error` refused ('conflict': another client's change, found otherwise); logged.
 */
async function refusal(ctx: VfsContext, file: OpenFile, error: unknown, length: number): Promise<FsError> {
  if (error === 'conflict' || isZkError(error, 'BAD_VERSION')) {
    ctx.files.detach(file);
    // The kernel's pages took the program's bytes as it wrote them.
    ctx.pagesStale?.(file.mountPath);
    const now = await ctx.client.exists(file.znode).catch(() => null);
    ctx.log.error(
      `write to ${file.mountPath} refused: another client changed it since it was opened ` +
        `(${file.version === NO_VERSION ? 'renamed here after that' : `opened at data version ${file.version}`}, ` +
        `now ${now?.version ?? 'unknown'}); ` +
        `${length} bytes not written — reopen the file and write again`,
    );
    return new FsError('EIO', `conflicting write to ${file.mountPath}`);
  }
  if (isZkError(error, 'NO_NODE')) {
    return lostToDeletion(ctx, file);
  }
  return asFsError(error, `writing ${file.mountPath}`);
}

/**
 * Writes the file's buffer back if it changed; one write at a time per file.
 * `by`: the handle whose flush this is, when one is.
 */
export function flushFile(ctx: VfsContext, file: OpenFile, by?: Handle): Promise<void> {
  // A rename or removal under way over the file goes first (OpenFiles.whileHeld).
  const held = ctx.files.heldFor(file.znode);
  const prior = held ? file.flushing.then(() => held) : file.flushing;
  const next = prior.then(() => writeBack(ctx, file, by));
  file.flushing = next.catch(() => {});
  return next;
}

/**
 * close(2): writes back what this handle wrote (with whatever else is
 * buffered); a cut alone waits for a write or the release (Handle.truncated).
 */
export function flush(ctx: VfsContext, fh: number): Promise<void> {
  const handle = ctx.files.get(fh);
  return handle.pending ? writeHandle(ctx, handle) : Promise.resolve();
}

/** fsync(2): as flush, and a cut alone too, which the program asked to be stored. */
export function fsync(ctx: VfsContext, fh: number): Promise<void> {
  const handle = ctx.files.get(fh);
  return handle.pending || handle.truncated ? writeHandle(ctx, handle) : Promise.resolve();
}

async function writeHandle(ctx: VfsContext, handle: Handle): Promise<void> {
  // What this handle does while the write-back is on its way (another thread of the program
  // writing or truncating through the same descriptor) is left for its next flush or release.
  const upTo = handle.lastWriteSeq;
  const truncated = handle.truncated;
  handle.truncated = false;
  try {
    await flushFile(ctx, handle.file, handle);
  } catch (error) {
    handle.truncated ||= truncated;
    throw error;
  }
  if (handle.lastWriteSeq !== upTo) {
    handle.firstWriteSeq = upTo + 1; // at most the seq of its first write since
    return;
  }
  handle.pending = false;
  handle.firstWriteSeq = 0;
}

/** close(2)'s last word: resolves once what the handle wrote is written back; undefined when it wrote nothing. */
export function release(ctx: VfsContext, fh: number): Promise<void> | undefined {
  const handle = ctx.files.get(fh);
  if (!handle.pending && !handle.truncated) {
    ctx.files.close(fh);
    return undefined;
  }
  return releaseWritten(ctx, fh, handle.file);
}

/** Writes back what handle `fh` on `file` left unwritten, then drops the handle. */
async function releaseWritten(ctx: VfsContext, fh: number, file: OpenFile): Promise<void> {
  try {
    await flushFile(ctx, file);
  } catch (error) {
    // close() already reported this through flush; release cannot.
    if (isDirty(file)) ctx.log.warn(`${file.mountPath}: unwritten changes dropped at close`);
    void error;
  } finally {
    ctx.files.close(fh);
  }
}

export async function ftruncate(ctx: VfsContext, fh: number, size: number): Promise<void> {
  assertWritable(ctx);
  const handle = ctx.files.get(fh);
  const file = handle.file;
  const before = file.buffer.length;
  // Refused (EFBIG), a truncation changes nothing: the file stays as writable as it was.
  checkRequestSize(file.znode, size, `truncating ${file.mountPath}`);
  file.buffer.truncate(size);
  handle.truncated = true;
  file.seq++;
  truncated(file, before, size);
  file.mtimeMs = Date.now();
}

/** truncate(2) by path: immediate, through the open buffer when the file is open here. */
export async function truncate(ctx: VfsContext, path: string, size: number): Promise<void> {
  await truncateNode(ctx, path, size);
  // The kernel cuts its pages when this returns: a store of the old content must not land after.
  await ctx.settleStores?.(path);
}

async function truncateNode(ctx: VfsContext, path: string, size: number): Promise<void> {
  assertWritable(ctx);
  for (;;) {
    const target = await resolveFile(ctx, path);
    if (size > ctx.maxFileSize) throw new FsError('EFBIG', `${size} bytes exceed --max-file-size`);
    checkRequestSize(target.znode, size, `truncating ${path}`);
    // A rename or removal here over the name goes first; the name may then be another node's.
    const held = ctx.files.heldFor(target.znode);
    if (held) {
      await held;
      continue;
    }
    const open = ctx.files.byZnode(target.znode);
    // Held only by readers, with nothing to write back, the buffer may be of a version another
    // host has replaced (readers catch up when they read): the node is cut as it is now, as for
    // a file not open here, and the readers follow it.
    if (open && (open.writerRefs > 0 || isDirty(open))) return truncateOpen(ctx, open, size);
    await ctx.files.trackPathWrite(target.znode, cutNode(ctx, target, path, size));
    if (open) open.behind = true;
    return;
  }
}

async function truncateOpen(ctx: VfsContext, open: OpenFile, size: number): Promise<void> {
  const before = open.buffer.length;
  open.buffer.truncate(size);
  open.seq++;
  truncated(open, before, size);
  open.mtimeMs = Date.now();
  open.pendingTimes = undefined;
  // truncate(2) by path while the file is open for writing here: the truncating
  // process is (nearly always) the one that opened it last, and its close writes
  // the file back once, with its data, so other hosts never see it emptied in
  // between (see Handle.truncated). Older handles must not write it back.
  const writer = ctx.files.writers(open).at(-1);
  if (writer) writer.truncated = true;
  else await flushFile(ctx, open);
}

/** Cuts or lengthens the node of a file not open here, at the version read (again on a race). */
async function cutNode(
  ctx: VfsContext,
  target: Exclude<Target, LinkTarget>,
  path: string,
  size: number,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const { data, stat } = await ctx.client.getData(target.znode);
      if (data.length === size) return;
      const next = Buffer.alloc(size);
      data.copy(next, 0, 0, Math.min(size, data.length));
      const beforeResend = sameNodeBeforeResend(ctx, target.znode, stat.czxid);
      const written =
        size === 0 && target.type === 'file'
          ? await writeEmpty(ctx, target.znode, stat.version, beforeResend)
          : await ctx.client.setData(target.znode, next, stat.version, { beforeResend });
      ctx.tree.stats.set(target.znode, written);
      return;
    } catch (error) {
      // Cut by the first send, or not: either way before the other host's node took the name.
      if (error instanceof NodeGone) return;
      // Refused when sent again: another host wrote after the first send, which had landed, or
      // before it, a race lost. Either way that write is later than the cut, and stays.
      if (isZkError(error, 'BAD_VERSION') && error.resent) return;
      if (isZkError(error, 'BAD_VERSION') && attempt < 5) continue;
      throw asFsError(error, `truncating ${path}`);
    }
  }
}
