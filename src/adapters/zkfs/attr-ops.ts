/**
 * getattr, chmod, chown, utimens, extended attributes and statfs. Sizes and
 * times come from the znode stat (never its data); mode, owner and times
 * set by tools persist in the directory's metadata document, so `cp -a`,
 * `rsync -a` and `tar x` keep them and every host sees them.
 */
import {
  effectiveAttrs,
  encodeMeta,
  type MetaEntry,
  type ParentAttrs,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  sameEntry,
  withEntry,
  withMode,
  withOwner,
  withTimes,
} from '../../core/zkfs/attrs.js';
import { FsError } from '../../core/zkfs/errors.js';
import { DATA_FILE, toZnode } from '../../core/zkfs/paths.js';
import type { ZkOp } from '../../core/zkfs/zk-ops.js';
import type { ZkStat } from '../zookeeper.js';
import { asFsError, commitWithRetry } from './commit.js';
import { isDirty, type OpenFile } from './open-files.js';
import {
  assertWritable,
  cachedTarget,
  type DataTarget,
  type LinkTarget,
  NOT_CACHED,
  type NodeTarget,
  resolve,
  type VfsContext,
} from './resolve.js';

export interface FileAttr {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  atimeMs: number;
  ctimeMs: number;
  nlink: number;
}

/** The size shown for directories (their data is in `_zoo_data_`). */
const DIR_SIZE = 4096;

/** Where a node's (or a link's) stored attributes live. */
type EntryOwner = Pick<NodeTarget, 'path' | 'metaDir' | 'entryName'> & {
  znode?: string;
  stat?: ZkStat;
};

async function entryOf(ctx: VfsContext, owner: EntryOwner): Promise<MetaEntry | undefined> {
  return (await ctx.tree.meta(owner.metaDir)).value.entries.get(owner.entryName);
}

export async function getattr(ctx: VfsContext, path: string): Promise<FileAttr> {
  const target = await resolve(ctx, path);
  if (target.type === 'symlink') {
    const entry = await entryOf(ctx, target);
    return {
      mode: S_IFLNK | 0o777,
      uid: entry?.u ?? ctx.defaults.uid,
      gid: entry?.g ?? ctx.defaults.gid,
      size: Buffer.byteLength(target.target),
      mtimeMs: entry?.mt ?? target.mtimeMs,
      atimeMs: entry?.at ?? entry?.mt ?? target.mtimeMs,
      ctimeMs: target.mtimeMs,
      nlink: 1,
    };
  }
  return nodeAttr(ctx, target, await entryOf(ctx, target.type === 'data' ? target.dir : target));
}

/** The mode and group directory `dir` shows, which a node made in it may take (setgid). */
export async function parentAttrs(ctx: VfsContext, dir: NodeTarget): Promise<ParentAttrs> {
  const { mode, gid } = nodeAttr(ctx, dir, await entryOf(ctx, dir));
  return { mode, gid };
}

/**
 * What getattr() answers for a file or directory at `path` when memory
 * holds all it needs (resolve.ts, cachedTarget), without waiting: a
 * listing's entries, once read, are answered this way by the hundred.
 * Undefined when nothing is there; NOT_CACHED when getattr() must be called.
 */
export function getattrCached(
  ctx: VfsContext,
  path: string,
  /** What memory holds even for a name just deleted (ZkTree.heldNode). */
  held = false,
): FileAttr | undefined | typeof NOT_CACHED {
  const known = cachedTarget(ctx, path, held);
  if (known === NOT_CACHED || known === undefined) return known;
  return nodeAttr(ctx, known.target, known.meta.entries.get(known.target.entryName));
}

/**
 * Reads into memory what getattrCached() needs for `paths`, entries of
 * directory `dir`, waiting once for all: the symlink table first, since
 * links and `_zoo_data_` have no znode of their own to read (getattr()
 * answers them).
 */
