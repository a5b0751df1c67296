/**
 * The mount's picture of ZooKeeper — stats, child lists, file data,
 * directory metadata documents, the symlink table — kept exact by one
 * persistent recursive watch on the mount root (zk-wire.ts), within a
 * memory budget (core/zkfs/cache-policy.ts).
 *
 * Why it is exact: ZooKeeper sends a connection's notifications and replies
 * in the order the changes happened, and a change's notification before the
 * reply of any read that sees it. Notifications are applied synchronously as
 * they arrive; every load remembers its key's generation when it starts and
 * is only stored if no notification touched the key meanwhile (node-cache.ts),
 * so a reply read before a change can never be stored after it. A value a
 * caller read on its own (CacheSlot.set) is ignored for the same reason.
 *
 * What a notification does (cache-patches.ts): a data change forgets the
 * node's stat and data; a creation or deletion also patches the parent's
 * cached child list and child count, so writing many files into one
 * directory does not re-list it. The mount's own writes (session.ts tells us about them) are written
 * through once their reply is in — when exactly one notification for the
 * node came meanwhile, which was ours.
 *
 * While the watch is not in place nothing is served from memory
 * (watch-gate.ts).
 *
 * Directory listings prefetch their children's stats and small data with
 * pipelined requests (a window of them in flight), so `ls -l`, `find` and
 * `cat` of a cold tree do not wait for one round trip after another; and
 * the next sibling directories are listed ahead of a walk.
 */
import type { DirMeta } from '../../core/zkfs/attrs.js';
import { BatchSize } from '../../core/zkfs/batch-size.js';
import { hitRate } from '../../core/zkfs/cache-policy.js';
import { ListAheadWindow } from '../../core/zkfs/list-ahead.js';
import {
  baseName,
  META_NODE,
  parentPath,
  SYMLINKS_NODE,
  toMountPath,
  zkChild,
} from '../../core/zkfs/paths.js';
import { RecentDeletions } from '../../core/zkfs/recent-deletions.js';
import { position, sortedIncludes } from '../../core/zkfs/sorted-names.js';
import { UnusedPrefetch } from '../../core/zkfs/unused-prefetch.js';
import type { AclEntry, ZkOp } from '../../core/zkfs/zk-ops.js';
import type { Logger } from '../logger.js';
import { isZkError, type MultiStats, transactionZxid, ZkError, type ZkStat } from '../zookeeper.js';
import { applyNotice, withCreatedStats, writeThrough } from './cache-patches.js';
import { ChildWatches } from './child-watches.js';
import type { Stale, StaleEntry } from './kernel-notify.js';
import { type CacheView, docChanges, staleFor } from './kernel-stale.js';
import { type CacheEntry, CacheSlot } from './node-cache.js';
import { type OwnWrite, OwnWrites } from './own-writes.js';
import { Prefetcher } from './prefetch.js';
import type { WriteObserver, ZkSession } from './session.js';
import { SlotBudget, sizeOf } from './slot-budget.js';
import {
  type CachedNode,
  type DocSnapshot,
  type HeldLeaf,
  type NodeData,
  type NodeKeys,
  ZkTree,
} from './tree.js';
import { type CacheMode, WatchGate } from './watch-gate.js';
import type { WatchNotice } from './zk-wire.js';

/** Siblings after a listed directory looked at for the next directory to list ahead. */
const LIST_AHEAD_SCAN = 64;
/** Prefetch requests in flight. */
const PREFETCH_WINDOW = 4;
/**
 * How long after the deletion of a name (by anyone) a lookup of it asks
 * ZooKeeper (core/zkfs/recent-deletions.ts): the notifications of one
 * transaction come back to back, so this only needs to outlast a busy turn.
 */
const DELETION_WINDOW_MS = 1000;

type ManyRead = ({ data: Buffer; stat: ZkStat } | ZkError)[];

/**
 * How long after another host changes a directory's document it is read
 * again to tell the kernel which entries changed: changes heard meanwhile
 * go with it. The kernel shows another host's chmod that much later (still
 * well within the 100 ms the mount promises); a directory filled by
 * another host costs a read per this long, not one per file.
 */
