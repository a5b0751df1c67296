/**
 * What the mount remembers about ZooKeeper between calls: stats, child
 * lists, directory metadata documents, ACLs and the symlink table, each
 * keyed by znode path.
 *
 * Staleness is explicit data (like rclone's Dir.read): an entry is fresh
 * while `isFresh(entry)` says so, and invalidation forgets it. For now
 * freshness is a short TTL plus precise invalidation after the mount's own
 * writes, so another mount's changes show up within the TTL. A watch-driven
 * cache only needs a different `isFresh` (fresh until a watch fires) and to
 * call `invalidate()` from the watch: nothing else in the filesystem changes.
 *
 * Loads are de-duplicated (concurrent lookups of one path share a request),
 * and a load that was in flight when its key was invalidated is not stored:
 * every invalidation bumps the key's generation.
 */

import type { UseMark } from '../../core/zkfs/cache-policy.js';

export interface CacheEntry<T> {
  value: T;
  /** When it was read (ms since epoch). */
  readAt: number;
  /** Its key, and the slot that holds it: a memory budget evicts an entry through them. */
  readonly key: string;
  readonly slot: CacheSlot<T>;
  /** Set by a memory budget: the mark a hit on this entry sets (cache-policy.ts). */
  useMark?: UseMark | undefined;
}

/** Whether `entry` may still be served; `now` reads the clock, for rules that need it (a watch-kept cache does not). */
export type FreshnessRule = (entry: CacheEntry<unknown>, now: () => number) => boolean;

/** Entries stay fresh for `ttlMs` after they were read (0 disables caching). */
export function ttlFreshness(ttlMs: number): FreshnessRule {
  return (entry, now) => now() - entry.readAt < ttlMs;
}

export interface CacheStats {
  hits: number;
  misses: number;
}

/**
 * Observers of a slot's contents, for a memory budget (slot-budget.ts):
 * `stored` after a value is kept, `hit` when a fresh value is returned,
 * `dropped` when a kept value is forgotten or replaced.
 */
export interface SlotHooks<T> {
  stored?(entry: CacheEntry<T>): void;
  hit?(entry: CacheEntry<T>): void;
  dropped?(entry: CacheEntry<T>): void;
}

/** Loads started by CacheSlot.startMany, settled together. */
export interface LoadBatch<T> {
  keys: string[];
  settle(result: (key: string) => T | Error): void;
}

/**
 * A key loading as part of a batch. Its promise is made only when a get()
 * waits for it: a listing's prefetch starts a hundred loads per request,
 * and most are settled before anyone asks, so a promise each (with its
 * callbacks and a turn of the microtask queue) was work for nobody.
 */
class BatchLoad<T> {
  private outcome: { value: T } | { error: Error } | undefined;
  private waiter: { promise: Promise<T>; resolve(value: T): void; reject(error: Error): void } | undefined;

  promise(): Promise<T> {
    if (this.outcome)
      return 'value' in this.outcome
        ? Promise.resolve(this.outcome.value)
        : Promise.reject(this.outcome.error);
    if (!this.waiter) {
      let resolve: (value: T) => void = () => {};
      let reject: (error: Error) => void = () => {};
      const promise = new Promise<T>((yes, no) => {
        resolve = yes;
        reject = no;
      });
      this.waiter = { promise, resolve, reject };
    }
    return this.waiter.promise;
  }

  settle(outcome: { value: T } | { error: Error }): void {
    this.outcome = outcome;
    if (!this.waiter) return;
    if ('value' in outcome) this.waiter.resolve(outcome.value);
    else this.waiter.reject(outcome.error);
  }
}

/** Loads of one key in flight; invalidation bumps `generation` so they are not stored. */
interface Loading {
  generation: number;
  count: number;
}

/** One keyed table of cached values. */
export class CacheSlot<T> {
  private readonly entries = new Map<string, CacheEntry<T>>();
  private readonly inflight = new Map<string, Promise<T> | BatchLoad<T>>();
  /** Only keys with loads in flight, so the table stays as small as the cache. */
  private readonly loading = new Map<string, Loading>();
  readonly stats: CacheStats = { hits: 0, misses: 0 };
  hooks: SlotHooks<T> = {};
  /**
   * Whether set() from callers is kept. A watch-driven cache turns it off:
   * a value a caller read may predate a change notice already applied, so
   * only loads (which detect that) and put() by the watch layer fill it.
   */
  trustSet = true;
  /**
   * What a get() that finds `key` loading waits for, given that load and a
   * way to load it anew: by default the load. A session that waits for a
   * lost connection gives the caller its own wait (session-retry.ts, joined).
   */
  joinLoad: (<V>(shared: Promise<V>, again: () => Promise<V>) => Promise<V>) | undefined;

