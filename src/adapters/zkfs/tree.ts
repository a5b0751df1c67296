/**
 * Cached reads of the mounted ZooKeeper subtree, in the terms the
 * filesystem needs: a node's stat, its children, a directory's metadata
 * document (core/zkfs/attrs.ts), an ACL, and the symlink table. Writes go
 * straight to the client; callers then tell the tree what they changed.
 */
import { type DirMeta, emptyMeta, parseMeta } from '../../core/zkfs/attrs.js';
import { META_NODE, SYMLINKS_NODE, zkChild } from '../../core/zkfs/paths.js';
import { parseSymlinks, type SymlinkMap } from '../../core/zkfs/symlinks.js';
import type { AclEntry } from '../../core/zkfs/zk-ops.js';
import type { Logger } from '../logger.js';
import { isZkError, type ZkApi, type ZkStat } from '../zookeeper.js';
import { CacheSlot, type FreshnessRule } from './node-cache.js';

/** A client whose requests wait for a lost connection (session.ts): one joining such a request gets its own wait. */
interface WaitingClient {
  joined<T>(shared: Promise<T>, again: () => Promise<T>): Promise<T>;
}

function waitsForConnection(client: ZkApi): client is ZkApi & WaitingClient {
  return typeof (client as Partial<WaitingClient>).joined === 'function';
}

/** A metadata or symlink document as read: `version` undefined when its node does not exist. */
export interface DocSnapshot<T> {
  path: string;
  version: number | undefined;
  value: T;
}

/** A node's data with the stat it was read at. */
export interface NodeData {
  data: Buffer;
  stat: ZkStat;
}

/** A node with no children, as memory holds it whole: see heldLeaf(). */
export interface HeldLeaf extends NodeData {
  acl: AclEntry[];
}

/**
 * The keys cachedNode() looks up for one path: its znode, and the directory
 * whose metadata holds its entry. V8 finds a string key in a Map several
 * times faster when given the very object the Map holds than an equal
 * string built anew, so cachedNode() swaps in the key objects of the
 * entries it finds, for a caller that keeps these keys for next time.
 */
export interface NodeKeys {
  znode: string;
  dir: string;
  /** The znode as the data slot holds it, once cachedData() found it there. */
  data?: string;
}

/** What resolving a path needs to know of its node, as memory holds it. */
export interface CachedNode {
  stat: ZkStat | null;
  meta: DocSnapshot<DirMeta>;
  links: DocSnapshot<SymlinkMap>;
}

export class ZkTree {
  readonly stats: CacheSlot<ZkStat | null>;
  readonly children: CacheSlot<string[]>;
  readonly metas: CacheSlot<DocSnapshot<DirMeta>>;
  readonly acls: CacheSlot<AclEntry[]>;
  readonly links: CacheSlot<DocSnapshot<SymlinkMap>>;
  private readonly warned = new Set<string>();
  /** The `__symlinks__` node, built once: a key built anew for every lookup is hashed anew too. */
  readonly linksPath: string;
  /**
   * Told whenever the cache drops or replaces a value, by a tree that can
   * tell (watch-cache.ts): what memory held before then still holds.
   */
  onChange: (() => void) | undefined;
  /**
   * Asked, by a tree that hears of a deletion of `znode` (watch-cache.ts),
   * while memory still holds what it held of the node, for what to do of
   * another client's deletion of it: run at once, or, when the notice was
   * counted for a write of this mount's, once that write turns out not to
   * have made it (own-writes.ts).
   */
  onDeleting: ((znode: string) => () => void) | undefined;
  /**
   * Told that another client changed the data of `znode`, by a tree that
   * hears of it (watch-cache.ts), once memory has dropped the old data.
   */
  onDataChanged: ((znode: string) => void) | undefined;
  /**
   * Told, by a tree kept exact by a watch, that the watch is gone (changes
   * from now on go unreported) while memory still holds what it held; and
   * that it is back, with memory emptied in between (or that none will be:
   * the server has no persistent watches). `lastZxid`: the last
   * transaction the session had seen when the watch went (no node memory
   * knew of then was created after it), when known.
   */
  onWatchLost: ((lastZxid: bigint | undefined) => void) | undefined;
  onWatchBack: (() => void) | undefined;

