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

export interface CacheEntry<T> {
  value: T;
  /** When it was read (ms since epoch). */
  readAt: number;
}

export type FreshnessRule = (entry: CacheEntry<unknown>, now: number) => boolean;

/** Entries stay fresh for `ttlMs` after they were read (0 disables caching). */
export function ttlFreshness(ttlMs: number): FreshnessRule {
  return (entry, now) => now - entry.readAt < ttlMs;
}

export interface CacheStats {
  hits: number;
  misses: number;
}

/** One keyed table of cached values. */
export class CacheSlot<T> {
  private readonly entries = new Map<string, CacheEntry<T>>();
  private readonly inflight = new Map<string, Promise<T>>();
  private readonly generations = new Map<string, number>();
  readonly stats: CacheStats = { hits: 0, misses: 0 };

  constructor(
    private readonly fresh: FreshnessRule,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cached value if still fresh. */
  peek(key: string): T | undefined {
    const entry = this.entries.get(key);
    if (entry && this.fresh(entry, this.now())) return entry.value;
    return undefined;
  }

  has(key: string): boolean {
    return this.peek(key) !== undefined;
  }

  set(key: string, value: T): void {
    this.entries.set(key, { value, readAt: this.now() });
  }

  /** Returns the fresh cached value or loads it once, however many callers ask at the same time. */
  async get(key: string, load: () => Promise<T>): Promise<T> {
    const cached = this.peek(key);
    if (cached !== undefined) {
      this.stats.hits++;
      return cached;
    }
    const pending = this.inflight.get(key);
    if (pending) return pending;
    this.stats.misses++;
    const generation = this.generations.get(key) ?? 0;
    const promise = load().then(
      (value) => {
        if ((this.generations.get(key) ?? 0) === generation) this.set(key, value);
        return value;
      },
      (error: unknown) => {
        throw error;
      },
    );
    const tracked = promise.finally(() => {
      if (this.inflight.get(key) === tracked) this.inflight.delete(key);
    });
    this.inflight.set(key, tracked);
    return tracked;
  }

  invalidate(key: string): void {
    this.entries.delete(key);
    this.inflight.delete(key);
    this.generations.set(key, (this.generations.get(key) ?? 0) + 1);
  }

  /** Forgets `prefix` and every key below it (`prefix/…`). */
  invalidateTree(prefix: string): void {
    const below = prefix === '/' ? '/' : `${prefix}/`;
    const keys = new Set([...this.entries.keys(), ...this.inflight.keys()]);
    for (const key of keys) if (key === prefix || key.startsWith(below)) this.invalidate(key);
  }

  clear(): void {
    for (const key of [...this.entries.keys(), ...this.inflight.keys()]) this.invalidate(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
