/**
 * How a change patches the mount's cached picture in place (watch-cache.ts)
 * instead of forgetting it: a watch notification (anyone's change, this
 * mount's own included), and a write of this mount whose reply is in, whose
 * new value is known without reading it back.
 */
import { type DirMeta, parseMeta } from '../../core/zkfs/attrs.js';
import { baseName, META_NODE, parentPath } from '../../core/zkfs/paths.js';
import { patchedList, sortedIncludes } from '../../core/zkfs/sorted-names.js';
import { parseSymlinks, type SymlinkMap } from '../../core/zkfs/symlinks.js';
import type { AclEntry, ZkOp } from '../../core/zkfs/zk-ops.js';
import { OPEN_ACL, type ZkStat } from '../zookeeper.js';
import type { CacheSlot } from './node-cache.js';
import type { DocSnapshot, NodeData } from './tree.js';
import type { WatchNotice } from './zk-wire.js';

/** The cached slots of a mount, and where its special nodes are. */
export interface CachedTree {
  readonly root: string;
  /** The `__symlinks__` node of the mount. */
  readonly linksPath: string;
  readonly stats: CacheSlot<ZkStat | null>;
  readonly children: CacheSlot<string[]>;
  readonly data: CacheSlot<NodeData>;
  readonly metas: CacheSlot<DocSnapshot<DirMeta>>;
  readonly acls: CacheSlot<AclEntry[]>;
  readonly links: CacheSlot<DocSnapshot<SymlinkMap>>;
}

/**
 * A notification: a data change forgets the node's stat and data; a creation
 * or deletion also patches the parent's cached child list and child count,
 * so writing many files into one directory does not re-list it (a list of
 * more than PATCH_LIMIT names is forgotten instead, see sorted-names.ts).
 */
export function applyNotice(tree: CachedTree, { type, path }: WatchNotice): void {
  const name = baseName(path);
  const parent = parentPath(path);
  switch (type) {
    case 'dataChanged':
      tree.stats.invalidate(path);
      tree.data.invalidate(path);
      break;
    case 'created':
      tree.stats.invalidate(path);
      tree.data.invalidate(path);
      tree.children.invalidate(path);
      if (path !== tree.root) childChanged(tree, parent, name, 1);
      break;
    case 'deleted':
      tree.stats.replace(path, null);
      tree.data.invalidate(path);
      tree.children.invalidate(path);
      tree.metas.invalidate(path);
      tree.acls.invalidate(path);
      if (path !== tree.root) childChanged(tree, parent, name, -1);
      break;
    case 'childrenChanged':
      tree.children.invalidate(path);
      tree.stats.invalidate(path);
      break;
  }
  if (name === META_NODE) tree.metas.invalidate(parent);
  if (path === tree.linksPath) tree.links.invalidate(path);
}

/** A child appeared or vanished: patch what is cached of its parent, or forget it. */
function childChanged(tree: CachedTree, parent: string, name: string, delta: 1 | -1): void {
  // The parent's data, if kept, carries the stat read with it, whose child count is now wrong: a
  // stat taken from it (once its own stat left memory) would show a directory as a file, or the
  // other way round, until the parent changed again.
  tree.data.invalidate(parent);
  const list = tree.children.peek(parent);
  const stat = tree.stats.peek(parent);
  const consistent = list !== undefined && sortedIncludes(list, name) === delta < 0;
  const patched = list && consistent ? patchedList(list, name, delta) : undefined;
  if (patched) tree.children.replace(parent, patched);
  else tree.children.invalidate(parent);
  if (stat && (list === undefined || consistent)) {
    tree.stats.replace(parent, {
      ...stat,
      numChildren: Math.max(0, stat.numChildren + delta),
      cversion: stat.cversion + 1,
    });
  } else {
    tree.stats.invalidate(parent);
  }
}

/**
 * `stats` (ZkClient.multi) with the stat of each node the multi `ops`
 * created filled in, worked out from a stat another op left: a multi is one
 * transaction, so every node it writes has its zxid as mzxid and its time
 * as mtime, and a new node has them as czxid, pzxid and ctime too. A
 * create's own result carries no stat, and the file a program just made
 * is one it stats next (cp -a sets its times and mode before closing it),
 * which cost a read per file. Left undefined where no op of the multi left
 * a stat, or where the multi also wrote below the new node (its child
 * count is then not 0). Once per write, in one pass: a rename carries a
 * create per node it moves.
 */
export function withCreatedStats(
  ops: readonly ZkOp[],
  stats: readonly (ZkStat | undefined)[] | undefined,
): readonly (ZkStat | undefined)[] | undefined {
  const txn = stats?.find((stat) => stat !== undefined);
  if (!stats || !txn) return stats;
  // Below a node the multi made, only nodes it made (or deleted first) can be, their parents
  // among them: so it wrote below that node exactly when it wrote a child of it.
  const parents = new Set(ops.map((op) => parentPath(op.path)));
  return ops.map(
    (op, i) => stats[i] ?? (op.op === 'create' && !parents.has(op.path) ? createdStat(op, txn) : undefined),
  );
}

/** A node `create` made with no children, in the transaction that left `txn`. */
function createdStat(create: ZkOp & { op: 'create' }, txn: ZkStat): ZkStat {
  return {
    czxid: txn.mzxid,
    mzxid: txn.mzxid,
    pzxid: txn.mzxid,
    ctimeMs: txn.mtimeMs,
    mtimeMs: txn.mtimeMs,
    version: 0,
    cversion: 0,
    aversion: 0,
    ephemeralOwner: 0n,
    dataLength: create.data.length,
    numChildren: 0,
  };
}

/**
 * One op of this mount's own write, applied: the data (and stat, when the
 * reply carried it) it set, the metadata or symlink document it wrote, and
 * for a node just created, no children and the ACL it was created with.
 */
export function writeThrough(tree: CachedTree, op: ZkOp, stat: ZkStat | undefined): void {
  if (op.op !== 'setData' && op.op !== 'create') return;
  if (op.op === 'create') {
    tree.children.replace(op.path, []);
    tree.acls.replace(op.path, [...(op.acl.length > 0 ? op.acl : OPEN_ACL)]);
  }
  const version = op.op === 'create' ? 0 : op.version >= 0 ? op.version + 1 : stat?.version;
  if (stat) {
    tree.stats.replace(op.path, stat);
    tree.data.replace(op.path, { data: op.data, stat });
  }
  if (version === undefined) return;
  if (baseName(op.path) === META_NODE) {
    const meta = parseMeta(op.data);
    if (!meta.corrupt) {
      const doc: DocSnapshot<DirMeta> = { path: op.path, version, value: meta };
      tree.metas.replace(parentPath(op.path), doc);
    }
  } else if (op.path === tree.linksPath) {
    const doc: DocSnapshot<SymlinkMap> = { path: op.path, version, value: parseSymlinks(op.data) };
    tree.links.replace(op.path, doc);
  }
}
