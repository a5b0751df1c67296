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

/** An entry's mark of recent use, which the owner of the key may set itself (see markOf()). */
export interface UseMark {
  used: boolean;
}

/** A budgeted entry, linked into the eviction queue. */
interface Queued<K> extends UseMark {
  key: K;
  size: number;
  older: Queued<K> | undefined;
  newer: Queued<K> | undefined;
}

export class LruBudget<K = string> {
  /**
   * The eviction queue, oldest first, as a linked list: a used entry gets a
   * second chance (it goes to the back when eviction reaches it) instead of
   * being moved on every hit, which keeps hits cheap (CLOCK, an LRU
   * approximation). The queue was once the insertion order of the Map: but
   * a Map keeps the holes its deletions leave until it next grows, and
   * every eviction walked over all of them from the front again, so a
   * full cache slowed down with the square of its size: once a 64 MiB
   * cache was full, the daemon spent 2.8-11.8 s of CPU on each further walk
   * of 10,000 files, against 1.1-1.7 s with this queue.
   */
  private readonly entries = new Map<K, Queued<K>>();
  private oldest: Queued<K> | undefined;
  private newest: Queued<K> | undefined;
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
    const added: Queued<K> = { key, size: bytes, used: false, older: undefined, newer: undefined };
    this.entries.set(key, added);
    this.append(added);
    this.used += bytes;
    const evicted: K[] = [];
    while (this.used > this.limitBytes) {
      const old = this.oldest as Queued<K>;
      this.unlink(old);
      if (old === added || old.used) {
        // Everything else gets its second chance first; `added` itself is never evicted here.
        old.used = false;
        this.append(old);
        if (old === added && this.entries.size === 1) break;
        continue;
      }
      this.entries.delete(old.key);
      this.used -= old.size;
      evicted.push(old.key);
    }
    return evicted;
  }

  /**
   * The use mark of `key` (undefined for an unknown key): its owner keeps it
   * with the key and sets it on each use, so that a use needs no lookup
   * here. Once the budget drops the key, setting its old mark changes nothing.
   */
  markOf(key: K): UseMark | undefined {
    return this.entries.get(key);
  }

  remove(key: K): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.unlink(entry);
    this.used -= entry.size;
  }

  clear(): void {
    this.entries.clear();
    this.oldest = undefined;
    this.newest = undefined;
    this.used = 0;
  }

  private append(entry: Queued<K>): void {
    entry.older = this.newest;
    entry.newer = undefined;
    if (this.newest) this.newest.newer = entry;
    else this.oldest = entry;
    this.newest = entry;
  }

  private unlink(entry: Queued<K>): void {
    if (entry.older) entry.older.newer = entry.newer;
    else this.oldest = entry.newer;
    if (entry.newer) entry.newer.older = entry.older;
    else this.newest = entry.older;
    entry.older = undefined;
    entry.newer = undefined;
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
