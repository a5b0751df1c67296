/**
 * rename(2): reads the source subtree, the metadata documents and the
 * symlink table, and commits core/zkfs/rename-plan.ts as one multi. If
 * another client changed anything meanwhile the multi fails as a whole and
 * is rebuilt from fresh reads. `_zoo_data_` may be the source or the target
 * (an editor saving a directory's data through a temporary file).
 */
import { type DirMeta, encodeMeta, newEntry, withEntry } from '../../core/zkfs/attrs.js';
import { FsError } from '../../core/zkfs/errors.js';
import {
  baseName,
  checkNewName,
  DATA_FILE,
  isWithin,
  META_NODE,
  parentPath,
  toZnode,
  zkChild,
} from '../../core/zkfs/paths.js';
import { type DocWrite, type MetaDoc, type PlanNode, planRename } from '../../core/zkfs/rename-plan.js';
import {
  encodeSymlinks,
  hasLinksWithin,
  moveLinks,
  type SymlinkMap,
  showsLinkChanges,
} from '../../core/zkfs/symlinks.js';
import type { WriteToken } from '../../core/zkfs/write-proof.js';
import { multiBytes, ZK_MAX_REQUEST_BYTES, type ZkOp } from '../../core/zkfs/zk-ops.js';
import { type MultiStats, transactionZxid, type ZkError } from '../zookeeper.js';
import { asFsError, commitWithRetry } from './commit.js';
import { dataBeingWritten } from './dir-ops.js';
import { linksLeftBelow } from './gone-names.js';
import {
  assertWritable,
  lookup,
  type NodeTarget,
  resolve,
  resolveDir,
  type Target,
  type VfsContext,
} from './resolve.js';
import type { DocSnapshot } from './tree.js';

interface Built {
  ops: ZkOp[];
  /** Source znode → data version it was moved at (open files follow the move). */
  versions: Map<string, number>;
  /** A move into or out of `_zoo_data_`: the source's open buffers are orphaned, not moved. */
  dataMove?: boolean;
  /** The transaction that landed (transactionZxid): the czxid of every node it made. */
  zxid?: bigint;
}

/**
 * Reads the subtree under `znode`, parents first; EXDEV as soon as it
 * cannot fit one request. A file memory holds whole is not read (unless
 * `fresh`): rsync, certbot and editors rename the file they have just
 * written. Its multi deletes it at the version memory holds, so a stale
 * copy only costs a retry from fresh reads.
 */
async function gather(ctx: VfsContext, znode: string, fresh: boolean): Promise<PlanNode[]> {
  const held = fresh ? undefined : ctx.tree.heldLeaf(znode);
  if (held) {
    const { data, stat, acl } = held;
    const node = { rel: '', data, version: stat.version, mtimeMs: stat.mtimeMs, acl };
    return [{ ...node, ephemeral: stat.ephemeralOwner !== 0n }];
  }
  const nodes: PlanNode[] = [];
  let bytes = 0;
  const queue: string[] = [''];
  while (queue.length > 0) {
    const level = queue.splice(0, queue.length);
    const read = await Promise.all(
      level.map(async (rel) => {
        const path = rel === '' ? znode : `${znode}/${rel}`;
        const [{ data, stat }, { acl }] = await Promise.all([
          ctx.client.getData(path),
          ctx.client.getAcl(path),
        ]);
        const children = stat.numChildren > 0 ? (await ctx.client.getChildren(path)).children : [];
        return { rel, data, stat, acl, children };
      }),
    );
    for (const r of read) {
      nodes.push({
        rel: r.rel,
        data: r.data,
        version: r.stat.version,
        mtimeMs: r.stat.mtimeMs,
        acl: r.acl,
        ephemeral: r.stat.ephemeralOwner !== 0n,
      });
      // Each node is created and deleted: its path twice, its data once.
      bytes += r.data.length + 2 * Buffer.byteLength(r.rel) + 2 * Buffer.byteLength(znode) + 100;
      if (bytes > ZK_MAX_REQUEST_BYTES) {
        throw new FsError('EXDEV', `${znode} is too large to rename in one ZooKeeper transaction`);
      }
      for (const child of r.children.sort()) queue.push(r.rel === '' ? child : `${r.rel}/${child}`);
    }
  }
  return nodes;
}

