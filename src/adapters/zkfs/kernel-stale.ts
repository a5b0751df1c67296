/**
 * Which of the kernel's cached entries a change notice makes stale, worked
 * out from what the mount cached before applying it (watch-cache.ts), for
 * kernel-notify.ts to drop. Narrow on purpose: dropping a directory's name
 * also drops every name cached below it, so that is done only when the
 * directory's own type may have changed or nothing better is known.
 */
import { type DirMeta, type MetaEntry, sameEntry } from '../../core/zkfs/attrs.js';
import { redundantMark } from '../../core/zkfs/file-marks.js';
import { GrownMap } from '../../core/zkfs/grown-map.js';
import { baseName, DATA_FILE, META_NODE, parentPath, toMountPath, zkChild } from '../../core/zkfs/paths.js';
import type { SymlinkMap } from '../../core/zkfs/symlinks.js';
import type { ZkStat } from '../zookeeper.js';
import type { Stale, StaleEntry } from './kernel-notify.js';
import type { WatchNotice } from './zk-wire.js';

/** What the cache knew before the notice (undefined: not cached). */
export interface CacheView {
  root: string;
  linksPath: string;
  stat(znode: string): ZkStat | null | undefined;
  meta(dir: string): DirMeta | undefined;
  links(): SymlinkMap | undefined;
}

function mountPath(view: CacheView, znode: string): string {
  return toMountPath(view.root, znode);
}

function childPath(view: CacheView, dir: string, name: string): string {
  const at = mountPath(view, dir);
  return at === '/' ? `/${name}` : `${at}/${name}`;
}

/**
 * Whether `znode` is sure to stay a directory (children, or made by mkdir)
 * through a change of `kind`: only a deletion can take its last child.
 */
function staysDir(view: CacheView, znode: string, kind: 'created' | 'deleted' | 'data'): boolean {
  if (znode === view.root) return true;
  const stat = view.stat(znode);
  if (stat && stat.numChildren > (kind === 'deleted' ? 1 : 0)) return true;
  return view.meta(parentPath(znode))?.entries.get(baseName(znode))?.t === 'd';
}

/** The type `znode`'s directory document stores for it, when that document is cached. */
function storedTypeOf(view: CacheView, znode: string): 'f' | 'd' | undefined {
  return view.meta(parentPath(znode))?.entries.get(baseName(znode))?.t;
}

/**
 * The mount paths the kernel may hold stale copies of after `notice`. For
 * a directory's metadata document this is the fallback: the caller diffs
 * the document (docChanges) when it had the old one.
 */
export function staleFor(view: CacheView, { type, path }: WatchNotice): Stale {
  const name = baseName(path);
  const parent = parentPath(path);
  if (name === META_NODE) {
    // Entries of `parent` changed and the old document is unknown: drop every name below it.
    return parent === view.root ? 'prune' : [{ path: mountPath(view, parent), entry: true }];
  }
  if (path === view.linksPath) {
    const links = view.links();
    return links ? [...links.keys()].map((link) => ({ path: link, entry: true })) : 'prune';
  }
  const at = mountPath(view, path);
  const dataFile = { path: childPath(view, path, DATA_FILE), entry: true };
  if (type === 'dataChanged') {
    // New size and times; a node typed by its data alone (no stored type) may even turn from file
    // to directory.
    const typed = staysDir(view, path, 'data') || storedTypeOf(view, path) !== undefined;
    return [{ path: at, entry: !typed && path !== view.root, fresh: true }, dataFile];
  }
  const out: StaleEntry[] = [{ path: at, entry: path !== view.root, fresh: type === 'created' }];
  // A first child turns a file into a directory; losing the last may turn it back.
  if (path !== view.root && !staysDir(view, parent, type === 'deleted' ? 'deleted' : 'created')) {
    out.push({ path: mountPath(view, parent), entry: true });
  }
  return out;
}

/** The entries of directory `dir` whose metadata differs between two documents. */
export function docChanges(view: CacheView, dir: string, before: DirMeta, after: DirMeta): StaleEntry[] {
  // A document that only grew (read from what it added, parseMeta): only the new names differ,
  // and a directory another host fills is not compared whole for every file.
  const added = GrownMap.addedSince(after.entries, before.entries);
  if (added) return added.map(([name, now]) => entryChange(view, dir, name, undefined, now));
  const out: StaleEntry[] = [];
  const names = new Set([...before.entries.keys(), ...after.entries.keys()]);
  for (const name of names) {
    const was = before.entries.get(name);
    const now = after.entries.get(name);
    if (sameEntry(was, now) || (now === undefined && markOfDataFile(view, dir, name, was))) continue;
    out.push(entryChange(view, dir, name, was, now));
  }
  return out;
}

/**
 * Whether `was` is a bare file mark that another host's create dropped
 * because the node holds data (core/zkfs/file-marks.ts), as memory knows
 * it: nothing the kernel holds of the name changes, and a directory filled
 * on another host had every earlier file's entry dropped here, one per create.
 */
function markOfDataFile(view: CacheView, dir: string, name: string, was: MetaEntry | undefined): boolean {
  return redundantMark(was, view.stat(zkChild(dir, name)) ?? undefined);
}

/**
 * The kernel's entry stale after `name`'s metadata in `dir` changed from
 * `was` to `now`. A new mode, owner or time only needs the node's
 * attributes dropped; the name itself only when its type may have changed,
 * as dropping a directory's name drops every name cached below it.
 */
function entryChange(
  view: CacheView,
  dir: string,
  name: string,
  was: MetaEntry | undefined,
  now: MetaEntry | undefined,
): StaleEntry {
  if (name === '.') return { path: '/', entry: false };
  const retyped = was === undefined || now === undefined || was.t !== now.t;
  return { path: childPath(view, dir, name), entry: retyped, fresh: was === undefined };
}