const DOC_DIFF_DELAY_MS = 10;

/** A document read again to see what another host changed (WatchCache.diffDoc). */
interface DocDiff {
  /** The document as the kernel was last told of it. */
  before: DirMeta;
  /**
   * Versions read meanwhile (a stat of a name in it, after the change
   * dropped the cached one), which the kernel may hold too: diffing only
   * `before` against the new one missed a chmod back, and the kernel kept
   * the mode in between for its whole --attr-timeout.
   */
  seen: DocSnapshot<DirMeta>[];
  /** Once the read is on its way: how many versions `seen` held when it was sent. */
  readSent: number | undefined;
  /** Changed again since the read on its way was sent. */
  again: boolean;
  /** What to drop should the read fail: the first change's fallback. */
  fallback: Stale | undefined;
}

export interface WatchCacheOptions {
  /** Memory budget (bytes); 0 keeps nothing. */
  cacheBytes: number;
  /** Freshness without persistent watches (ms). */
  fallbackTtlMs: number;
  /** ACL changes send no notification: how long a read ACL is reused (ms). */
  aclTtlMs?: number;
  /** Requests a listing keeps in flight while prefetching its children. */
  prefetchWindow?: number;
  /** Children read with one request while prefetching, at most. */
  prefetchBatch?: number;
}

export interface CacheStatus {
  mode: CacheMode;
  entries: number;
  bytes: number;
  limitBytes: number;
  hits: number;
  misses: number;
  hitRate: number;
  /** Notifications received. */
  notices: number;
  evictions: number;
  /** Children whose stat (and data) a listing fetched ahead. */
  prefetched: number;
  /** Directories watched on their own, as they hold nodes this mount may not read (absent from older daemons). */
  childWatches?: number;
}

/** A diff of a document the kernel was last told of as `before`, its read not sent yet. */
function newDiff(before: DirMeta, seen: DocSnapshot<DirMeta>[], fallback: Stale | undefined): DocDiff {
  return { before, seen, readSent: undefined, again: false, fallback };
}

/** A rejection as an Error, to hand to every waiter of a batch. */
function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Nodes remembered as possibly deleted right after this mount made them, until asked about. */
const MAX_DOUBTED = 64;

export class WatchedTree extends ZkTree implements WriteObserver {
  readonly data: CacheSlot<NodeData>;
  private readonly gate: WatchGate;
  private readonly memory: SlotBudget;
  private readonly own = new OwnWrites();
  private readonly aclTtlMs: number;
  private notices = 0;
  /** Notices that came while the watch was being set again, which memory did not act on. */
  private unheard = 0;
  private readonly prefetcher: Prefetcher;
  /** Directories whose document another host changed, being read again (diffDoc). */
  private readonly docDiffs = new Map<string, DocDiff>();
  /** Data read ahead and not used since the queue last ran dry; past a quarter of the budget, stats only. */
  private readonly unused = new UnusedPrefetch<NodeData>();
  /** How many directories a walk's next listing lists ahead of it. */
  private readonly aheadWindow = new ListAheadWindow();
  /** Nodes per multiRead, from the size of the nodes read last. */
  private readonly batch: BatchSize;
  private readonly view: CacheView;
  /** Names deleted moments ago, whose creation in the same transaction may be on its way. */
  private readonly recentlyDeleted = new RecentDeletions(DELETION_WINDOW_MS);
  /** Told which mount paths the kernel may hold stale copies of (kernel-notify.ts). */
  onStale: ((stale: Stale) => void) | undefined;
  /** Nodes this mount made whose deletion by another host may have come right after (OwnWrites.finish), with the zxid that made them. */
  private readonly doubted = new Map<string, bigint | undefined>();
  /** Directories holding a node this mount may not read, of which no notification speaks. */
  private readonly childWatches: ChildWatches;
  /** The node the last notice created or deleted, if it did. */
  private lastChildNotice: string | undefined;

