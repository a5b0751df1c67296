/**
 * A rename as one ZooKeeper multi (shared/reference.md §3: the old tool
 * returned ENOSYS for non-empty directories). The transaction recreates the
 * source subtree under the new name and deletes the old one, so there is no
 * moment where both names or neither exist, and it fails as a whole if any
 * node changed since it was read:
 *
 * 1. delete the node being replaced (a file, or an empty directory with its
 *    metadata child), at the version read;
 * 2. create every source node under the new name, parents first, with the
 *    same data and ACL; metadata children are rewritten so that every moved
 *    entry keeps the mtime the user saw (the recreated znodes start over);
 * 3. delete every source node, children first, at the version read (a child
 *    added meanwhile makes its parent's delete fail with NOT_EMPTY);
 * 4. write the source and destination directories' metadata at the version
 *    read (one document when both are the same directory);
 * 5. any further documents (the symlink table), also version-checked.
 *
 * A plan larger than one request may carry is refused with EXDEV, which makes
 * mv(1) fall back to copying and deleting.
 */
import {
  type DirMeta,
  emptyMeta,
  encodeMeta,
  entryForMove,
  type MetaEntry,
  parseMeta,
  showsEntry,
  withEntry,
} from './attrs.js';
import { FsError } from './errors.js';
import { META_NODE } from './paths.js';
import type { WriteToken } from './write-proof.js';
import { type AclEntry, docWrite, multiBytes, type ShowsApplied, type ZkOp } from './zk-ops.js';

/** One node of the source subtree as read just before planning. */
export interface PlanNode {
  /** Path below the moved node: '' for the node itself, 'a/b' for a descendant. */
  rel: string;
  data: Buffer;
  version: number;
  mtimeMs: number;
  acl: readonly AclEntry[];
  ephemeral: boolean;
}

/** A directory's metadata document as read (version undefined: the node does not exist yet). */
export interface MetaDoc {
  /** The metadata node's own path (…/__zkfs__). */
  path: string;
  version: number | undefined;
  meta: DirMeta;
  /** ACL to create it with when absent (the directory's own). */
  acl: readonly AclEntry[];
}

/** Any other document the rename rewrites (the symlink table), with its new content. */
export interface DocWrite {
  path: string;
  version: number | undefined;
  data: Buffer;
  acl: readonly AclEntry[];
  /** Whether the document read back shows this write, after others rewrote it (zk-ops.ts). */
  applied?: ShowsApplied;
}

export interface RenameInput {
  /** Source and destination znodes. */
  from: string;
  to: string;
  /** The source subtree, parents before children; empty when the source is a symbolic link. */
  nodes: readonly PlanNode[];
  /** The existing destination to replace: a file, or an empty directory. */
  replace?: { version: number; metaVersion?: number | undefined } | undefined;
  fromMeta: MetaDoc;
  /** Same `path` as fromMeta when both names are in one directory. */
  toMeta: MetaDoc;
  docs?: readonly DocWrite[];
  maxBytes: number;
  /**
   * The rename's token (write-proof.ts): `mark` adds it to the first
   * metadata document the plan writes (the destination's, when written),
   * and `shows` finds it in that document read back.
   */
  proof?: WriteToken | undefined;
}

export interface RenamePlan {
  ops: ZkOp[];
  bytes: number;
}

function depth(rel: string): number {
  return rel === '' ? 0 : rel.split('/').length;
}

function join(base: string, rel: string): string {
  return rel === '' ? base : `${base}/${rel}`;
}

function relJoin(rel: string, name: string): string {
  return rel === '' ? name : `${rel}/${name}`;
}

