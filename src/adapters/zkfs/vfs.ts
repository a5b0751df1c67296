/**
 * The ZooKeeper filesystem without FUSE: every operation the kernel can ask
 * for, in mount paths, resolving to values or throwing FsError
 * (core/zkfs/errors.ts). adapters/fuse.ts only translates calls and errors.
 * Tests drive this class directly against a real ZooKeeper; the same code
 * serves the mount.
 */
import type { Creator } from '../../core/zkfs/attrs.js';
import type { FsErrorCode } from '../../core/zkfs/errors.js';
import { toZnode } from '../../core/zkfs/paths.js';
import { WriteProofs } from '../../core/zkfs/write-proof.js';
import type { ZkStat } from '../zookeeper.js';
import * as attrs from './attr-ops.js';
import * as dirs from './dir-ops.js';
import * as files from './file-ops.js';
import { ttlFreshness } from './node-cache.js';
import { OpenFiles } from './open-files.js';
import { PathKeyTable } from './path-keys.js';
import { type RenameOptions, rename } from './rename.js';
import type { VfsConfig, VfsContext } from './resolve.js';
import { ZkTree } from './tree.js';

export type { FileAttr, FsStats } from './attr-ops.js';
export type { LastSeen } from './file-ops.js';
export type { VfsConfig } from './resolve.js';

export interface VfsOptions extends VfsConfig {
  /** How long cached stats, listings and metadata stay fresh (ms); other mounts' changes show after this. */
  cacheTtlMs?: number;
  /** A tree to use instead, e.g. the mount's watch-driven one (watch-cache.ts). */
  tree?: ZkTree;
}

/**
 * Which node a path stands for, told apart from another made later under
 * the same name: the transaction that created it, and the last that added
 * or removed one of its children.
 */
export interface NodeIdentity {
  created: bigint;
  childrenChanged: bigint;
}

function identityOf(stat: ZkStat): NodeIdentity {
  return { created: stat.czxid, childrenChanged: stat.pzxid };
}

/** Counters a status command can show. */
export interface VfsCounters {
  /** Operations served, by FUSE opcode (an array: counting one costs an indexed increment). */
  byOpcode: number[];
  errors: Partial<Record<FsErrorCode, number>>;
}

export class ZkVfs {
  readonly ctx: VfsContext;
  readonly counters: VfsCounters = { byOpcode: [], errors: {} };
  /**
   * Names another client deleted so far (the watch said so): an answer read
   * meanwhile may be of a node since gone. A lookup looks at it only where
   * the kernel takes no notifications, which changedSince() is built on.
   */
  deletionsElsewhere = 0;
  /**
   * Changes whenever the connection goes, the watch is set again, or a
   * notice comes while it is: an answer read across such a change may be
   * of a node another client deleted meanwhile, which no notice told of
   * (ZkTree.watchEpoch).
   */
  get watchEpoch(): number {
    return this.tree.watchEpoch;
  }
  /** Whether the watch is being set again: what is read now may miss a change (ZkTree.watchDown). */
  get watchDown(): boolean {
    return this.tree.watchDown;
  }
  /** Where reports of others' changes to the kernel stand: take it before reading what a node is handed out with. */
  changeMark(): number | undefined {
    return this.ctx.changeMark?.();
  }
  /**
   * Whether another client's change to `path` was reported after `mark`
   * while the kernel held no node of it: attributes read meanwhile may be
   * from before it, and nothing would tell the kernel once it has them.
   */
  changedSince(path: string, mark: number | undefined): boolean {
    return mark !== undefined && this.ctx.changedSince?.(path, mark) === true;
  }

  constructor(options: VfsOptions) {
    const tree =
      options.tree ??
      new ZkTree(options.client, options.root, ttlFreshness(options.cacheTtlMs ?? 1000), options.log);
    this.ctx = {
      ...options,
      tree,
      files: new OpenFiles(),
      pathKeys: new PathKeyTable(options.root),
      proofs: new WriteProofs(),
    };
    tree.onDataChanged = (znode) => this.ctx.files.changedElsewhere(znode);
  }

  get tree(): ZkTree {
    return this.ctx.tree;
  }

  /** Open handles (the daemon lets them drain before exiting). */
  get openHandles(): number {
    return this.ctx.files.openCount;
  }