async function metaDoc(ctx: VfsContext, dir: string, fresh: boolean): Promise<MetaDoc> {
  const doc: DocSnapshot<DirMeta> = fresh ? await ctx.tree.freshMeta(dir) : await ctx.tree.meta(dir);
  return { path: doc.path, version: doc.version, meta: doc.value, acl: await ctx.tree.acl(dir) };
}

function metaOp(doc: MetaDoc, meta: DirMeta): ZkOp {
  const data = encodeMeta(meta);
  return doc.version === undefined
    ? { op: 'create', path: doc.path, data, acl: doc.acl }
    : { op: 'setData', path: doc.path, data, version: doc.version };
}

function fit(ops: ZkOp[], what: string): ZkOp[] {
  const bytes = multiBytes(ops);
  if (bytes > ZK_MAX_REQUEST_BYTES) throw new FsError('EXDEV', `${what} needs a ${bytes}-byte transaction`);
  return ops;
}

/** A file's data moved into a directory's `_zoo_data_`, replacing it. */
async function intoDataFile(ctx: VfsContext, src: Target, dst: NodeTarget, fresh: boolean): Promise<Built> {
  if (src.type === 'dir' || src.type === 'symlink') {
    throw new FsError(src.type === 'dir' ? 'EISDIR' : 'EINVAL', `${src.path} is not a file`);
  }
  const { data, stat } = await ctx.client.getData(src.znode);
  const dirStat = await ctx.tree.freshStat(dst.znode);
  if (!dirStat) throw new FsError('ENOENT', `${dst.path} vanished`);
  const ops: ZkOp[] = [{ op: 'setData', path: dst.znode, data, version: dirStat.version }];
  if (src.type === 'data') {
    // One directory's data moved into another's: the source directory keeps no data.
    if (src.znode === dst.znode) return { ops: [], versions: new Map(), dataMove: true };
    ops.push({ op: 'setData', path: src.znode, data: Buffer.alloc(0), version: stat.version });
  } else {
    ops.push({ op: 'delete', path: src.znode, version: stat.version });
    const from = await metaDoc(ctx, src.metaDir, fresh);
    if (from.meta.entries.get(src.entryName) !== undefined) {
      ops.push(metaOp(from, withEntry(from.meta, src.entryName, undefined)));
    }
  }
  return { ops: fit(ops, `moving ${src.path}`), versions: new Map(), dataMove: true };
}

/** A directory's `_zoo_data_` moved out into a new file (the directory's data becomes empty). */
async function outOfDataFile(
  ctx: VfsContext,
  dir: NodeTarget,
  to: string,
  dst: Target | undefined,
  fresh: boolean,
): Promise<Built> {
  if (dst?.type === 'dir') throw new FsError('EISDIR', `${to} is a directory`);
  if (dst?.type === 'symlink') throw new FsError('EEXIST', `${to} is a symbolic link`);
  const { data, stat } = await ctx.client.getData(dir.znode);
  const parent = toZnode(ctx.root, parentPath(to));
  const name = baseName(to);
  const doc = await metaDoc(ctx, parent, fresh);
  const znode = toZnode(ctx.root, to);
  const ops: ZkOp[] = [];
  if (dst?.type === 'file') ops.push({ op: 'delete', path: znode, version: dst.stat.version });
  ops.push({ op: 'create', path: znode, data, acl: doc.acl });
  ops.push({ op: 'setData', path: dir.znode, data: Buffer.alloc(0), version: stat.version });
  ops.push(
    metaOp(doc, withEntry(doc.meta, name, newEntry('file', 0o666 & ~ctx.defaults.umask, ctx.defaults))),
  );
  return { ops: fit(ops, `moving ${dir.path}/${DATA_FILE}`), versions: new Map(), dataMove: true };
}