  /**
   * Whether the node this mount just made at `znode` has been deleted by
   * another host since; only a tree kept by a watch can tell (watch-cache.ts).
   */
  async replacedSinceMade(_znode: string): Promise<boolean> {
    return false;
  }

  constructor(
    readonly client: ZkApi,
    /** The mounted znode. */
    readonly root: string,
    fresh: FreshnessRule,
    private readonly log: Logger,
  ) {
    this.stats = new CacheSlot(fresh);
    this.children = new CacheSlot(fresh);
    this.metas = new CacheSlot(fresh);
    this.acls = new CacheSlot(fresh);
    this.links = new CacheSlot(fresh);
    this.linksPath = zkChild(root, SYMLINKS_NODE);
    for (const slot of [this.stats, this.children, this.metas, this.acls, this.links]) this.shareLoads(slot);
  }

  /** Lets a lookup that finds a load of its key under way wait as long as its own load would (session-retry.ts, joined). */
  protected shareLoads(slot: Pick<CacheSlot<unknown>, 'joinLoad'>): void {
    const client = this.client;
    if (waitsForConnection(client)) slot.joinLoad = (shared, again) => client.joined(shared, again);
  }

  /**
   * Whether a cached value stays right until onChange says otherwise: true
   * of a tree kept exact by a watch (watch-cache.ts), not of this one, whose
   * values expire by time.
   */
  get exact(): boolean {
    return false;
  }

  /**
   * Changes whenever an exact tree may have missed a change (its watch lost
   * and set again): only while it stays the same, and the tree exact, has
   * every deletion since been heard of.
   */
  get watchEpoch(): number {
    return 0;
  }

  /** Whether the watch that keeps this tree exact is being set again: changes meanwhile go unreported. */
  get watchDown(): boolean {
    return false;
  }

  /**
   * How long the kernel may keep what it is told now (ms), given the
   * mount's --attr-timeout: no longer than memory keeps values where no
   * watch reports changes, since nothing would tell the kernel of them.
   * This tree does not say how long its values live: all of it.
   */
  kernelKeepsMs(attrTimeoutMs: number): number {
    return attrTimeoutMs;
  }

  /** The stat of `znode`, or null when it does not exist. */
  stat(znode: string): Promise<ZkStat | null> {
    return this.stats.get(znode, () => this.client.exists(znode));
  }

  /** A stat read now, bypassing (and refreshing) the cache. */
  async freshStat(znode: string): Promise<ZkStat | null> {
    this.stats.invalidate(znode);
    return this.stat(znode);
  }

  /** A node's data, for opening it: read afresh here; a watch-driven tree may answer from memory. */
  readData(znode: string): Promise<NodeData> {
    return this.client.getData(znode);
  }

  /** What readData() of `keys.znode` answers without waiting; never anything here, where it always reads afresh. */
  cachedData(_keys: NodeKeys): NodeData | undefined {
    return undefined;
  }

  /**
   * The data, stat and ACL of `znode` when memory holds all three as
   * current and the node has no children: what moving it takes (a rename
   * of a file this mount just wrote). Never anything here, where values
   * expire by time.
   */
  heldLeaf(_znode: string): HeldLeaf | undefined {
    return undefined;
  }

  /**
   * What stat() of `keys.znode`, meta() of `keys.dir` and symlinks() answer without
   * waiting, counted as the hits they are; undefined, counting nothing,
   * when any of them would have to wait.
   */
  /**
   * What memory holds for `keys`, as cachedNode() answers, even where a
   * subclass would rather ask afresh (a name deleted moments ago): for what
   * a node was, when it goes, not whether it is there now.
   */
  heldNode(keys: NodeKeys): CachedNode | undefined {
    return this.cachedNode(keys);
  }

  cachedNode(keys: NodeKeys): CachedNode | undefined {
    const stat = this.stats.freshEntry(keys.znode);
    const meta = this.metas.freshEntry(keys.dir);
    const links = this.links.freshEntry(this.linksPath);
    if (!stat || !meta || !links) return undefined;
    keys.znode = stat.key;
    keys.dir = meta.key;
    return { stat: this.stats.served(stat), meta: this.metas.served(meta), links: this.links.served(links) };
  }

