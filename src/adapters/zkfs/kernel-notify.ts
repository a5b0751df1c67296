/**
 * Keeping the kernel's caches of a mount exact, so it may keep attributes,
 * names, directory listings and file pages for long (--attr-timeout) and
 * still show another host's change within milliseconds.
 *
 * A notification is a message written to the mount's /dev/fuse descriptor
 * (core/fuse/notifications.ts) naming nodes by the ids the kernel knows them
 * by. The mount's node table (core/fuse/node-table.ts) holds exactly the
 * paths the kernel has, so changes to anything else cost nothing.
 *
 * Writes never run on the event loop: the kernel may make a notification
 * wait for a request in flight (an invalidation for one on the same
 * directory, a store for a read of the same pages), and only the event loop
 * answers requests. Invalidations go out from libuv's thread pool, a few at
 * a time; page-cache stores, many more and each wanted by no one in
 * particular, in batches (fuse/batch-writer.ts).
 */
import { invalEntry, invalInode } from '../../core/fuse/notifications.js';
import { ROOT_ID } from '../../core/fuse/protocol.js';
import { baseName, parentPath } from '../../core/zkfs/paths.js';
import type { Logger } from '../logger.js';

/**
 * A mount path whose kernel copy a change made stale: its attributes and
 * pages always, its name too when `entry` (type or existence changed; for
 * a directory that also drops the names cached below it).
 */
export interface StaleEntry {
  path: string;
  entry: boolean;
  /**
   * A name that has just appeared, or one whose data changed: unless the
   * node table has it, the kernel holds no entry of it but one for a name
   * it found missing, which it asks about again each time (zkfs answers a
   * missing name with ENOENT, never with an entry the kernel may keep).
   * Only its directory's listing is then stale. Never a name gone: the node
   * table lets go of a deleted node before the kernel does.
   */
  fresh?: boolean;
}

/**
 * What to do with a cached name: nothing, have the kernel ask about it again
 * at its next use (a change that may have happened), or drop it (one that
 * did: a directory dropped is unhashed, so only for one gone or replaced).
 */
type NameDrop = 'none' | 'expire' | 'drop';

const STRENGTH: Record<NameDrop, number> = { none: 0, expire: 1, drop: 2 };

/** Stale paths; 'all': everything the kernel holds; 'prune': every name at the top. */
export type Stale = readonly StaleEntry[] | 'all' | 'prune';

/** What the notifier needs of the mount (adapters/fuse.ts). */
export interface KernelLink {
  /** The node id the kernel knows `path` by, if it holds it. */
  nodeIdOf(path: string): number | undefined;
  /** Every path the kernel holds. */
  knownPaths(): Iterable<string>;
  /** Writes a notification (off the event loop); resolves with the error the kernel gave, if any. */
  notify(message: Buffer): Promise<NodeJS.ErrnoException | null>;
  /** Writes a page-cache store (off the event loop, batched); resolves as notify does. */
  store(message: Buffer): Promise<NodeJS.ErrnoException | null>;
  /** Gets store writing ready ahead of the first store. */
  prepareStores?(): void;
  /** The size the kernel was last given for node `nodeId`, if it was given one. */
  sizeHeld?(nodeId: number): number | undefined;
}

/** Invalidations in flight at once (each holds a thread-pool thread). */
const PARALLEL = 2;
/**
 * After a directory's listing is dropped for a name made elsewhere, how
 * long further such drops of it are gathered into one (ms): the first name
 * shows at once, and another host's `cp` into a directory listed here
 * costs one drop per window instead of one or more per file.
 */
const LISTING_WINDOW_MS = 10;
/** Stores in flight at once: about one read-ahead window (page-store.ts), written as a batch. */
const STORE_SLOTS = 64;
/**
 * Changes to names the kernel held no node of, remembered for
 * changedSince(): the latest this many. A lookup in flight longer than it
 * took that many others to come (a mark older than the oldest kept) counts
 * its name as changed.
 */
const UNHELD_KEPT = 4096;

export interface NotifyCounters {
  /** Invalidations the kernel acted on. */
  sent: number;
  /** Notifications for things the kernel no longer had. */
  unknown: number;
  /** File contents put into the kernel's page cache ahead of a read. */
  stored: number;
}

/**
 * Builds a page-cache store for a path, given the node id the kernel knows
 * it by, when its turn comes; or says it is no longer wanted (the content
 * changed or the file was opened meanwhile).
 */
export type StoreBuilder = (nodeId: number) => Buffer | undefined;

