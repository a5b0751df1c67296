/**
 * How much a mount may keep in memory, and what it forgets first: a byte
 * budget over opaque keys (compared by identity: a mount uses its cache
 * entries themselves, so that no key string is built and hashed per use),
 * least recently used first (approximately). Pure bookkeeping — the caller
 * stores the values and drops the keys `add` hands back.
 *
 * One entry may use at most `maxEntryShare` of the budget, so a single
 * 1 MiB znode can never flush a whole small cache.
 */

/** Default memory budget of a mount's cache (bytes). */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

export class LruBudget<K = string> {
  /**
   * Map order is insertion order; a used entry gets a second chance (it is
   * moved to the end when eviction reaches it) instead of being moved on
   * every hit, which keeps hits cheap (CLOCK, an LRU approximation).
   */
  private readonly entries = new Map<K, { size: number; used: boolean }>();
  private used = 0;

  constructor(
    readonly limitBytes: number,
    /** Largest fraction of the budget one entry may take. */
    readonly maxEntryShare = 1 / 8,
  ) {
    if (!Number.isFinite(limitBytes) || limitBytes < 0)
      throw new RangeError(`bad cache budget ${limitBytes}`);
  }

  /** The largest entry that is kept at all. */
  get maxEntryBytes(): number {
    return Math.floor(this.limitBytes * this.maxEntryShare);
  }

  get usedBytes(): number {
    return this.used;
  }

  get count(): number {
    return this.entries.size;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  /**
   * Records `key` (new or replaced) as the most recently used entry of
   * `bytes`; returns the keys the caller must now forget, least recently
   * used first — `key` itself when it is too large to keep.
   */
  add(key: K, bytes: number): K[] {
    this.remove(key);
    if (bytes > this.maxEntryBytes) return [key];
    this.entries.set(key, { size: bytes, used: false });
    this.used += bytes;
    const evicted: K[] = [];
    while (this.used > this.limitBytes) {
      const [old, entry] = this.entries.entries().next().value as [K, { size: number; used: boolean }];
      this.entries.delete(old);
      if (entry.used && old !== key) {
        entry.used = false;
        this.entries.set(old, entry);
        continue;
      }
      if (old === key) {
        // Everything else got its second chance and stays: only possible when `key` alone is over.
        this.entries.set(old, entry);
        continue;
      }
      this.used -= entry.size;
      evicted.push(old);
    }
    return evicted;
  }

  /** Marks `key` as just used (no-op for unknown keys). */
  touch(key: K): void {
    const entry = this.entries.get(key);
    if (entry) entry.used = true;
  }

  remove(key: K): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.used -= entry.size;
  }

  clear(): void {
    this.entries.clear();
    this.used = 0;
  }
}

/** Hits over all lookups, 0 when there were none. */
export function hitRate(hits: number, misses: number): number {
  const total = hits + misses;
  return total === 0 ? 0 : hits / total;
}

/** Rough in-memory cost of a string key plus a fixed per-entry overhead (Map slot, objects). */
export function entryOverhead(key: string): number {
  return 96 + key.length * 2;
}