function parentRel(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

function nameOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

function isMetaRel(rel: string): boolean {
  return rel !== '' && nameOf(rel) === META_NODE;
}

/**
 * For a rename sent again after its reply was lost, with the document
 * rewritten by another host since: done when it shows each of `names` as
 * this rename left it (the nodes' creations and deletions are checked on
 * their own).
 */
function showsNames(meta: DirMeta, names: readonly string[]): ShowsApplied {
  return (now) => names.every((name) => showsEntry(now, name, meta.entries.get(name)));
}

/** Metadata documents of the moved directories, each entry pinned to the mtime it showed. */
function movedMetas(nodes: readonly PlanNode[]): Map<string, { meta: DirMeta; acl: readonly AclEntry[] }> {
  const byRel = new Map(nodes.map((n) => [n.rel, n]));
  const metas = new Map<string, { meta: DirMeta; acl: readonly AclEntry[] }>();
  // Every document goes along, also one whose directory holds no node to move: its entries may be
  // all of symbolic links (their owners and times), and keys it has that this version does not know.
  for (const node of nodes) {
    if (isMetaRel(node.rel)) metas.set(parentRel(node.rel), { meta: parseMeta(node.data), acl: node.acl });
  }
  for (const node of nodes) {
    if (node.rel === '' || isMetaRel(node.rel)) continue;
    const dir = parentRel(node.rel);
    let doc = metas.get(dir);
    if (!doc) {
      const existing = byRel.get(relJoin(dir, META_NODE));
      const meta = existing ? parseMeta(existing.data) : emptyMeta();
      doc = { meta, acl: existing?.acl ?? byRel.get(dir)?.acl ?? [] };
      metas.set(dir, doc);
    }
    const name = nameOf(node.rel);
    doc.meta = withEntry(doc.meta, name, entryForMove(doc.meta.entries.get(name), node));
  }
  return metas;
}

export function planRename(input: RenameInput): RenamePlan {
  const nodes = [...input.nodes].sort((a, b) => depth(a.rel) - depth(b.rel));
  const ephemeral = nodes.find((n) => n.ephemeral);
  if (ephemeral) {
    throw new FsError('EPERM', `${join(input.from, ephemeral.rel)} is ephemeral and cannot be moved`);
  }
  const ops: ZkOp[] = [];

  if (input.replace) {
    if (input.replace.metaVersion !== undefined) {
      ops.push({ op: 'delete', path: join(input.to, META_NODE), version: input.replace.metaVersion });
    }
    ops.push({ op: 'delete', path: input.to, version: input.replace.version });
  }

  const metas = movedMetas(nodes);
  const root = nodes.find((n) => n.rel === '');
  for (const node of nodes) {
    if (isMetaRel(node.rel)) continue; // written below, once its directory exists
    ops.push({ op: 'create', path: join(input.to, node.rel), data: node.data, acl: node.acl });
    const doc = metas.get(node.rel);
    if (doc) {
      ops.push({
        op: 'create',
        path: join(input.to, relJoin(node.rel, META_NODE)),
        data: encodeMeta(doc.meta),
        acl: doc.acl,
      });
    }
  }
  for (const node of [...nodes].reverse()) {
    ops.push({ op: 'delete', path: join(input.from, node.rel), version: node.version });
  }

  const fromName = nameOf(input.from);
  const toName = nameOf(input.to);
  // A symbolic link (no nodes) keeps its stored owner and times as they are.
  const moved: MetaEntry | undefined = root
    ? entryForMove(input.fromMeta.meta.entries.get(fromName), root)
    : input.fromMeta.meta.entries.get(fromName);
  // Each document as written; the token goes into the first one the plan writes.
  let proof = input.proof;
  const metaWrite = (doc: MetaDoc, meta: DirMeta, names: readonly string[]): ZkOp => {
    const marked = proof ? proof.mark(meta) : meta;
    const shows = proof?.shows;
    proof = undefined;
    return docWrite(doc.path, doc.version, encodeMeta(marked), doc.acl, showsNames(meta, names), shows);
  };
  if (input.fromMeta.path === input.toMeta.path) {
    const meta = withEntry(withEntry(input.fromMeta.meta, fromName, undefined), toName, moved);
    ops.push(metaWrite(input.toMeta, meta, [fromName, toName]));
  } else {
    const replaced = input.toMeta.meta.entries.get(toName) !== undefined;
    const toWrite =
      moved || replaced
        ? metaWrite(input.toMeta, withEntry(input.toMeta.meta, toName, moved), [toName])
        : undefined;
    if (input.fromMeta.meta.entries.get(fromName) !== undefined) {
      ops.push(metaWrite(input.fromMeta, withEntry(input.fromMeta.meta, fromName, undefined), [fromName]));
    }
    if (toWrite) ops.push(toWrite);
  }

  for (const doc of input.docs ?? [])
    ops.push(docWrite(doc.path, doc.version, doc.data, doc.acl, doc.applied));

  const bytes = multiBytes(ops);
  if (bytes > input.maxBytes) {
    throw new FsError(
      'EXDEV',
      `renaming ${input.from} needs a ${bytes}-byte transaction (${nodes.length} nodes); ZooKeeper takes at most ${input.maxBytes}`,
    );
  }
  return { ops, bytes };
}