  constructor(
    private readonly session: ZkSession,
    root: string,
    logger: Logger,
    options: WatchCacheOptions,
  ) {
    const gate = new WatchGate(session, root, options.fallbackTtlMs, logger);
    const fresh = (entry: CacheEntry<unknown>, now: () => number) => gate.serves(entry.readAt, now);
    super(session, root, fresh, logger);
    this.gate = gate;
    this.memory = new SlotBudget(options.cacheBytes, () => this.onChange?.());
    this.aclTtlMs = options.aclTtlMs ?? 1000;
    this.batch = new BatchSize(options.prefetchBatch);
    this.prefetcher = new Prefetcher(
      {
        active: () => this.live,
        has: (znode) => this.statKnown(znode),
        load: (znodes) => this.loadMany(znodes),
      },
      options.prefetchWindow ?? PREFETCH_WINDOW,
      () => this.batch.nodes,
      () => {
        this.unused.reset();
      },
    );
    this.view = {
      root,
      linksPath: this.linksPath,
      stat: (znode) => this.stats.peek(znode),
      meta: (dir) => this.metas.peek(dir)?.value,
      links: () => this.links.peek(this.linksPath)?.value,
    };
    this.data = new CacheSlot<NodeData>(fresh);
    this.shareLoads(this.data);
    const sized = <T>(slot: CacheSlot<T>, size: (key: string, value: T) => number) => {
      slot.trustSet = false;
      this.memory.attach(slot, size);
    };
    sized(this.stats, sizeOf.stat);
    sized(this.children, sizeOf.children);
    sized(this.data, sizeOf.data);
    sized(this.metas, sizeOf.meta);
    sized(this.acls, sizeOf.acl);
    sized(this.links, sizeOf.links);
    this.childWatches = new ChildWatches({
      add: (dir) => session.addChildWatch(dir),
      live: () => this.live,
      epoch: () => gate.epoch,
      armed: (dir) => this.childrenChanged(dir),
    });
    session.onNotice((notice) => this.onNotice(notice));
    gate.attach({
      lost: () => this.onWatchLost?.(this.session.lastZxidSeen),
      forgetAll: () => {
        this.forgetAll();
        this.onChange?.();
      },
      live: () => {
        // Back from time-limited caching: values are kept only as the watch keeps them.
        for (const slot of this.memory.all()) slot.trustSet = false;
        this.childWatches.rearm();
        this.onChange?.();
        this.onStale?.('all');
        this.onWatchBack?.();
      },
      timeLimited: () => {
        for (const slot of this.memory.all()) slot.trustSet = true;
        this.onChange?.();
        // No watch is coming back: what the kernel holds and names deleted meanwhile are seen to now.
        this.onStale?.('all');
        this.onWatchBack?.();
      },
    });
    session.setWriteObserver(this);
  }

  get mode(): CacheMode {
    return this.gate.mode;
  }

  override get exact(): boolean {
    return this.live;
  }

  /**
   * The gate's epoch, moved on too by each notice that came while the
   * watch was being set again: memory drops everything once it is in
   * place, but what was read in between may be from before that change.
   */
  override get watchEpoch(): number {
    return this.gate.epoch + this.unheard;
  }

  override get watchDown(): boolean {
    return this.gate.mode === 'waiting';
  }

  /** The time limit also while the watch is being set (again): a try out of 'ttl' that fails leaves no drop behind it. */
  override kernelKeepsMs(attrTimeoutMs: number): number {
    return this.gate.mode === 'watch' ? attrTimeoutMs : Math.min(attrTimeoutMs, this.gate.ttlMs);
  }

  /** Whether cached values are being served as exact. */
  private get live(): boolean {
    return this.gate.mode === 'watch';
  }

  /** Puts the watch in place; call once the session is open. */
  start(): Promise<void> {
    return this.gate.arm();
  }

