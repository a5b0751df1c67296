/**
 * What answering a path from memory derives from it (its name, its znode,
 * the directory whose metadata holds its entry), kept per path so that a
 * program reopening a file costs no string building or hashing.
 *
 * Paths come from the kernel's node table, one string object per node, so
 * finding one here is itself a fast lookup. The keys are those cachedNode()
 * last found (tree.ts, NodeKeys). Nothing here can go stale: all of it
 * follows from the path and the mounted root alone, and a key is only ever
 * swapped for an equal string. The table is emptied when it grows past
 * MAX_PATHS, which costs only the deriving again.
 */
import { baseName, isHiddenChild, parentPath, toZnode } from '../../core/zkfs/paths.js';
import type { NodeKeys } from './tree.js';

export interface PathKeys extends NodeKeys {
  readonly name: string;
  /** A name the mount never shows there (core/zkfs/paths.ts). */
  readonly hidden: boolean;
}

/** About 100 bytes each: at most a few MiB, and room for the paths of a large working set. */
const MAX_PATHS = 65_536;

export class PathKeyTable {
  private readonly byPath = new Map<string, PathKeys>();

  constructor(private readonly root: string) {}

  /** The keys of `path`, a path below the mount's root (not the root itself). */
  of(path: string): PathKeys {
    const known = this.byPath.get(path);
    if (known) return known;
    const parent = parentPath(path);
    const name = baseName(path);
    const keys: PathKeys = {
      name,
      hidden: isHiddenChild(name, parent === '/'),
      znode: toZnode(this.root, path),
      dir: toZnode(this.root, parent),
    };
    if (this.byPath.size >= MAX_PATHS) this.byPath.clear();
    this.byPath.set(path, keys);
    return keys;
  }
}