  getattr(path: string) {
    return attrs.getattr(this.ctx, path);
  }
  /** getattr() when it needs no waiting; NOT_CACHED when it does. */
  getattrCached(path: string) {
    return attrs.getattrCached(this.ctx, path);
  }
  /** Gets getattrCached() ready to answer for `paths`, entries of `dir`, with one wait. */
  preloadAttrs(dir: string, paths: readonly string[]) {
    return attrs.preloadAttrs(this.ctx, dir, paths);
  }
  readdir(path: string, readAhead = true) {
    return dirs.readdir(this.ctx, path, readAhead);
  }
  /** `creator`: whose the new directory is (the caller of a FUSE request); the mount's owner when absent. */
  mkdir(path: string, mode: number, creator?: Creator) {
    return dirs.mkdir(this.ctx, path, mode, creator);
  }
  rmdir(path: string) {
    return dirs.rmdir(this.ctx, path);
  }
  unlink(path: string) {
    return dirs.unlink(this.ctx, path);
  }
  symlink(target: string, path: string, creator?: Creator) {
    return dirs.symlink(this.ctx, target, path, creator);
  }
  readlink(path: string) {
    return dirs.readlink(this.ctx, path);
  }
  rename(from: string, to: string, options: RenameOptions = {}) {
    return rename(this.ctx, from, to, options);
  }
  create(path: string, mode: number, flags?: number, creator?: Creator) {
    return files.create(this.ctx, path, mode, flags, creator);
  }
  open(path: string, flags: number) {
    return files.open(this.ctx, path, flags);
  }
  /** open() when it needs no waiting, else undefined. */
  openCached(path: string, flags: number) {
    return files.openCached(this.ctx, path, flags);
  }
  /** Whether openCached(path) for reading, just answered, would be answered alike until the cache changes. */
  reopensAlike(path: string) {
    return files.reopensAlike(this.ctx, path);
  }
  read(fh: number, length: number, position: number) {
    return files.read(this.ctx, fh, length, position);
  }
  /** The size of the data handle `fh` reads now. */
  sizeOf(fh: number): number {
    return this.ctx.files.get(fh).file.buffer.length;
  }
  /** The watch is back after a gap: what open files hold may be out of date. */
  watchBack() {
    this.ctx.files.allChangedElsewhere();
  }
  /** Another client deleted `znode` (a watch said so). */
  deletedElsewhere(znode: string) {
    this.deletionsElsewhere++;
    this.ctx.files.deletedElsewhere(znode);
  }
  /** The identity of the node at `path` as memory holds it; undefined when memory has no stat of it. */
  cachedIdentity(path: string): NodeIdentity | undefined {
    const stat = this.tree.stats.peek(toZnode(this.ctx.root, path));
    return stat ? identityOf(stat) : undefined;
  }
  /** Whether the node a rename here just put at `path` was deleted by another host since (watch-cache.ts). */
  replacedSinceMade(path: string): Promise<boolean> {
    return this.tree.replacedSinceMade(toZnode(this.ctx.root, path));
  }
  /** The identity of the node at `path` now; null when there is none. */
  async identity(path: string): Promise<NodeIdentity | null> {
    const stat = await this.tree.stat(toZnode(this.ctx.root, path));
    return stat && identityOf(stat);
  }
  /**
   * The identities of `paths` now, read together: a multiRead per batch
   * where memory is kept exact (their data comes along), one request each
   * for any still missing then.
   */
  async identities(paths: readonly string[]): Promise<(NodeIdentity | null)[]> {
    await this.tree.readDataAhead(paths.map((path) => toZnode(this.ctx.root, path)));
    return Promise.all(paths.map((path) => this.identity(path)));
  }
  /** A file's attributes and data (a directory's attributes) as memory holds them, for when it is deleted while open. */
  lastSeen(path: string) {
    return files.lastSeen(this.ctx, path);
  }
  readPath(path: string, length: number, position: number) {
    return files.readPath(this.ctx, path, length, position);
  }
  write(fh: number, data: Buffer, position: number) {
    return files.write(this.ctx, fh, data, position);
  }
  flush(fh: number) {
    return files.flush(this.ctx, fh);
  }
  fsync(fh: number) {
    return files.fsync(this.ctx, fh);
  }
  release(fh: number) {
    return files.release(this.ctx, fh);
  }
  truncate(path: string, size: number) {
    return files.truncate(this.ctx, path, size);
  }
  ftruncate(fh: number, size: number) {
    return files.ftruncate(this.ctx, fh, size);
  }
  chmod(path: string, mode: number) {
    return attrs.chmod(this.ctx, path, mode);
  }
  chown(path: string, uid: number, gid: number) {
    return attrs.chown(this.ctx, path, uid, gid);
  }
  utimens(path: string, atimeMs: number, mtimeMs: number) {
    return attrs.utimens(this.ctx, path, atimeMs, mtimeMs);
  }
  getxattr(path: string, name: string) {
    return attrs.getxattr(this.ctx, path, name);
  }
  listxattr(path: string) {
    return attrs.listxattr(this.ctx, path);
  }
  setxattr(path: string, name: string) {
    return attrs.setxattr(this.ctx, path, name);
  }
  statfs() {
    return attrs.statfs();
  }

  /** Writes back every changed open file (before an unmount). */
  async flushAll(): Promise<void> {
    await Promise.allSettled(this.ctx.files.allFiles().map((f) => files.flushFile(this.ctx, f)));
  }
}