  private onNotice(notice: WatchNotice): void {
    this.notices++;
    const last = this.lastChildNotice;
    this.lastChildNotice = notice.type === 'created' || notice.type === 'deleted' ? notice.path : undefined;
    if (notice.type === 'childrenChanged') {
      // Only child watches send these (a recursive watch never does). ZooKeeper sends a child's
      // creation or deletion just before its parent's change of children: such a change is known.
      const explained = last !== undefined && parentPath(last) === notice.path;
      if (this.gate.mode !== 'waiting' && !explained) this.childrenChanged(notice.path);
      return;
    }
    const kernel = this.onStale !== undefined && this.gate.mode !== 'waiting';
    // Worked out before apply() forgets what it needs.
    let stale = kernel ? staleFor(this.view, notice) : undefined;
    const isDoc = baseName(notice.path) === META_NODE;
    const before = kernel && isDoc ? this.metas.peek(parentPath(notice.path)) : undefined;
    // The kernel saw this mount's own writes; it only needs telling if someone else wrote too.
    const own = this.own.observe(notice.path, stale, notice.type === 'deleted');
    if (own) stale = undefined;
    if (this.gate.mode === 'waiting') {
      this.unheard++;
      return;
    }
    if (notice.type === 'deleted') {
      const gone = this.onDeleting?.(notice.path);
      if (own) {
        if (gone) this.own.holdDeletion(notice.path, gone);
      } else gone?.();
      // This mount's own rename over a name deletes and creates it in one transaction too, and
      // its notices come before the reply that writes the new node through (end()).
      this.recentlyDeleted.deleted(notice.path, Date.now());
    } else if (notice.type === 'created' && this.recentlyDeleted.size > 0) {
      this.recentlyDeleted.created(notice.path);
    }
    applyNotice(this, notice);
    if (notice.type === 'dataChanged' && !own) this.onDataChanged?.(notice.path);
    if (kernel && isDoc && !own) {
      const dir = parentPath(notice.path);
      const diffing = this.docDiffs.get(dir);
      if (diffing) {
        // A read not sent yet sees this change too; one on its way may not: read again after it.
        if (diffing.readSent !== undefined) diffing.again = true;
        return;
      }
      if (before) {
        this.diffDoc(dir, newDiff(before.value, [], stale));
        return;
      }
    }
    if (stale && (typeof stale === 'string' || stale.length > 0)) this.onStale?.(stale);
  }

  /** A version of `dir`'s document was read: one a diff under way must compare too. */
  protected override metaRead(dir: string, doc: DocSnapshot<DirMeta>): void {
    this.docDiffs.get(dir)?.seen.push(doc);
  }

  /**
   * Tells the kernel which entries of `dir` another host changed, from its
   * document read again (DOC_DIFF_DELAY_MS after the change) and compared
   * with the one before and with each version read meanwhile (which the
   * kernel may have been handed). Changes heard before that read is sent are read
   * with it, those heard while it is on its way by one more after it:
   * another host's `cp` of a thousand files into a directory listed here
   * had the whole document read for every file, or for want of the
   * document before (dropped by the change before, its read not back yet)
   * every name the kernel held in the directory dropped.
   */
  private diffDoc(dir: string, diff: DocDiff): void {
    this.docDiffs.set(dir, diff);
    const read = () => {
      diff.readSent = diff.seen.length;
      this.meta(dir, diff.before).then(
        (after) => {
          const known = [diff.before, ...diff.seen.map((doc) => doc.value)];
          this.onStale?.(known.flatMap((held) => docChanges(this.view, dir, held, after.value)));
          if (!diff.again) {
            this.docDiffs.delete(dir);
            return;
          }
          // Versions read since this read was sent may be newer than it (a change heard while it
          // was on its way), and the kernel may hold them: the next diff compares them too. Not by
          // version number, which starts again at 0 for a document made again.
          const since = diff.seen.slice(diff.readSent).filter((doc) => doc !== after);
          this.diffDoc(dir, newDiff(after.value, since, diff.fallback));
        },
        () => {
          this.docDiffs.delete(dir);
          this.onStale?.(diff.fallback ?? 'prune');
        },
      );
    };
    setTimeout(read, DOC_DIFF_DELAY_MS).unref();
  }

