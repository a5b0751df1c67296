/**
 * Directory entries: readdir, mkdir, rmdir, unlink, and symbolic links
 * (kept in `__symlinks__` under the mount root, core/zkfs/symlinks.ts).
 * Creating or removing a node and recording it in its directory's metadata
 * is one multi, so other hosts never see one without the other.
 */
import {
  type Creator,
  creatorOwner,
  encodeMeta,
  newEntry,
  showsEntry,
  withEntry,
} from '../../core/zkfs/attrs.js';
import { FsError } from '../../core/zkfs/errors.js';
import { showsDataFile } from '../../core/zkfs/modes.js';
import {
  baseName,
  checkNewName,
  DATA_FILE,
  isHiddenChild,
  META_NODE,
  parentPath,
  toZnode,
  zkChild,
} from '../../core/zkfs/paths.js';
import {
  checkTarget,
  encodeSymlinks,
  hasLinksWithin,
  linksIn,
  parseSymlinks,
  type SymlinkMap,
  showsLinkChanges,
} from '../../core/zkfs/symlinks.js';
import type { WriteToken } from '../../core/zkfs/write-proof.js';
import { docWrite, type ZkOp } from '../../core/zkfs/zk-ops.js';
import { parentAttrs } from './attr-ops.js';
import { asFsError, commitWithRetry } from './commit.js';
import { entriesStillThere, linksLeftBelow, linksOfGoneDirs } from './gone-names.js';
import { assertWritable, lookup, type NodeTarget, resolve, resolveDir, type VfsContext } from './resolve.js';

/**
 * The names in directory `path`. A program's listing (`readAhead`) also
 * starts reading what it will likely ask for next.
 */
export async function readdir(ctx: VfsContext, path: string, readAhead = true): Promise<string[]> {
  if (readAhead) ctx.onList?.(path);
  const dir = await resolveDir(ctx, path);
  const [children, links] = await Promise.all([
    (readAhead ? ctx.tree.childNames(dir.znode) : ctx.tree.listing(dir.znode)).catch((error: unknown) => {
      throw asFsError(error, `listing ${path}`);
    }),
    ctx.tree.symlinks(),
  ]);
  const names = new Set<string>(['.', '..']);
  if (showsDataFile(ctx.mode, dir.stat.dataLength) || ctx.files.hasUnsavedWrites(dir.znode))
    names.add(DATA_FILE);
  for (const name of children) if (!isHiddenChild(name, dir.isRoot)) names.add(name);
  for (const name of linksIn(links.value, path)) names.add(name);
  return [...names];
}

/** Makes directory `path`, `creator`'s when given (attrs.ts, newEntry). */
export async function mkdir(ctx: VfsContext, path: string, mode: number, creator?: Creator): Promise<void> {
  assertWritable(ctx);
  const parent = await resolveDir(ctx, parentPath(path));
  const name = baseName(path);
  checkNewName(name, parent.isRoot);
  if (name === DATA_FILE) throw new FsError('EPERM', `${DATA_FILE} is the directory's data pseudo-file`);
  if (await lookup(ctx, path)) throw new FsError('EEXIST', `${path} exists`);
  const znode = toZnode(ctx.root, path);
  const entry = newEntry('dir', mode, ctx.defaults, creator, creator && (await parentAttrs(ctx, parent)));
  let wroteLinks = false;
  await ctx.proofs
    .during((token) =>
      commitWithRetry(ctx.tree, async (attempt) => {
        const doc =
          attempt === 0 ? await ctx.tree.meta(parent.znode) : await ctx.tree.freshMeta(parent.znode);
        const acl = await ctx.tree.acl(parent.znode);
        const entries = withEntry(await entriesStillThere(ctx, parent, doc), name, entry);
        const meta = encodeMeta(token.mark(entries));
        const ops: ZkOp[] = [
          { op: 'create', path: znode, data: Buffer.alloc(0), acl },
          docWrite(doc.path, doc.version, meta, acl, undefined, token.shows),
        ];
        // At the version read: a link made anywhere meanwhile makes this multi start over, not vanish.
        const links = attempt === 0 ? await ctx.tree.symlinks() : await ctx.tree.freshSymlinks();
        const kept = linksLeftBelow(ctx, links.value, path);
        wroteLinks = kept !== undefined;
        if (kept)
          ops.push(
            docWrite(
              links.path,
              links.version,
              encodeSymlinks(kept),
              await ctx.tree.acl(ctx.root),
              showsLinkChanges(links.value, kept),
            ),
          );
        return ops;
      }),
    )
    .catch((error: unknown) => {
      throw asFsError(error, `creating directory ${path}`);
    });
  ctx.tree.forget(znode);
  ctx.tree.forget(parent.znode);
  if (wroteLinks) ctx.tree.forgetSymlinks();
}