export async function preloadAttrs(ctx: VfsContext, dir: string, paths: readonly string[]): Promise<void> {
  const links = await ctx.tree.symlinks().catch(() => undefined);
  const znodes: string[] = [];
  for (const path of paths) {
    // The keys getattrCached() derived for these paths already (path-keys.ts).
    const keys = ctx.pathKeys.of(path);
    if (keys.name !== DATA_FILE && !links?.value.has(path)) znodes.push(keys.znode);
  }
  await ctx.tree.preload(znodes, toZnode(ctx.root, dir));
}

/** The attributes of a node (or `_zoo_data_`) given its stored entry. */
function nodeAttr(ctx: VfsContext, target: NodeTarget | DataTarget, entry: MetaEntry | undefined): FileAttr {
  const node = target.type === 'data' ? target.dir : target;
  const attrs = effectiveAttrs(target.type === 'dir' ? 'dir' : 'file', node.stat, entry, ctx.defaults);
  // Spelled out, not spread: a listing builds one per entry, and a spread gave each a shape of its own.
  const result: FileAttr = {
    mode: attrs.mode,
    uid: attrs.uid,
    gid: attrs.gid,
    size: target.type === 'dir' ? DIR_SIZE : target.stat.dataLength,
    mtimeMs: attrs.mtimeMs,
    atimeMs: attrs.atimeMs,
    ctimeMs: attrs.ctimeMs,
    nlink: 1,
  };
  if (target.type === 'data') {
    // The pseudo-file is a plain file whatever the directory's permissions.
    result.mode = S_IFREG | (0o666 & ~ctx.defaults.umask);
    result.mtimeMs = node.stat.mtimeMs;
    result.atimeMs = node.stat.mtimeMs;
  }
  return target.type === 'dir' ? result : withOpenChanges(ctx.files.byZnode(target.znode), result);
}

/** `attr` of a file open here as `open`, with the size, times, mode and owner of changes not yet written back. */
export function withOpenChanges(open: OpenFile | undefined, attr: FileAttr): FileAttr {
  if (!open) return attr;
  const pending = open.pendingAttrs;
  const shown: FileAttr = pending
    ? {
        ...attr,
        mode: pending.m === undefined ? attr.mode : (attr.mode & S_IFMT) | pending.m,
        uid: pending.u ?? attr.uid,
        gid: pending.g ?? attr.gid,
      }
    : attr;
  if (!isDirty(open)) return shown;
  return { ...shown, size: open.buffer.length, mtimeMs: open.mtimeMs, ctimeMs: open.mtimeMs };
}

/** Rewrites one entry of a directory's metadata document, re-reading it if another host raced us. */
export async function updateEntry(
  ctx: VfsContext,
  owner: EntryOwner,
  change: (entry: MetaEntry | undefined, stat: ZkStat | undefined) => MetaEntry | undefined,
): Promise<void> {
  await commitWithRetry(ctx.tree, async (attempt): Promise<ZkOp[] | null> => {
    const doc = attempt === 0 ? await ctx.tree.meta(owner.metaDir) : await ctx.tree.freshMeta(owner.metaDir);
    const stat =
      attempt === 0 || owner.znode === undefined
        ? owner.stat
        : ((await ctx.tree.freshStat(owner.znode)) ?? owner.stat);
    const before = doc.value.entries.get(owner.entryName);
    const after = change(before, stat);
    if (sameEntry(before ?? {}, after ?? {})) return null;
    const data = encodeMeta(withEntry(doc.value, owner.entryName, after));
    if (doc.version === undefined) {
      return [{ op: 'create', path: doc.path, data, acl: await ctx.tree.acl(owner.metaDir) }];
    }
    return [{ op: 'setData', path: doc.path, data, version: doc.version }];
  }).catch((error: unknown) => {
    throw asFsError(error, `updating attributes of ${owner.path}`);
  });
  // A tree kept exact by its watch has the document written through, and hears of the rest.
  ctx.tree.forget(owner.metaDir);
}

