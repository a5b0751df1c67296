/**
 * Paths inside a mount ("/a/b", as FUSE passes them) and znode paths
 * ("/app/a/b"), the names zkfs reserves, and the character rules ZooKeeper
 * imposes on node names (its PathUtils.validatePath).
 */
import { UsageError } from '../errors.js';
import type { OptionName } from '../option-name.js';
import { FsError } from './errors.js';

/** Reserved child of a directory znode that holds its entries' metadata (see attrs.ts). */
export const META_NODE = '__zkfs__';
/** Reserved child of the mount root holding the symbolic links (shared/reference.md §3). */
export const SYMLINKS_NODE = '__symlinks__';
/** Pseudo-file in a directory that reads and writes the directory znode's own data. */
export const DATA_FILE = '_zoo_data_';

/** Longest name the kernel passes for one path component. */
export const NAME_MAX = 255;

/** Characters ZooKeeper refuses anywhere in a path. */
const INVALID_CHARS = /[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]/;
/**
 * Half of a surrogate pair: a character beyond U+FFFF (most emoji), which
 * ZooKeeper refuses with the rest of U+D800-U+F8FF, as Java stores it.
 */
const SURROGATE = /[\ud800-\udfff]/;

/** Why `name` cannot be a znode name, or undefined when it can. */
export function nameProblem(name: string): string | undefined {
  if (name === '') return 'empty name';
  if (name === '.' || name === '..') return `'${name}' is not a node name`;
  if (name.includes('/')) return 'a name cannot contain /';
  if (SURROGATE.test(name))
    return 'ZooKeeper does not allow characters beyond U+FFFF (emoji, for one) in names';
  if (INVALID_CHARS.test(name)) return 'ZooKeeper does not allow control or private-use characters in names';
  return undefined;
}

/** The PATH argument of `zkfsctl mount`, as its messages have always named it. */
const ZK_PATH_ARGUMENT: OptionName = { name: 'PATH', withValue: (value) => `ZooKeeper path '${value}'` };

/**
 * Validates and normalises the ZooKeeper path given to `mount` ("/app/",
 * "/app" → "/app"); throws a UsageError naming the problem.
 */
export function normalizeZkPath(path: string, as: OptionName = ZK_PATH_ARGUMENT): string {
  const shown = as.withValue(path);
  if (!path.startsWith('/')) throw new UsageError(`${shown} must start with /`);
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') : path;
  if (trimmed === '/') return '/';
  for (const part of trimmed.slice(1).split('/')) {
    const problem = nameProblem(part);
    if (problem) throw new UsageError(`${shown} is invalid: ${problem}`);
    // Mounted, it would show the document as a directory, and a file made there would break its parent.
    if (part === META_NODE) {
      throw new UsageError(
        `${shown} is invalid: ${META_NODE} is the metadata document of its directory, not a tree`,
      );
    }
  }
  return trimmed;
}

/** Joins a znode path and a child name. */
export function zkChild(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** The parent of a znode or mount path ("/a/b" → "/a", "/a" → "/"). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** The last component of a path ("" for "/"). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Whether znode `path` is a document every host rewrites: a directory's metadata, or the symlink table. */
export function isSharedDoc(path: string): boolean {
  const name = baseName(path);
  return name === META_NODE || name === SYMLINKS_NODE;
}

/** Maps a path inside the mount to its znode under `root` ("/app" + "/a" → "/app/a"). */
export function toZnode(root: string, mountPath: string): string {
  if (mountPath === '/' || mountPath === '') return root;
  return root === '/' ? mountPath : `${root}${mountPath}`;
}

/** Maps a znode under `root` back to its path in the mount. */
export function toMountPath(root: string, znode: string): string {
  if (znode === root) return '/';
  return root === '/' ? znode : znode.slice(root.length);
}

/** True when `path` is `ancestor` or lies below it (mount or znode paths alike). */
export function isWithin(path: string, ancestor: string): boolean {
  if (ancestor === '/') return true;
  return path === ancestor || path.startsWith(`${ancestor}/`);
}

/** Children of a directory znode that are zkfs bookkeeping, never shown as entries. */
export function isHiddenChild(name: string, parentIsRoot: boolean): boolean {
  return name === META_NODE || (parentIsRoot && name === SYMLINKS_NODE);
}

/**
 * Throws the errno a tool should see when it tries to create `name`:
 * ENAMETOOLONG, EINVAL for names ZooKeeper refuses, EPERM for reserved ones.
 */
export function checkNewName(name: string, parentIsRoot: boolean): void {
  if (Buffer.byteLength(name) > NAME_MAX)
    throw new FsError('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`);
  const problem = nameProblem(name);
  if (problem) throw new FsError('EINVAL', `${JSON.stringify(name)}: ${problem}`);
  if (isHiddenChild(name, parentIsRoot)) throw new FsError('EPERM', `${name} is reserved by zkfs`);
}