/**
 * The ops that remove a node's entry from its directory's metadata, if it
 * has one, with the removal's token (write-proof.ts). Sent again after its
 * reply was lost, the removal counts as done when the document holds the
 * token, whatever other hosts did to the name since. With no entry to drop
 * there is no token; the removal then counts as done when the node is gone,
 * whoever removed it (rm answered ENOENT for a file it had removed). Without
 * `token` (a link's entry, dropped with the symlink table, which takes none)
 * it counts as done when the document shows the entry gone.
 */
async function dropEntry(
  ctx: VfsContext,
  node: Pick<NodeTarget, 'metaDir' | 'entryName'>,
  fresh: boolean,
  token?: WriteToken,
): Promise<ZkOp[]> {
  const doc = fresh ? await ctx.tree.freshMeta(node.metaDir) : await ctx.tree.meta(node.metaDir);
  if (doc.version === undefined || doc.value.entries.get(node.entryName) === undefined) return [];
  const dropped = withEntry(doc.value, node.entryName, undefined);
  if (!token) {
    const applied = (now: Buffer) => showsEntry(now, node.entryName, undefined);
    return [{ op: 'setData', path: doc.path, data: encodeMeta(dropped), version: doc.version, applied }];
  }
  const data = encodeMeta(token.mark(dropped));
  return [{ op: 'setData', path: doc.path, data, version: doc.version, proof: token.shows }];
}

/**
 * What a removal of `znode` does before it is sent again after its reply was
 * lost: by then the first send may have landed and another host made a node
 * under the name, which the removal would take (a node with no entry in its
 * directory's document leaves no proof there, and a version number does not
 * tell two nodes apart). `beforeResend` throws `replaced` when the node there
 * is not the one removed (`czxid()`): the caller counts the removal done, by
 * its first send or before the other host's node came. With no node there,
 * the removal goes again, and its failure is checked as any write's is.
 */
function removalResent(
  ctx: VfsContext,
  path: string,
  znode: string,
  czxid: () => bigint | undefined,
): { replaced: FsError; beforeResend: () => Promise<void> } {
  const replaced = new FsError('ENOENT', `${path} was made again before its removal was sent again`);
  const beforeResend = async () => {
    const now = await ctx.client.exists(znode);
    if (now && now.czxid !== czxid()) throw replaced;
  };
  return { replaced, beforeResend };
}

