/**
 * What another client's deletions leave behind in zkfs's shared documents,
 * dropped when zkfs next writes the document concerned.
 *
 * Entries of names another client deleted go from a directory's metadata
 * document when a name is added to it (core/zkfs/attrs.ts,
 * holdsGoneNames). A client that is not zkfs deletes a node without
 * touching the document, so its entry stayed for good: a directory whose
 * files another program cleans up grew its document with every name it
 * ever had, until even an empty directory refused new files with ENOSPC.
 *
 * The children are read afresh, not taken from memory, so this is right
 * whether or not a watch keeps memory exact: the list is at least as new
 * as the document read, and any name added to the document since then
 * makes the write fail its version check and start over.
 */
import { type DirMeta, holdsGoneNames, withoutGoneNames } from '../../core/zkfs/attrs.js';
import { parentPath, toZnode, zkChild } from '../../core/zkfs/paths.js';
import { linksIn, type SymlinkMap, withoutLinksBelow, withoutLinksIn } from '../../core/zkfs/symlinks.js';
import type { NodeTarget, VfsContext } from './resolve.js';
import type { DocSnapshot } from './tree.js';

/** `doc`'s entries, less those of names directory `dir` no longer has, when it must hold any. */
export async function entriesStillThere(
  ctx: VfsContext,
  dir: NodeTarget,
  doc: DocSnapshot<DirMeta>,
): Promise<DirMeta> {
  const counts = { numChildren: dir.stat.numChildren, links: 0, isRoot: dir.isRoot };
  // Checked without the link table first: that is every create in a directory with nothing to drop.
  if (!holdsGoneNames(doc.value, counts)) return doc.value;
  counts.links = linksIn((await ctx.tree.symlinks()).value, dir.path).length;
  if (!holdsGoneNames(doc.value, counts)) return doc.value;
  const [children, table] = await Promise.all([
    ctx.tree.freshChildNames(dir.znode),
    ctx.tree.freshSymlinks(),
  ]);
  const names = new Set(children);
  const kept = withoutGoneNames(
    doc.value,
    (name) => names.has(name) || table.value.has(zkChild(dir.path, name)),
  );
  const dropped = doc.value.entries.size - kept.entries.size;
  if (dropped > 0) {
    ctx.log.info(
      `${dir.path}: dropping ${dropped} metadata ${dropped === 1 ? 'entry' : 'entries'} of names another client deleted`,
    );
  }
  return kept;
}

/**
 * The link table without links below `path`, a name about to be made that
 * does not exist: links of a directory by that name another client deleted
 * (core/zkfs/symlinks.ts, withoutLinksBelow). Undefined when there are none.
 */
export function linksLeftBelow(ctx: VfsContext, table: SymlinkMap, path: string): SymlinkMap | undefined {
  const kept = withoutLinksBelow(table, path);
  if (kept) {
    const dropped = table.size - kept.size;
    ctx.log.info(
      `${path}: dropping ${dropped} symbolic ${dropped === 1 ? 'link' : 'links'} left below it by a directory another client deleted`,
    );
  }
  return kept;
}

/**
 * The link table without the links of directories that no longer exist,
 * for a write of the table: they can never be reached again, and the
 * table, read whole by every mount after every change, would grow with
 * each directory of links another client deletes. Undefined when none goes.
 * The directories are checked after the table was read, and the table is
 * written at the version read: a directory made since held no link then.
 */
export async function linksOfGoneDirs(ctx: VfsContext, table: SymlinkMap): Promise<SymlinkMap | undefined> {
  const dirs = new Set<string>();
  for (const link of table.keys()) {
    const dir = parentPath(link);
    if (dir !== '/') dirs.add(dir);
  }
  if (dirs.size === 0) return undefined;
  // Memory kept exact by a watch knows which directories are gone; memory kept by time may not.
  const stat = (znode: string) => (ctx.tree.exact ? ctx.tree.stat(znode) : ctx.tree.freshStat(znode));
  const listed = [...dirs];
  const stats = await Promise.all(listed.map((dir) => stat(toZnode(ctx.root, dir))));
  const gone = new Set(listed.filter((_, i) => stats[i] === null));
  const kept = withoutLinksIn(table, gone);
  if (!kept) return undefined;
  const dropped = table.size - kept.size;
  ctx.log.info(
    `dropping ${dropped} symbolic ${dropped === 1 ? 'link' : 'links'} of ${gone.size === 1 ? 'a directory' : `${gone.size} directories`} another client deleted (${[...gone].slice(0, 3).join(', ')}${gone.size > 3 ? ', …' : ''})`,
  );
  return kept;
}