async function build(
  ctx: VfsContext,
  from: string,
  to: string,
  fresh: boolean,
  token: WriteToken,
  noReplace: boolean,
): Promise<Built> {
  const fromZnode = toZnode(ctx.root, from);
  const toZnodePath = toZnode(ctx.root, to);
  if (fresh) {
    ctx.tree.forgetTree(fromZnode);
    ctx.tree.forget(toZnodePath);
    ctx.tree.forgetSymlinks();
  }
  const src = await resolve(ctx, from);
  const dstParent = await resolveDir(ctx, parentPath(to));
  const dst = await lookup(ctx, to);
  if (src.type === 'dir' && src.isRoot) throw new FsError('EBUSY', 'the mount root cannot be renamed');
  // Asked here, in each attempt, not before the rename: a name made meanwhile fails the create in
  // the multi, and the next attempt finds it.
  if (noReplace && dst) throw new FsError('EEXIST', `${to} exists`);
  if (dst?.type === 'data' || (baseName(to) === DATA_FILE && !dst))
    return intoDataFile(ctx, src, dstParent, fresh);
  if (src.type === 'data') return outOfDataFile(ctx, src.dir, to, dst, fresh);

  const srcIsDir = src.type === 'dir';
  let replace: { version: number; metaVersion?: number | undefined } | undefined;
  if (dst?.type === 'dir') {
    if (!srcIsDir) throw new FsError('EISDIR', `${to} is a directory`);
    const children = await ctx.tree.freshChildNames(dst.znode);
    const stat = (await ctx.tree.freshStat(dst.znode)) ?? dst.stat;
    const links = await ctx.tree.symlinks();
    if (children.some((c) => c !== META_NODE) || stat.dataLength > 0 || hasLinksWithin(links.value, to)) {
      throw new FsError('ENOTEMPTY', `${to} is not empty`);
    }
    const metaStat = children.includes(META_NODE)
      ? await ctx.client.exists(zkChild(dst.znode, META_NODE))
      : null;
    replace = { version: stat.version, metaVersion: metaStat?.version };
  } else if (dst?.type === 'file') {
    if (srcIsDir) throw new FsError('ENOTDIR', `${to} is not a directory`);
    replace = { version: dst.stat.version };
  } else if (dst?.type === 'symlink' && srcIsDir) {
    throw new FsError('ENOTDIR', `${to} is not a directory`);
  }

  const nodes = src.type === 'symlink' ? [] : await gather(ctx, fromZnode, fresh);
  const links = await ctx.tree.symlinks();
  // A new name: links left below it by a directory another client deleted go.
  const kept = dst ? undefined : linksLeftBelow(ctx, links.value, to);
  let nextLinks: SymlinkMap | undefined = moveLinks(kept ?? links.value, from, to) ?? kept;
  if (dst?.type === 'symlink' && src.type !== 'symlink') {
    nextLinks = new Map(nextLinks ?? links.value);
    nextLinks.delete(to);
  }
  const docs: DocWrite[] = nextLinks
    ? [
        {
          path: links.path,
          version: links.version,
          data: encodeSymlinks(nextLinks),
          acl: await ctx.tree.acl(ctx.root),
          applied: showsLinkChanges(links.value, nextLinks),
        },
      ]
    : [];
  const metaDir = src.type === 'symlink' ? toZnode(ctx.root, parentPath(from)) : src.metaDir;
  const fromMeta = await metaDoc(ctx, metaDir, fresh);
  const toMeta = dstParent.znode === metaDir ? fromMeta : await metaDoc(ctx, dstParent.znode, fresh);
  const plan = planRename({
    from: fromZnode,
    to: toZnodePath,
    nodes,
    replace,
    fromMeta,
    toMeta,
    docs,
    maxBytes: ZK_MAX_REQUEST_BYTES,
    proof: token,
  });
  // A directory moved while another host makes a link below it would leave the link behind, under
  // a name nothing holds: the table must be as read, whether or not the move rewrites it.
  if (srcIsDir && !nextLinks && links.version !== undefined) {
    plan.ops.push({ op: 'check', path: links.path, version: links.version });
  }
  const versions = new Map(nodes.map((n) => [n.rel === '' ? fromZnode : `${fromZnode}/${n.rel}`, n.version]));
  // Last, with nothing awaited before the transaction goes: a write to it meanwhile would be lost.
  if (dst?.type === 'dir' && ctx.files.hasUnsavedWrites(dst.znode)) throw dataBeingWritten(to);
  return { ops: plan.ops, versions };
}