export class KernelNotifier {
  readonly counters: NotifyCounters = { sent: 0, unknown: 0, stored: 0 };
  /** Mount path → what becomes of its name. */
  private readonly queue = new Map<string, NameDrop>();
  /** Page-cache stores waiting: they go after every invalidation. */
  private readonly stores = new Map<string, StoreBuilder>();
  /**
   * Paths with a notification in flight, and which kind. Nothing else
   * starts for such a path until it is done, so an invalidation can never
   * overtake the store of the content it invalidates.
   */
  private readonly busy = new Map<string, 'drop' | 'store'>();
  /** Callers of settled() waiting for a path's store in flight to land. */
  private readonly waiters = new Map<string, (() => void)[]>();
  /**
   * Directories whose listing was dropped for a name made elsewhere less
   * than LISTING_WINDOW_MS ago: whether another such drop waits for the
   * window's end, and the window's timer.
   */
  private readonly listingWindows = new Map<string, { again: boolean; timer: NodeJS.Timeout }>();
  /**
   * Names changed while the kernel held no node of them, each with the
   * count of such changes when it last changed (oldest first): a lookup of
   * one may be on its way with what was read before (changedSince()).
   */
  private readonly unheld = new Map<string, number>();
  private unheldChanges = 0;
  /** The count when the oldest change still remembered there came: nothing older is known. */
  private unheldFloor = 0;
  private dropping = 0;
  private storing = 0;
  private closed = false;

  private constructor(
    private readonly link: KernelLink,
    private readonly log: Logger,
  ) {}

  /** Checks that the kernel takes notifications on the mount. */
  static async open(link: KernelLink, log: Logger): Promise<KernelNotifier | undefined> {
    // Dropping a name the kernel does not have answers ENOENT when notifications work.
    const probe = await link.notify(invalEntry(ROOT_ID, `.zkfs-probe-${process.pid}`));
    if (probe && probe.code !== 'ENOENT') {
      log.warn(`kernel notifications off: the kernel refused one (${probe.code})`);
      return undefined;
    }
    return new KernelNotifier(link, log);
  }

  /** Drops what the kernel may hold of what `stale` names. */
  apply(stale: Stale): void {
    // Below, names that may have changed are only expired: dropping a directory would fail
    // getcwd(2) in it, and detach what is mounted on it, though it most likely did not change.
    if (stale === 'all') {
      // The watch was down: changes may have gone unreported.
      for (const path of [...this.link.knownPaths()]) this.enqueue(path, path !== '/' ? 'expire' : 'none');
    } else if (stale === 'prune') {
      for (const path of [...this.link.knownPaths()])
        if (path.lastIndexOf('/') === 0 && path !== '/') this.enqueue(path, 'expire');
      this.enqueue('/', 'none');
    } else {
      for (const { path, entry, fresh } of stale) {
        // Another host's `cp` into a directory listed here: one invalidation per file, not three.
        if (fresh && !this.knows(path)) {
          this.changedUnheld(path);
          if (entry && path !== '/') this.dropListing(parentPath(path));
        } else this.enqueue(path, entry ? 'drop' : 'none');
      }
    }
  }

  /** Where changes to names the kernel holds no node of stand: taken before a lookup reads. */
  mark(): number {
    return this.unheldChanges;
  }

  /**
   * Whether a change to `path` was reported after `mark` while the kernel
   * held no node of it: such a change found nothing to drop, and a lookup
   * of it that read before the change would give the kernel what it read,
   * for --attr-timeout. (Dropping the node once handed out would race with
   * the kernel making it: a drop of a node it does not hold yet is lost.)
   */
  changedSince(path: string, mark: number): boolean {
    const changed = this.unheld.get(path);
    return changed !== undefined ? changed > mark : mark < this.unheldFloor;
  }

  /** Stores are likely to follow (a program lists a directory whose files it may read next). */
  prepareStores(): void {
    if (!this.closed) this.link.prepareStores?.();
  }

  /**
   * Puts a file's content into the kernel's page cache, so that its first
   * read needs no request. `build` runs when the store's turn comes and
   * must then check that the content is still current.
   */
  store(path: string, build: StoreBuilder): void {
    if (this.closed || this.queue.has(path) || !this.knows(path)) return;
    this.stores.set(path, build);
    this.pump();
  }

  /**
   * Whether a store of `size` bytes fits node `nodeId` as the kernel holds
   * it. A store writes over the start of pages the kernel has and keeps the
   * rest: content shorter than the size the kernel holds would read as the
   * new content with the old one's tail, so it is not stored, and the next
   * read asks the daemon. Longer content is stored: the kernel grows the
   * file's size to it, which a file seen empty as it was made needs should
   * its lookup's reply have come after the change's notice.
   */
  holdsAt(nodeId: number, size: number): boolean {
    const held = this.link.sizeHeld?.(nodeId);
    if (held === undefined || size >= held) return true;
    this.log.debug(`page-cache store to node ${nodeId} skipped: ${size} bytes, and the kernel holds ${held}`);
    return false;
  }

  /** Whether the kernel holds `path` (a store for anything else is dropped). */
  knows(path: string): boolean {
    return this.link.nodeIdOf(path) !== undefined;
  }

  /** Whether a store or an invalidation for `path` waits or is on its way. */
  pending(path: string): boolean {
    return this.stores.has(path) || this.busy.has(path) || this.queue.has(path);
  }