  /**
   * Reads into memory the stats of `znodes`, all children of `dir`, and
   * the metadata of `dir`: with the symlink table, what cachedNode() needs
   * for each, for a caller that then answers them all at once (a listing's
   * attributes). One wait for all of them, not a chain of waits each.
   * Failures are left for the caller's own reads to report.
   */
  preload(znodes: readonly string[], dir: string): Promise<unknown> {
    return Promise.allSettled([this.meta(dir), ...znodes.map((znode) => this.stat(znode))]);
  }

  /** Every child name of `znode`, hidden ones included. */
  childNames(znode: string): Promise<string[]> {
    return this.children.get(znode, async () => {
      const { children, stat } = await this.client.getChildren(znode);
      this.stats.set(znode, stat);
      return children.sort();
    });
  }

  /** The same, with none of the reading ahead a program's listing may start (watch-cache.ts). */
  listing(znode: string): Promise<string[]> {
    return this.childNames(znode);
  }

  /**
   * Reads the data (and with it the stats) of `znodes` into memory ahead of
   * need, where the tree keeps memory exact (watch-cache.ts); here, nothing.
   */
  readDataAhead(_znodes: readonly string[]): Promise<void> {
    return Promise.resolve();
  }

  async freshChildNames(znode: string): Promise<string[]> {
    this.children.invalidate(znode);
    return this.childNames(znode);
  }

  /**
   * The metadata document of directory `dir`; empty (version undefined) when
   * it has none. `previous`, a version of it read before, makes reading one
   * that only grew since cheaper (parseMeta).
   */
  meta(dir: string, previous?: DirMeta): Promise<DocSnapshot<DirMeta>> {
    return this.metas.get(dir, async () => {
      const doc = await this.readMeta(zkChild(dir, META_NODE), previous);
      this.metaRead(dir, doc);
      return doc;
    });
  }

  private async readMeta(path: string, previous: DirMeta | undefined): Promise<DocSnapshot<DirMeta>> {
    try {
      const { data, stat } = await this.client.getData(path);
      const meta = parseMeta(data, previous);
      if (meta.corrupt && !this.warned.has(path)) {
        this.warned.add(path);
        this.log.warn(`${path} is not a valid zkfs metadata document; its entries are ignored`);
      }
      return { path, version: stat.version, value: meta };
    } catch (error) {
      if (isZkError(error, 'NO_NODE')) return { path, version: undefined, value: emptyMeta() };
      throw error;
    }
  }

  /**
   * Called with each version of `dir`'s document read from ZooKeeper, for a
   * subclass to note (watch-cache.ts). Not with the copies this mount's own
   * writes leave (cache-patches.ts): the kernel was told of those changes by
   * the requests that made them.
   */
  protected metaRead(_dir: string, _doc: DocSnapshot<DirMeta>): void {}

  async freshMeta(dir: string): Promise<DocSnapshot<DirMeta>> {
    this.metas.invalidate(dir);
    return this.meta(dir);
  }

  acl(znode: string): Promise<AclEntry[]> {
    return this.acls.get(znode, async () => (await this.client.getAcl(znode)).acl);
  }

  /** The symlink table of the mount (`__symlinks__` under the root). */
  symlinks(): Promise<DocSnapshot<SymlinkMap>> {
    const path = this.linksPath;
    return this.links.get(path, async () => {
      try {
        const { data, stat } = await this.client.getData(path);
        return { path, version: stat.version, value: parseSymlinks(data) };
      } catch (error) {
        if (isZkError(error, 'NO_NODE')) return { path, version: undefined, value: new Map() };
        throw error;
      }
    });
  }

  async freshSymlinks(): Promise<DocSnapshot<SymlinkMap>> {
    this.links.invalidate(this.linksPath);
    return this.symlinks();
  }

  /** Forget one node: its stat, children, metadata, ACL. */
  forget(znode: string): void {
    this.stats.invalidate(znode);
    this.children.invalidate(znode);
    this.metas.invalidate(znode);
    this.acls.invalidate(znode);
  }

  /** Forget a node and everything below it. */
  forgetTree(znode: string): void {
    this.stats.invalidateTree(znode);
    this.children.invalidateTree(znode);
    this.metas.invalidateTree(znode);
    this.acls.invalidateTree(znode);
  }

  forgetSymlinks(): void {
    this.links.invalidate(this.linksPath);
  }

  /** Forget everything (for a session change). */
  forgetAll(): void {
    for (const slot of [this.stats, this.children, this.metas, this.acls, this.links]) slot.clear();
  }
}