/**
 * Resolves a target whose attributes can be stored: a node, or a symbolic
 * link (owner and times only, under its name). `_zoo_data_` has none of its
 * own: changes to it are accepted and ignored.
 */
async function storable(ctx: VfsContext, path: string): Promise<NodeTarget | LinkTarget | undefined> {
  assertWritable(ctx);
  const target = await resolve(ctx, path);
  return target.type === 'data' ? undefined : target;
}

export async function chmod(ctx: VfsContext, path: string, mode: number): Promise<void> {
  const node = await storable(ctx, path);
  // A link's own mode is always 0777 (Linux has no lchmod).
  if (!node || node.type === 'symlink') return;
  const unwritten = neverWrittenBack(ctx, node);
  if (unwritten) unwritten.pendingAttrs = withMode(unwritten.pendingAttrs, mode);
  else await updateEntry(ctx, node, (entry) => withMode(entry, mode));
}

export async function chown(ctx: VfsContext, path: string, uid: number, gid: number): Promise<void> {
  const node = await storable(ctx, path);
  if (!node) return;
  const unwritten = node.type === 'symlink' ? undefined : neverWrittenBack(ctx, node);
  if (unwritten) unwritten.pendingAttrs = withOwner(unwritten.pendingAttrs, uid, gid);
  else await updateEntry(ctx, node, (entry) => withOwner(entry, uid, gid));
}

/**
 * The file open here at `node` whose data no host has seen yet: made (or
 * found empty) at data version 0 and written to since, the write-back not
 * done. Its mode and owner wait to go with that write-back, in the same
 * transaction (`cp -a` and `cp -p` set them before close): one request per
 * file fewer, and other hosts see content and mode arrive together.
 */
function neverWrittenBack(ctx: VfsContext, node: NodeTarget): OpenFile | undefined {
  if (node.type !== 'file') return undefined;
  const open = ctx.files.byZnode(node.znode);
  return open && isDirty(open) && open.version === 0 && !open.deleted ? open : undefined;
}

/**
 * The mode and owner set on `file` while its data waited (neverWrittenBack),
 * where its write-back could not take them along: written now, to its
 * name's entry while the name still holds it. A failure is logged, as the
 * caller's chmod was answered long ago.
 */
export async function settlePendingAttrs(ctx: VfsContext, file: OpenFile): Promise<void> {
  const pending = file.pendingAttrs;
  if (!pending) return;
  file.pendingAttrs = undefined;
  const target = await fileEntryOwner(ctx, file);
  if (!target) return;
  await updateEntry(ctx, target, (entry) => ({ ...entry, ...pending })).catch((error: unknown) => {
    ctx.log.warn(
      `${file.mountPath}: mode and owner not kept: ${error instanceof Error ? error.message : String(error)}`,
    );
  });
}

export async function utimens(
  ctx: VfsContext,
  path: string,
  atimeMs: number,
  mtimeMs: number,
): Promise<void> {
  const node = await storable(ctx, path);
  if (!node) return;
  if (node.type === 'symlink') {
    await updateEntry(ctx, node, (entry) => withTimes(entry, atimeMs, mtimeMs, undefined));
    return;
  }
  const open = node.type === 'file' ? ctx.files.byZnode(node.znode) : undefined;
  if (open && isDirty(open)) {
    // The data is not written yet; the times apply to the version the flush will make.
    open.pendingTimes = { atimeMs, mtimeMs };
    open.mtimeMs = open.pendingTimes.mtimeMs;
    return;
  }
  await updateEntry(ctx, node, (entry, stat) =>
    withTimes(entry, atimeMs, mtimeMs, (stat ?? node.stat).version),
  );
}

/**
 * The entry that keeps open `file`'s times, mode and owner: its name's,
 * while the name still holds the file's node; undefined once it holds
 * another (renamed over, deleted and made again) or cannot be resolved.
 */
