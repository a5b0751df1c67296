/**
 * What a path in the mount is: the root, a file or directory znode, a
 * directory's `_zoo_data_` pseudo-file, or a symbolic link — decided from
 * the znode's stat and its directory's metadata alone (never its data).
 */
import type { AclIdentity } from '../../core/zkfs/acl.js';
import { type AttrDefaults, type DirMeta, ROOT_ENTRY, storedType } from '../../core/zkfs/attrs.js';
import { FsError } from '../../core/zkfs/errors.js';
import { nodeKind, showsDataFile, type ZkfsMode } from '../../core/zkfs/modes.js';
import { baseName, DATA_FILE, isHiddenChild, parentPath, toZnode } from '../../core/zkfs/paths.js';
import type { WriteProofs } from '../../core/zkfs/write-proof.js';
import type { Logger } from '../logger.js';
import type { ZkApi, ZkStat } from '../zookeeper.js';
import type { OpenFiles } from './open-files.js';
import type { PathKeyTable } from './path-keys.js';
import type { ZkTree } from './tree.js';

export interface VfsConfig {
  client: ZkApi;
  /** The mounted znode ("/" or "/app"). */
  root: string;
  mode: ZkfsMode;
  readOnly: boolean;
  maxFileSize: number;
  defaults: AttrDefaults;
  log: Logger;
  /** Who this session is for ACL checks at open (core/zkfs/acl.ts); default world:anyone only. */
  identities?: readonly AclIdentity[];
}

/** Everything the filesystem operations share. */
export interface VfsContext extends VfsConfig {
  tree: ZkTree;
  files: OpenFiles;
  /** What cachedTarget() derives from each path, kept. */
  pathKeys: PathKeyTable;
  /** The tokens by which a create, rename or removal sent again finds whether it went through (write-proof.ts). */
  proofs: WriteProofs;
  /** Told when a program starts reading a file (page-store.ts reads ahead from there). */
  onReadStart?: ((path: string) => void) | undefined;
  /** Told when a program opens a file for reading, before its data is read for the open. */
  onOpenRead?: ((path: string, znode: string) => void) | undefined;
  /** Told when a program lists a directory: reads of its files, and so stores, may follow. */
  onList?: ((path: string) => void) | undefined;
  /** Where reports of changes to the kernel stand (kernel-notify.ts), before a node's attributes are read. */
  changeMark?: (() => number) | undefined;
  /** Whether a change to `path` the kernel held no node of was reported after `mark` (kernel-notify.ts). */
  changedSince?: ((path: string, mark: number) => boolean) | undefined;
  /**
   * Resolves once no page-cache store of `path` is on its way to the kernel
   * (page-store.ts): awaited before a change made here is reported done.
   */
  settleStores?: ((path: string) => Promise<void>) | undefined;
  /**
   * The kernel's pages and attributes of `path` hold what was never written
   * (a write-back refused): it must drop them (kernel-notify.ts).
   */
  pagesStale?: ((path: string) => void) | undefined;
}

export interface NodeTarget {
  type: 'file' | 'dir';
  path: string;
  znode: string;
  stat: ZkStat;
  /** The directory znode whose metadata holds this node's entry. */
  metaDir: string;
  /** This node's name in that document ("." for the mount root). */
  entryName: string;
  isRoot: boolean;
}

export interface DataTarget {
  type: 'data';
  path: string;
  /** The directory whose data this pseudo-file is. */
  dir: NodeTarget;
  znode: string;
  stat: ZkStat;
}

export interface LinkTarget {
  type: 'symlink';
  path: string;
  target: string;
  /** The symlink table's stat time, shown as the link's times unless some were stored. */
  mtimeMs: number;
  /** Owner and times set by lchown/lutimes live in the directory's metadata under the link's name. */
  metaDir: string;
  entryName: string;
}

export type Target = NodeTarget | DataTarget | LinkTarget;