  /**
   * Resolves once no store is on its way to the kernel for `path`, dropping
   * a store still waiting: a change made here (a truncate, an open for
   * writing) must not be reported done while a store of the old content
   * could still land over it. An invalidation on its way is not waited for:
   * dropping a name takes its directory's lock in the kernel, which a
   * program may hold while it waits for the very request that would wait
   * here (unlink holds the directory and waits for the file's lock, which
   * an open(O_TRUNC) holds while its truncate is answered), and an
   * invalidation landing after the change only drops what is stale anyway.
   */
  settled(path: string): Promise<void> {
    this.stores.delete(path);
    if (this.busy.get(path) !== 'store') return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(path);
      if (list) list.push(resolve);
      else this.waiters.set(path, [resolve]);
    });
  }

  close(): void {
    this.closed = true;
    for (const { timer } of this.listingWindows.values()) clearTimeout(timer);
    this.listingWindows.clear();
    this.queue.clear();
    this.stores.clear();
    for (const list of this.waiters.values()) for (const resolve of list) resolve();
    this.waiters.clear();
  }

  /** Drops `dir`'s listing for a name made in it elsewhere: at once, or at the end of its window (LISTING_WINDOW_MS). */
  private dropListing(dir: string): void {
    if (this.closed) return;
    const window = this.listingWindows.get(dir);
    if (window) {
      window.again = true;
      return;
    }
    this.enqueue(dir, 'none');
    this.openListingWindow(dir);
  }

  private openListingWindow(dir: string): void {
    const timer = setTimeout(() => {
      const window = this.listingWindows.get(dir);
      this.listingWindows.delete(dir);
      if (!window?.again || this.closed) return;
      this.enqueue(dir, 'none');
      this.openListingWindow(dir);
    }, LISTING_WINDOW_MS);
    timer.unref();
    this.listingWindows.set(dir, { again: false, timer });
  }

  /** A change to `path`, of which the kernel holds no node, for changedSince(). */
  private changedUnheld(path: string): void {
    this.unheld.delete(path);
    this.unheld.set(path, ++this.unheldChanges);
    if (this.unheld.size <= UNHELD_KEPT) return;
    for (const [oldest, at] of this.unheld) {
      this.unheld.delete(oldest);
      this.unheldFloor = at;
      break;
    }
  }

  private enqueue(path: string, name: NameDrop): void {
    if (this.closed) return;
    if (!this.knows(path)) {
      this.changedUnheld(path);
      // Nothing cached, nothing to drop: a new name's parent listing is handled through the parent.
      if (!(name !== 'none' && this.knows(parentPath(path)))) return;
    }
    this.stores.delete(path);
    const queued = this.queue.get(path) ?? 'none';
    this.queue.set(path, STRENGTH[queued] >= STRENGTH[name] ? queued : name);
    this.pump();
  }

  /** The first waiting path with nothing in flight for it. */
  private nextFree<T>(waiting: Map<string, T>): [string, T] | undefined {
    for (const item of waiting) if (!this.busy.has(item[0])) return item;
    return undefined;
  }

  private pump(): void {
    while (this.dropping < PARALLEL) {
      const drop = this.nextFree(this.queue);
      if (!drop) break;
      const [path, entry] = drop;
      this.queue.delete(path);
      this.dropping++;
      this.track(path, 'drop', this.drop(path, entry), () => this.dropping--);
    }
    // Read-ahead waits while the kernel still has changes to hear of.
    if (this.queue.size > 0) return;
    while (this.storing < STORE_SLOTS) {
      const store = this.nextFree(this.stores);
      if (!store) return;
      const [path, build] = store;
      this.stores.delete(path);
      const id = this.link.nodeIdOf(path);
      const message = id === undefined ? undefined : build(id);
      if (!message) continue;
      this.storing++;
      this.track(path, 'store', this.send(message, 'store'), () => this.storing--);
    }
  }

  /** Marks `path` busy until `work` is done, then frees its slot and looks for more. */
  private track(path: string, kind: 'drop' | 'store', work: Promise<void>, free: () => void): void {
    this.busy.set(path, kind);
    work
      .catch((error: unknown) => this.log.debug(`kernel notification for ${path}: ${String(error)}`))
      .finally(() => {
        free();
        this.busy.delete(path);
        const waiting = this.waiters.get(path);
        if (waiting) {
          this.waiters.delete(path);
          for (const resolve of waiting) resolve();
        }
        this.pump();
      });
  }

  private async drop(path: string, name: NameDrop): Promise<void> {
    const self = this.link.nodeIdOf(path);
    if (self !== undefined) await this.send(invalInode(self));
    if (name === 'none' || path === '/') return;
    const parent = this.link.nodeIdOf(parentPath(path));
    if (parent === undefined) return;
    await this.send(invalEntry(parent, baseName(path), name === 'expire'));
    // The kernel keeps directory listings too: a name that came or went changes the parent's.
    await this.send(invalInode(parent));
  }

  private async send(message: Buffer, kind: 'invalidation' | 'store' = 'invalidation'): Promise<void> {
    if (this.closed) return;
    const error = await (kind === 'store' ? this.link.store(message) : this.link.notify(message));
    if (!error) this.counters[kind === 'store' ? 'stored' : 'sent']++;
    else if (error.code === 'ENOENT') this.counters.unknown++;
    else this.log.debug(`kernel ${kind} refused: ${error.code}`);
  }
}