export async function rmdir(ctx: VfsContext, path: string): Promise<void> {
  assertWritable(ctx);
  const dir = await resolveDir(ctx, path);
  if (dir.isRoot) throw new FsError('EBUSY', 'the mount root cannot be removed');
  // The directory's _zoo_data_ open here: a write-back on its way lands first (and then the
  // directory is not empty); one sent after would land on a directory made again by the name.
  const data = { znode: dir.znode, exact: true };
  let removing: bigint | undefined;
  const { replaced, beforeResend } = removalResent(ctx, path, dir.znode, () => removing);
  await ctx.files.whileHeld([data], async () => {
    await ctx.proofs
      .during((token) =>
        commitWithRetry(
          ctx.tree,
          async (attempt) => {
            const stat = await ctx.tree.freshStat(dir.znode);
            if (!stat) throw new FsError('ENOENT', `${path} vanished`);
            removing = stat.czxid;
            const children = await ctx.tree.freshChildNames(dir.znode);
            const links = attempt === 0 ? await ctx.tree.symlinks() : await ctx.tree.freshSymlinks();
            const visible = children.filter((c) => c !== META_NODE);
            if (visible.length > 0 || stat.dataLength > 0 || hasLinksWithin(links.value, path)) {
              throw new FsError('ENOTEMPTY', `${path} is not empty`);
            }
            const ops: ZkOp[] = [];
            if (children.includes(META_NODE))
              ops.push({ op: 'delete', path: zkChild(dir.znode, META_NODE), version: -1 });
            ops.push({ op: 'delete', path: dir.znode, version: stat.version });
            ops.push(...(await dropEntry(ctx, dir, attempt > 0, token)));
            // No link made below it meanwhile (by another host: a link is only a table entry).
            if (links.version !== undefined)
              ops.push({ op: 'check', path: links.path, version: links.version });
            // As readdir shows it, a _zoo_data_ written here and not yet written back is there;
            // checked last, with nothing awaited before the transaction goes.
            if (ctx.files.hasUnsavedWrites(dir.znode)) throw dataBeingWritten(path);
            return ops;
          },
          { beforeResend },
        ),
      )
      .catch((error: unknown) => {
        if (error !== replaced) throw asFsError(error, `removing directory ${path}`);
      });
    ctx.files.markDeletedAt(data.znode);
  });
  ctx.tree.forgetTree(dir.znode);
  ctx.tree.forget(dir.metaDir);
}

export async function unlink(ctx: VfsContext, path: string): Promise<void> {
  assertWritable(ctx);
  const target = await resolve(ctx, path);
  if (target.type === 'dir') throw new FsError('EISDIR', `${path} is a directory`);
  if (target.type === 'symlink') {
    // The owner and times stored for it, if any, go in the same transaction: dropped after, they
    // could be another host's entry for a file made under the name in between.
    await updateSymlinks(
      ctx,
      (map) => {
        map.delete(path);
      },
      (map) => !map.has(path),
      (attempt) => dropEntry(ctx, target, attempt > 0),
    );
    ctx.tree.forget(target.metaDir);
    return;
  }
  if (target.type === 'data') {
    // Removing `_zoo_data_` empties the directory's data. Sent again after its reply was lost,
    // a write with no version would wipe what another host wrote since: it goes again only while
    // the node is at the version read, else it is done (by its first send, or before the other's).
    const done = new FsError('EEXIST', `${path} changed before its emptying was sent again`);
    const beforeResend = async () => {
      const now = await ctx.client.exists(target.znode);
      if (now?.version !== target.stat.version) throw done;
    };
    await ctx.client.setData(target.znode, Buffer.alloc(0), -1, { beforeResend }).catch((error: unknown) => {
      if (error !== done) throw asFsError(error, `clearing ${path}`);
    });
    // Only the file open on the directory's data goes: files open below it stay.
    ctx.files.markDeletedAt(target.znode);
    ctx.tree.forget(target.znode);
    return;
  }
  const { replaced, beforeResend } = removalResent(ctx, path, target.znode, () => target.stat.czxid);
  // A write-back on its way lands first; one sent after would land on a file made again under the name.
  await ctx.files.whileHeld([{ znode: target.znode }], async () => {
    await ctx.proofs
      .during((token) =>
        commitWithRetry(
          ctx.tree,
          async (attempt) => [
            { op: 'delete', path: target.znode, version: -1 },
            ...(await dropEntry(ctx, target, attempt > 0, token)),
          ],
          { beforeResend },
        ),
      )
      .catch((error: unknown) => {
        if (error !== replaced) throw asFsError(error, `removing ${path}`);
      });
    ctx.files.markDeleted(target.znode);
  });
  ctx.tree.forget(target.znode);
  ctx.tree.forget(target.metaDir);
}