  /**
   * The children of `dir` changed, and no notice said which: a node this
   * mount may not read came or went. The listing is read again when next
   * needed, and what memory and the kernel hold of such nodes goes.
   */
  private childrenChanged(dir: string): void {
    applyNotice(this, { type: 'childrenChanged', path: dir });
    const at = toMountPath(this.root, dir);
    const stale: StaleEntry[] = [{ path: at, entry: false }];
    for (const name of this.childWatches.unreadable(dir)) {
      const child = zkChild(dir, name);
      for (const slot of [this.stats, this.data, this.children, this.acls]) slot.invalidate(child);
      stale.push({ path: toMountPath(this.root, child), entry: true });
    }
    this.onStale?.(stale);
  }

  /** A read of `znode` was refused: its directory's list of children gets a watch of its own. */
  private refused(znode: string, error: unknown): void {
    if (!isZkError(error, 'NO_AUTH') || znode === this.root) return;
    const dir = parentPath(znode);
    // Never on the mount root: ZooKeeper 3.8 keeps one watch mode per path and session, and a
    // child watch there would replace the recursive watch, silencing the whole tree.
    if (dir !== this.root) this.childWatches.refused(dir, baseName(znode));
  }

  /**
   * Whether the node this mount just made at `znode` was deleted since by
   * another host, whose notice came with the write's and so was taken for
   * its own. Asks ZooKeeper only when such a notice was heard.
   */
  override async replacedSinceMade(znode: string): Promise<boolean> {
    if (!this.doubted.has(znode)) return false;
    const zxid = this.doubted.get(znode);
    this.doubted.delete(znode);
    const stat = await this.freshStat(znode);
    return !stat || zxid === undefined || stat.czxid !== zxid;
  }

  begin(ops: readonly ZkOp[]): unknown {
    return this.own.begin(ops, this.gate.epoch);
  }

  end(token: unknown, ok: boolean, stats?: MultiStats): void {
    const write = token as OwnWrite;
    const { alone, stale, doubted, deletedElsewhere } = this.own.finish(write, ok);
    for (const gone of deletedElsewhere) gone();
    for (const entries of stale)
      if (typeof entries === 'string' || entries.length > 0) this.onStale?.(entries);
    // A doubt is about the latest node this mount made at a name: one left by an earlier node
    // there (a directory, say, never asked about) is not this one's.
    if (ok) for (const op of write.ops) if (op.op === 'create') this.doubted.delete(op.path);
    if (doubted.length > 0) {
      const zxid = transactionZxid(stats);
      for (const znode of doubted) this.doubted.set(znode, zxid);
      for (const znode of [...this.doubted.keys()].slice(0, -MAX_DOUBTED)) this.doubted.delete(znode);
    }
    if (!this.live || write.epoch !== this.gate.epoch) return;
    const known = withCreatedStats(write.ops, stats);
    const mine = new Set(alone);
    for (const [i, op] of write.ops.entries()) {
      if (!mine.has(op)) continue;
      const stat = known?.[i];
      writeThrough(this, op, stat);
      if (op.op === 'create') {
        // Memory holds it as written: no need to ask ZooKeeper about it as a name just deleted.
        if (this.recentlyDeleted.size > 0) this.recentlyDeleted.created(op.path);
        // The kernel asks for a new node's attributes next (its ACL, written through, counts as
        // just read): without its stat from the reply, start reading them now.
        if (!stat && baseName(op.path) !== META_NODE && op.readBack !== false) {
          this.stats.get(op.path, () => this.session.exists(op.path)).catch(() => {});
        }
      }
    }
  }

  /** Whether `znode` is a name deleted moments ago, by anyone (see DELETION_WINDOW_MS). */
  private justDeleted(znode: string): boolean {
    return this.recentlyDeleted.size > 0 && this.recentlyDeleted.within(znode, Date.now());
  }

  /** Nothing from memory for a name just deleted: stat() asks ZooKeeper. */
  override cachedNode(keys: NodeKeys): CachedNode | undefined {
    if (this.justDeleted(keys.znode)) return undefined;
    return super.cachedNode(keys) ?? this.absentNode(keys);
  }