export async function fileEntryOwner(ctx: VfsContext, file: OpenFile): Promise<NodeTarget | undefined> {
  const target = await resolve(ctx, file.mountPath).catch(() => undefined);
  return target?.type === 'file' && target.znode === file.znode ? target : undefined;
}

/** After a flush: the times set while the data was pending, pinned to the version just written. */
export async function applyPendingTimes(ctx: VfsContext, file: OpenFile, version: number): Promise<void> {
  const times = file.pendingTimes;
  if (!times) return;
  file.pendingTimes = undefined;
  const target = await fileEntryOwner(ctx, file);
  if (!target) return;
  await updateEntry(ctx, target, (entry) => withTimes(entry, times.atimeMs, times.mtimeMs, version));
}

const XATTR_PREFIX = 'user.zk.';

/** The znode stat as read-only extended attributes. */
function statXattrs(stat: ZkStat): Record<string, string> {
  const hex = (n: bigint) => `0x${n.toString(16)}`;
  return {
    version: String(stat.version),
    cversion: String(stat.cversion),
    aversion: String(stat.aversion),
    czxid: hex(stat.czxid),
    mzxid: hex(stat.mzxid),
    pzxid: hex(stat.pzxid),
    ctime: String(stat.ctimeMs),
    mtime: String(stat.mtimeMs),
    ephemeralOwner: hex(stat.ephemeralOwner),
    dataLength: String(stat.dataLength),
    numChildren: String(stat.numChildren),
  };
}

async function xattrStat(ctx: VfsContext, path: string): Promise<ZkStat | undefined> {
  const target = await resolve(ctx, path);
  if (target.type === 'symlink') return undefined;
  const stat = await ctx.tree.freshStat(target.znode);
  if (!stat) throw new FsError('ENOENT', `${path} vanished`);
  return stat;
}

/**
 * No names: the user.zk.* attributes are read by name only. Listed, they
 * would travel with every copy (`cp -a`, `rsync -X`, `tar --xattrs`) as
 * stale versions, and `rsync -aX` into the mount would try to remove them
 * from each file it writes and fail (exit 23), since they cannot be changed.
 */
export async function listxattr(ctx: VfsContext, path: string): Promise<string[]> {
  await resolve(ctx, path);
  return [];
}

/** The value of `name`, or undefined when there is no such attribute (ENODATA). */
export async function getxattr(ctx: VfsContext, path: string, name: string): Promise<Buffer | undefined> {
  // The kernel asks for security.capability before every write: answer without a lookup
  // (it only asks about paths it has just resolved).
  if (!name.startsWith(XATTR_PREFIX)) return undefined;
  const stat = await xattrStat(ctx, path);
  const value = stat ? statXattrs(stat)[name.slice(XATTR_PREFIX.length)] : undefined;
  return value === undefined ? undefined : Buffer.from(value);
}

/**
 * Setting or removing any attribute is refused with ENOTSUP, the user.zk.*
 * ones included: it is the code cp and mv skip quietly when they copy a
 * file's attributes, where EPERM would print one error per attribute.
 */
export async function setxattr(ctx: VfsContext, path: string, name: string): Promise<never> {
  await resolve(ctx, path);
  if (name.startsWith(XATTR_PREFIX)) throw new FsError('ENOTSUP', `${name} is read-only (the znode stat)`);
  throw new FsError('ENOTSUP', 'zkfs stores no extended attributes');
}

export interface FsStats {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  namemax: number;
}

/**
 * ZooKeeper has no notion of free space; a nominal 4 GiB with everything
 * free keeps df(1) (which hides 0-block filesystems) and installers happy.
 */
export function statfs(): FsStats {
  const blocks = 1 << 20;
  return {
    bsize: 4096,
    frsize: 4096,
    blocks,
    bfree: blocks,
    bavail: blocks,
    files: 1_000_000,
    ffree: 1_000_000,
    favail: 1_000_000,
    namemax: 255,
  };
}