/**
 * Applies `change` to the symlink table and writes it back at the version
 * read (re-reading on a race). `shows` says whether
 * a table read back holds that change: sent again after its reply was lost,
 * with the table rewritten by another host since, the write counts as done
 * when it does (the table is the old tool's format: no token fits in it).
 * `also` adds ops to the same multi (a new link's owner in its directory's
 * metadata document).
 */
export async function updateSymlinks(
  ctx: VfsContext,
  change: (map: SymlinkMap) => void,
  shows: (map: SymlinkMap) => boolean,
  also?: (attempt: number) => Promise<ZkOp[]>,
): Promise<void> {
  const applied = (now: Buffer) => shows(parseSymlinks(now));
  await commitWithRetry(ctx.tree, async (attempt) => {
    const doc = attempt === 0 ? await ctx.tree.symlinks() : await ctx.tree.freshSymlinks();
    const map: SymlinkMap = new Map(doc.value);
    change(map);
    const data = encodeSymlinks((await linksOfGoneDirs(ctx, map)) ?? map);
    return [
      docWrite(doc.path, doc.version, data, await ctx.tree.acl(ctx.root), applied),
      ...((await also?.(attempt)) ?? []),
    ];
  }).catch((error: unknown) => {
    throw asFsError(error, 'updating the symlink table');
  });
  ctx.tree.forgetSymlinks();
  ctx.tree.forget(ctx.root);
}

/**
 * Makes link `path` to `target`. The table has no owners (the old tool's
 * format), so a link made by `creator` other than the mount's --uid/--gid
 * records its owner under its name in the directory's metadata document,
 * where lchown puts it, in the same multi.
 */
export async function symlink(
  ctx: VfsContext,
  target: string,
  path: string,
  creator?: Creator,
): Promise<void> {
  assertWritable(ctx);
  const parent = await resolveDir(ctx, parentPath(path));
  const name = baseName(path);
  checkNewName(name, parent.isRoot);
  if (name === DATA_FILE) throw new FsError('EPERM', `${DATA_FILE} is the directory's data pseudo-file`);
  checkTarget(target);
  if (await lookup(ctx, path)) throw new FsError('EEXIST', `${path} exists`);
  const owner = creatorOwner(ctx.defaults, creator, creator && (await parentAttrs(ctx, parent)));
  // The directory still there when the link is made: removed meanwhile by another host, the link
  // would be left in the table for nothing to hold it (and dropped as such, ln having succeeded).
  const parentThere: ZkOp[] = parent.isRoot ? [] : [{ op: 'check', path: parent.znode, version: -1 }];
  const ownerOps = async (attempt: number): Promise<ZkOp[]> => {
    if (Object.keys(owner).length === 0) return parentThere;
    const doc = attempt === 0 ? await ctx.tree.meta(parent.znode) : await ctx.tree.freshMeta(parent.znode);
    const data = encodeMeta(withEntry(doc.value, name, owner));
    const applied = (now: Buffer) => showsEntry(now, name, owner);
    return [docWrite(doc.path, doc.version, data, await ctx.tree.acl(parent.znode), applied), ...parentThere];
  };
  // Another host's link by this name to the same target would pass too: a link is all it is.
  await updateSymlinks(
    ctx,
    (map) => {
      if (map.has(path)) throw new FsError('EEXIST', `${path} exists`);
      map.set(path, target);
    },
    (map) => map.get(path) === target,
    ownerOps,
  );
  if (Object.keys(owner).length > 0) ctx.tree.forget(parent.znode);
}

export async function readlink(ctx: VfsContext, path: string): Promise<string> {
  const target = await resolve(ctx, path);
  if (target.type !== 'symlink') throw new FsError('EINVAL', `${path} is not a symbolic link`);
  return target.target;
}

/** rmdir, or a rename over, a directory whose `_zoo_data_` a program here is writing. */
export function dataBeingWritten(path: string): FsError {
  return new FsError('ENOTEMPTY', `${path} is not empty (its ${DATA_FILE} is being written)`);
}