  /**
   * A name its directory's exact listing in memory does not hold, as
   * cachedNode() tells a node that is not there (no stat), as stat() would
   * answer it with no request: so that a lookup of a new name (each file
   * `cp` makes) is answered at once too.
   */
  private absentNode(keys: NodeKeys): CachedNode | undefined {
    if (!this.live || keys.znode === this.root || this.stats.has(keys.znode)) return undefined;
    const siblings = this.children.peek(keys.dir);
    if (!siblings || sortedIncludes(siblings, baseName(keys.znode))) return undefined;
    const meta = this.metas.freshEntry(keys.dir);
    const links = this.links.freshEntry(this.linksPath);
    if (!meta || !links) return undefined;
    this.stats.stats.hits++;
    return { stat: null, meta: this.metas.served(meta), links: this.links.served(links) };
  }

  override heldNode(keys: NodeKeys): CachedNode | undefined {
    return super.cachedNode(keys);
  }

  /** A name missing from its directory's cached (exact) listing does not exist: no request. */
  override stat(znode: string): Promise<ZkStat | null> {
    // Gone by memory, moments ago: ask, since the transaction that deleted it may have made it again.
    if (this.live && this.justDeleted(znode)) {
      this.stats.invalidate(znode);
      return super.stat(znode);
    }
    // Replaced moments ago (a rename over it), and so likely read next, and replaced again: its data
    // comes along (one request either way), so that a program whose path walk reaches it just
    // before it goes again can still read it (fuse/orphans.ts).
    if (this.live && this.recentlyDeleted.size > 0 && this.recentlyDeleted.remade(znode, Date.now())) {
      return this.stats.get(znode, () => this.loadNode(znode));
    }
    // A listing queued it for prefetching: read it now with its data (the open that follows needs
    // it), and with the entries queued after it, which a listing's caller asks for next.
    if (this.live && this.prefetcher.expedite(znode)) return super.stat(znode);
    if (this.live && znode !== this.root && !this.stats.has(znode)) {
      const siblings = this.children.peek(parentPath(znode));
      if (siblings && !sortedIncludes(siblings, baseName(znode))) {
        this.stats.stats.hits++;
        return Promise.resolve(null);
      }
    }
    return super.stat(znode);
  }

  override childNames(znode: string): Promise<string[]> {
    return super.childNames(znode).then((names) => {
      if (this.childWatches.size > 0) this.childWatches.listed(znode, names);
      if (this.live && this.memory.budget.limitBytes > 0) {
        // Their stats (and data, while small), before the lookups that usually follow a listing.
        this.prefetchChildren(znode, names);
        this.listAhead(znode);
      }
      return names;
    });
  }

  /**
   * Lists, ahead of the program, the next directories after `znode` among
   * its siblings, with their metadata and children (through the
   * prefetcher): a walk (`find`, `ls -R`, `du`) then finds them in memory,
   * and ZooKeeper works on them while the daemon answers for this one. One
   * directory ahead, more while the walk keeps listing what was listed
   * ahead (core/zkfs/list-ahead.ts); only from a program's listing, never
   * from this one's.
   */
  private listAhead(znode: string): void {
    if (znode === this.root) return;
    const parent = parentPath(znode);
    const siblings = this.children.peek(parent);
    if (!siblings) return;
    const at = position(siblings, baseName(znode));
    if (siblings[at] !== baseName(znode)) return;
    const window = this.aheadWindow.listed(znode);
    let found = 0;
    for (let i = at + 1; i < siblings.length && i <= at + LIST_AHEAD_SCAN; i++) {
      const next = zkChild(parent, siblings[i] as string);
      const stat = this.stats.peek(next);
      if (!stat || stat.numChildren === 0) continue;
      if (++found > window) return;
      if (this.children.has(next) || this.children.inFlight(next)) continue;
      this.aheadWindow.listedAhead(next, window);
      void this.meta(next).catch(() => {});
      void super.childNames(next).then(
        (names) => this.prefetchChildren(next, names),
        () => {},
      );
    }
  }

  /** Queues the children of `znode` named `names` for prefetching, less the mount's own documents. */
  private prefetchChildren(znode: string, names: readonly string[]): void {
    const children = names.filter((n) => n !== META_NODE && !(znode === this.root && n === SYMLINKS_NODE));
    this.prefetcher.add(children.map((n) => zkChild(znode, n)));
  }