/** The target at `path`, or undefined when nothing is there. */
export async function lookup(ctx: VfsContext, path: string): Promise<Target | undefined> {
  if (path === '/' || path === '') {
    const stat = await ctx.tree.stat(ctx.root);
    if (!stat) return undefined;
    return {
      type: 'dir',
      path: '/',
      znode: ctx.root,
      stat,
      metaDir: ctx.root,
      entryName: ROOT_ENTRY,
      isRoot: true,
    };
  }
  const parent = parentPath(path);
  const name = baseName(path);
  if (isHiddenChild(name, parent === '/')) return undefined;

  const links = await ctx.tree.symlinks();
  const target = links.value.get(path);
  if (target !== undefined) {
    const linkStat = links.version === undefined ? null : await ctx.tree.stat(links.path);
    return {
      type: 'symlink',
      path,
      target,
      mtimeMs: linkStat?.mtimeMs ?? Date.now(),
      metaDir: toZnode(ctx.root, parent),
      entryName: name,
    };
  }

  if (name === DATA_FILE) {
    const dir = await lookup(ctx, parent);
    if (dir?.type !== 'dir') return undefined;
    const open = ctx.files.byZnode(dir.znode);
    if (!showsDataFile(ctx.mode, dir.stat.dataLength) && !open) return undefined;
    return { type: 'data', path, dir, znode: dir.znode, stat: dir.stat };
  }

  const znode = toZnode(ctx.root, path);
  const metaDir = toZnode(ctx.root, parent);
  let stat = await ctx.tree.stat(znode);
  for (let reads = 1; stat; reads++) {
    const meta = (await ctx.tree.meta(metaDir)).value;
    const target = nodeTarget(ctx.mode, path, name, znode, stat, metaDir, meta);
    if (!typedByAbsence(ctx.mode, stat, meta, name) || reads === TYPE_READS) return target;
    // The stat was read before the document: the node may have had data and lost its mark since
    // (another host's create drops the marks of files holding data). Memory kept exact by the
    // watch answers unless a notice changed it; one kept for a time is read past.
    const again = await (ctx.tree.exact ? ctx.tree.stat(znode) : ctx.tree.freshStat(znode));
    if (again && again.czxid === stat.czxid && again.mzxid === stat.mzxid) return target;
    stat = again;
  }
  return undefined;
}

/** Reads of a node's stat and document, at most, to tell an empty file from an empty directory. */
const TYPE_READS = 3;

/**
 * Whether `stat` and `meta` make the node named `name` a directory for want
 * of a stored type alone: an empty leaf, which a file made through a mount
 * also is until its first write, when its document's mark says it is a file.
 */
function typedByAbsence(mode: ZkfsMode, stat: ZkStat, meta: DirMeta, name: string): boolean {
  return (
    mode === 'hybrid' &&
    stat.numChildren === 0 &&
    stat.dataLength === 0 &&
    !storedType(meta.entries.get(name))
  );
}

/** The file or directory `znode` at `path`, as its stat and its directory's metadata say. */
function nodeTarget(
  mode: ZkfsMode,
  path: string,
  name: string,
  znode: string,
  stat: ZkStat,
  metaDir: string,
  meta: DirMeta,
): NodeTarget {
  const type = nodeKind(mode, {
    numChildren: stat.numChildren,
    dataLength: stat.dataLength,
    storedType: storedType(meta.entries.get(name)),
  });
  return { type, path, znode, stat, metaDir, entryName: name, isRoot: false };
}

/** lookupCached() could not tell without waiting. */
export const NOT_CACHED = Symbol('not cached');

/** A node found in memory, with its directory's metadata document (where its attributes are). */
export interface CachedTarget {
  target: NodeTarget;
  meta: DirMeta;
}

/**
 * What lookup() answers for a file or directory at `path` (not the root,
 * a link or `_zoo_data_`), when memory holds all it needs: at once, with no
 * turn of the event loop. NOT_CACHED when lookup() must be called.
 */
export function lookupCached(ctx: VfsContext, path: string): NodeTarget | undefined | typeof NOT_CACHED {
  const known = cachedTarget(ctx, path);
  return known === NOT_CACHED || known === undefined ? known : known.target;
}

/** lookupCached(), with the metadata document the node's entry is in. */
export function cachedTarget(
  ctx: VfsContext,
  path: string,
  /** What memory holds even for a name just deleted (ZkTree.heldNode). */
  held = false,
): CachedTarget | undefined | typeof NOT_CACHED {
  if (path === '/' || path === '') return NOT_CACHED;
  const keys = ctx.pathKeys.of(path);
  if (keys.name === DATA_FILE) return NOT_CACHED;
  if (keys.hidden) return undefined;
  const known = held ? ctx.tree.heldNode(keys) : ctx.tree.cachedNode(keys);
  if (!known || known.links.value.has(path)) return NOT_CACHED;
  if (!known.stat) return undefined;
  const meta = known.meta.value;
  return { target: nodeTarget(ctx.mode, path, keys.name, keys.znode, known.stat, keys.dir, meta), meta };
}

/** Like lookup, but ENOENT when nothing is there. */
export async function resolve(ctx: VfsContext, path: string): Promise<Target> {
  const target = await lookup(ctx, path);
  if (!target) throw new FsError('ENOENT', `${path} does not exist`);
  return target;
}

/** Resolves a path that must be a directory (ENOTDIR otherwise). */
export async function resolveDir(ctx: VfsContext, path: string): Promise<NodeTarget> {
  const target = await resolve(ctx, path);
  if (target.type !== 'dir') throw new FsError('ENOTDIR', `${path} is not a directory`);
  return target;
}

export function assertWritable(ctx: VfsContext): void {
  if (ctx.readOnly) throw new FsError('EROFS', 'mounted read-only');
}