/** Losing a race on any node the plan read means: read again and rebuild. */
function isRace(error: ZkError): boolean {
  return ['BAD_VERSION', 'NO_NODE', 'NODE_EXISTS', 'NOT_EMPTY'].includes(error.zkName);
}

/** Builds and commits the move of `from` to `to`, from fresh reads while other clients win races: the plan that landed. */
async function commitRename(ctx: VfsContext, from: string, to: string, noReplace: boolean): Promise<Built> {
  let done: Built | undefined;
  let stats: MultiStats = [];
  try {
    stats = await ctx.proofs.during((token) =>
      commitWithRetry(
        ctx.tree,
        async (attempt) => {
          done = await build(ctx, from, to, attempt > 0, token, noReplace);
          return done.ops;
        },
        { retryAlso: isRace },
      ),
    );
  } catch (error) {
    const fsError = asFsError(error, `renaming ${from} to ${to}`);
    if (fsError.code === 'EXDEV' || fsError.code === 'EIO' || fsError.code === 'EPERM') {
      ctx.log.warn(`rename ${from} → ${to}: ${fsError.message}`);
    }
    throw fsError;
  }
  if (!done) throw new FsError('EIO', `renaming ${from} to ${to}: nothing was built`);
  const zxid = transactionZxid(stats);
  return zxid === undefined ? done : { ...done, zxid };
}

export interface RenameOptions {
  /** RENAME_NOREPLACE: fail with EEXIST rather than replace what is at `to`. */
  noReplace?: boolean;
}

export async function rename(
  ctx: VfsContext,
  from: string,
  to: string,
  options: RenameOptions = {},
): Promise<void> {
  assertWritable(ctx);
  if (from === to) return;
  if (isWithin(to, from)) throw new FsError('EINVAL', `cannot move ${from} into itself`);
  const name = baseName(to);
  if (name !== DATA_FILE) checkNewName(name, parentPath(to) === '/');
  const fromZnode = toZnode(ctx.root, from);
  const toZnodePath = toZnode(ctx.root, to);
  // Files open on a directory's _zoo_data_ are kept under the directory's node (that key alone).
  const openKey = (path: string) =>
    baseName(path) === DATA_FILE
      ? { znode: toZnode(ctx.root, parentPath(path)), exact: true }
      : { znode: toZnode(ctx.root, path) };
  // No write-back of a file it moves or replaces crosses the move: one landing after it would give
  // the moved file the old node's version, or fail, or land on the node moved in at the same version.
  const keys = [openKey(from), openKey(to)];
  await ctx.files.whileHeld(keys, async () => {
    // A file moved is in a node the move made: its write-backs must tell it from one another host
    // makes under the name later (goneUnheard), by its czxid or, unknown, as made in this epoch.
    const watchEpoch = ctx.tree.watchEpoch;
    const done = await commitRename(ctx, from, to, options.noReplace ?? false);
    if (done.dataMove) {
      for (const key of keys) ctx.files.markDeletedAt(key.znode);
    } else {
      ctx.files.markDeleted(toZnodePath);
      ctx.files.moved(fromZnode, toZnodePath, done.versions, from, to, { zxid: done.zxid, watchEpoch });
    }
  });
  ctx.tree.forgetTree(fromZnode);
  ctx.tree.forgetTree(toZnodePath);
  ctx.tree.forget(toZnode(ctx.root, parentPath(from)));
  ctx.tree.forget(toZnode(ctx.root, parentPath(to)));
  ctx.tree.forgetSymlinks();
}