  /**
   * Loads the stats and data of `znodes` with one request, a multiRead
   * (zk-wire.ts) of those not loaded or loading already (past a quarter of
   * the budget, their stats one by one instead). Each node's result is
   * stored under its own generation check, as if it had been read alone.
   */
  private loadMany(znodes: readonly string[]): Promise<unknown> {
    if (znodes.length === 1 || this.unused.bytes > this.memory.budget.limitBytes / 4) {
      return Promise.all(znodes.map((znode) => this.stats.get(znode, () => this.loadNode(znode))));
    }
    const wanted: string[] = [];
    for (const znode of znodes) {
      // Data read and kept (exact) carries its stat: no request for that one.
      const node = this.data.peek(znode);
      if (node && !this.statKnown(znode)) this.stats.put(znode, node.stat);
      else wanted.push(znode);
    }
    const stats = this.stats.startMany(wanted);
    if (stats.keys.length === 0) return Promise.resolve();
    const data = this.data.startMany(stats.keys);
    return this.readEach(stats.keys).then(
      (result) => {
        data.settle(result);
        stats.settle((znode) => {
          const node = result(znode);
          if (node instanceof ZkError) {
            this.refused(znode, node);
            return isZkError(node, 'NO_NODE') ? null : node;
          }
          this.unused.add(node, node.data.length);
          return node.stat;
        });
      },
      (error: unknown) => {
        const failure = asError(error);
        data.settle(() => failure);
        stats.settle(() => failure);
      },
    );
  }

  /** Whether the stat of `znode` is in memory or on its way. */
  private statKnown(znode: string): boolean {
    return this.stats.has(znode) || this.stats.inFlight(znode);
  }

  /** Reads `keys` with one request; resolves with each one's node, or the ZkError its read ended with. */
  private async readEach(keys: readonly string[]): Promise<(znode: string) => NodeData | ZkError> {
    const nodes = await this.readMany(keys);
    const read = new Map<string, NodeData | ZkError | undefined>();
    for (const [i, znode] of keys.entries()) read.set(znode, nodes[i]);
    return (znode) => read.get(znode) ?? new ZkError('SYSTEM_ERROR', znode);
  }

  /** Reads `paths` with one request, noting their mean size for the next batch. */
  private async readMany(paths: readonly string[]): Promise<ManyRead> {
    const nodes = await this.session.getDataMany(paths);
    let bytes = 0;
    for (const node of nodes) if (!(node instanceof ZkError)) bytes += node.data.length;
    this.batch.read(nodes.length, bytes);
    return nodes;
  }

  /** A node's stat, reading its data along when the budget allows (one request either way). */
  private async loadNode(znode: string): Promise<ZkStat | null> {
    if (this.unused.bytes > this.memory.budget.limitBytes / 4) return this.session.exists(znode);
    try {
      const node = await this.data.get(znode, () => this.session.getData(znode));
      this.unused.add(node, node.data.length);
      return node.stat;
    } catch (error) {
      if (isZkError(error, 'NO_NODE')) return null;
      this.refused(znode, error);
      throw error;
    }
  }

  /** The children of `znode`, from memory or ZooKeeper, with none of the reading ahead a program's listing starts. */
  override listing(znode: string): Promise<string[]> {
    return super.childNames(znode);
  }

  /**
   * Reads the data of those of `znodes` neither cached nor loading, a
   * multiRead per batch, for a program reading the files before them: the
   * read-ahead that follows the reader when the listing's own ran out of
   * budget (a walk over more than the cache holds). Resolves once they are
   * stored.
   */
  override readDataAhead(znodes: readonly string[]): Promise<void> {
    if (!this.live) return Promise.resolve();
    const batches: Promise<void>[] = [];
    // In batches of the prefetcher's size: nodes of unknown size may be large, and a reply has a limit.
    const size = this.batch.nodes;
    for (let i = 0; i < znodes.length; i += size) batches.push(this.readDataBatch(znodes.slice(i, i + size)));
    return Promise.all(batches).then(() => {});
  }