  constructor(
    private readonly fresh: FreshnessRule,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cached value if still fresh. */
  peek(key: string): T | undefined {
    return this.freshEntry(key)?.value;
  }

  has(key: string): boolean {
    return this.peek(key) !== undefined;
  }

  /** Whether `key` is being loaded now. */
  inFlight(key: string): boolean {
    return this.inflight.has(key);
  }

  /** Stores a value the caller read or wrote (ignored when `trustSet` is off). */
  set(key: string, value: T): void {
    if (this.trustSet) this.put(key, value);
  }

  /**
   * Stores a value known to be current. A replaced entry's key object stays
   * the entry's key: the Map keeps the key object it was first given, and
   * callers that look up by `entry.key` then hand it the very object it
   * holds, which V8 finds several times faster than an equal string.
   */
  put(key: string, value: T): void {
    const old = this.entries.get(key);
    const entry: CacheEntry<T> = {
      value,
      readAt: this.now(),
      key: old ? old.key : key,
      slot: this,
      useMark: undefined,
    };
    this.entries.set(key, entry);
    if (old) this.hooks.dropped?.(old);
    this.hooks.stored?.(entry);
  }

  /** Forgets `entry` if it is still the one kept under its key (a memory budget's eviction). */
  evict(entry: CacheEntry<T>): void {
    if (this.entries.get(entry.key) === entry) this.invalidate(entry.key);
  }

  /** Forgets `key` (cancelling the storing of loads in flight) and stores `value`. */
  replace(key: string, value: T): void {
    this.invalidate(key);
    this.put(key, value);
  }

  /** What get() answers without waiting: the fresh cached value, counted as a hit; undefined when get() would load. */
  cached(key: string): T | undefined {
    const entry = this.freshEntry(key);
    return entry && this.served(entry);
  }

  /**
   * The entry kept under `key` while it is fresh, not yet counted: for a
   * caller that serves it only if other entries are there too, and then
   * counts it with served().
   */
  freshEntry(key: string): CacheEntry<T> | undefined {
    const entry = this.entries.get(key);
    return entry && entry.value !== undefined && this.fresh(entry, this.now) ? entry : undefined;
  }

  /** Counts `entry`, from freshEntry(), as a hit, and returns its value. */
  served(entry: CacheEntry<T>): T {
    this.stats.hits++;
    this.hooks.hit?.(entry);
    return entry.value;
  }

  /** Returns the fresh cached value or loads it once, however many callers ask at the same time. */
  async get(key: string, load: () => Promise<T>): Promise<T> {
    const value = this.cached(key);
    if (value !== undefined) return value;
    const pending = this.inflight.get(key);
    if (pending) {
      const shared = pending instanceof BatchLoad ? pending.promise() : pending;
      return this.joinLoad ? this.joinLoad(shared, () => this.get(key, load)) : shared;
    }
    this.stats.misses++;
    const loading = this.startLoad(key);
    const generation = loading.generation;
    const promise = load().then((value) => {
      if (loading.generation === generation) this.put(key, value);
      return value;
    });
    const tracked = promise.finally(() => this.endLoad(key, loading, tracked));
    this.inflight.set(key, tracked);
    return tracked;
  }

  /**
   * Starts, as get() would, a load of each of `keys` that is neither cached
   * nor loading, for a caller that reads them all with one request: those
   * keys, and `settle`, which takes each one's value (or the Error its read
   * ended with), stores the value unless the key was invalidated since it
   * started, and answers the get() callers waiting for it. Cheaper than a
   * get() per key: no promise at all, but for keys a get() waits for.
   */
  startMany(keys: readonly string[]): LoadBatch<T> {
    const started: { key: string; loading: Loading; generation: number; done: BatchLoad<T> }[] = [];
    for (const key of keys) {
      if (this.peek(key) !== undefined || this.inflight.has(key)) continue;
      this.stats.misses++;
      const loading = this.startLoad(key);
      const done = new BatchLoad<T>();
      this.inflight.set(key, done);
      started.push({ key, loading, generation: loading.generation, done });
    }
    return {
      keys: started.map((s) => s.key),
      settle: (result) => {
        for (const { key, loading, generation, done } of started) {
          const value = result(key);
          if (value instanceof Error) done.settle({ error: value });
          else {
            if (loading.generation === generation) this.put(key, value);
            done.settle({ value });
          }
          this.endLoad(key, loading, done);
        }
      },
    };
  }

  private startLoad(key: string): Loading {
    let loading = this.loading.get(key);
    if (!loading) {
      loading = { generation: 0, count: 0 };
      this.loading.set(key, loading);
    }
    loading.count++;
    return loading;
  }

  private endLoad(key: string, loading: Loading, load: Promise<T> | BatchLoad<T>): void {
    if (this.inflight.get(key) === load) this.inflight.delete(key);
    if (--loading.count === 0 && this.loading.get(key) === loading) this.loading.delete(key);
  }

  invalidate(key: string): void {
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.hooks.dropped?.(entry);
    }
    this.inflight.delete(key);
    const loading = this.loading.get(key);
    if (loading) loading.generation++;
  }

  /** Forgets `prefix` and every key below it (`prefix/…`). */
  invalidateTree(prefix: string): void {
    const below = prefix === '/' ? '/' : `${prefix}/`;
    const keys = new Set([...this.entries.keys(), ...this.loading.keys()]);
    for (const key of keys) if (key === prefix || key.startsWith(below)) this.invalidate(key);
  }

  clear(): void {
    for (const key of new Set([...this.entries.keys(), ...this.loading.keys()])) this.invalidate(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