  private readDataBatch(znodes: readonly string[]): Promise<void> {
    const data = this.data.startMany(znodes);
    if (data.keys.length === 0) return Promise.resolve();
    return this.readEach(data.keys).then(
      (result) => {
        data.settle(result);
        for (const znode of data.keys) {
          const node = result(znode);
          // As in readData: the stat is as current as the data while the data entry is the one just read.
          if (!(node instanceof ZkError) && this.data.peek(znode) === node && !this.stats.has(znode)) {
            this.stats.put(znode, node.stat);
          }
        }
      },
      (error: unknown) => {
        const failure = asError(error);
        data.settle(() => failure);
      },
    );
  }

  /** `node` went into the kernel's page cache for a program: if read ahead, it is used now. */
  storedForKernel(node: NodeData): void {
    this.unused.use(node);
  }

  override async readData(znode: string): Promise<NodeData> {
    if (!this.live) return super.readData(znode);
    let node: NodeData;
    try {
      node = await this.data.get(znode, () => this.session.getData(znode));
    } catch (error) {
      this.refused(znode, error);
      throw error;
    }
    return this.readFor(znode, node);
  }

  override cachedData(keys: NodeKeys): NodeData | undefined {
    if (!this.live) return undefined;
    const entry = this.data.freshEntry(keys.data ?? keys.znode);
    if (!entry) return undefined;
    keys.data = entry.key;
    return this.readFor(keys.znode, this.data.served(entry));
  }

  /** `node`, the data of `znode`, now read by a program. */
  private readFor(znode: string, node: NodeData): NodeData {
    this.unused.use(node);
    // The stat is as current as the data while the data entry is the one just read.
    if (!this.stats.has(znode) && this.data.peek(znode) === node) this.stats.put(znode, node.stat);
    return node;
  }

  override acl(znode: string): Promise<AclEntry[]> {
    if (this.acls.peek(znode) !== undefined && this.heldAcl(znode) === undefined) this.acls.invalidate(znode);
    return this.acls.get(znode, async () => (await this.session.getAcl(znode)).acl);
  }

  /**
   * The ACL of `znode` if read, or set by this mount's create, within the
   * last aclTtlMs: no watch tells of an ACL changed elsewhere.
   */
  private heldAcl(znode: string): AclEntry[] | undefined {
    const entry = this.acls.freshEntry(znode);
    return entry && entry.readAt >= Date.now() - this.aclTtlMs ? entry.value : undefined;
  }

  override heldLeaf(znode: string): HeldLeaf | undefined {
    if (!this.live) return undefined;
    const stat = this.stats.peek(znode);
    const node = this.data.peek(znode);
    const acl = this.heldAcl(znode);
    if (!stat || !node || !acl || stat.numChildren !== 0) return undefined;
    // The data as of the stat memory holds: a stat patched since (a child count) keeps its mzxid.
    if (node.stat.mzxid !== stat.mzxid || node.stat.version !== stat.version) return undefined;
    return { data: node.data, stat, acl };
  }

  // While the watch is live, the notices of the mount's own writes arrive before their replies and
  // update the cache precisely; forgetting more after a write would only cost round trips.
  override forget(znode: string): void {
    if (!this.live) super.forget(znode);
  }

  override forgetTree(znode: string): void {
    if (!this.live) super.forgetTree(znode);
  }

  override forgetSymlinks(): void {
    if (!this.live) super.forgetSymlinks();
  }

  override forgetAll(): void {
    super.forgetAll();
    this.data?.clear();
  }

  status(): CacheStatus {
    let hits = 0;
    let misses = 0;
    let entries = 0;
    for (const slot of this.memory.all()) {
      hits += slot.stats.hits;
      misses += slot.stats.misses;
      entries += slot.size;
    }
    return {
      mode: this.gate.mode,
      entries,
      bytes: this.memory.budget.usedBytes,
      limitBytes: this.memory.budget.limitBytes,
      hits,
      misses,
      hitRate: hitRate(hits, misses),
      notices: this.notices,
      evictions: this.memory.evictions,
      prefetched: this.prefetcher.count,
      childWatches: this.childWatches.size,
    };
  }
}
