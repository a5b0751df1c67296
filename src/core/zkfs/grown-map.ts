/**
 * A read-only map that is another map plus one key it lacks, made without
 * copying: a directory's metadata document gains one entry per file
 * created in it, and copying a thousand-entry map for each new file cost
 * more than the rest of the create. Chains are cut short (copied into one
 * Map) every MAX_DEPTH additions, so a lookup never walks far and the
 * copying is paid once per MAX_DEPTH creates.
 */

/** Additions kept as links before they are folded into a plain Map. */
export const MAX_DEPTH = 32;

export class GrownMap<K, V> implements ReadonlyMap<K, V> {
  readonly size: number;
  /** Links between this map and the plain Map at the bottom. */
  readonly depth: number;

  private constructor(
    private readonly base: ReadonlyMap<K, V>,
    private readonly key: K,
    private readonly value: V,
  ) {
    this.size = base.size + 1;
    this.depth = base instanceof GrownMap ? base.depth + 1 : 1;
  }

  /** `base` with `key` set to `value`; a key `base` already has gets a copied Map instead. */
  static with<K, V>(base: ReadonlyMap<K, V>, key: K, value: V): ReadonlyMap<K, V> {
    if (base.has(key) || (base instanceof GrownMap && base.depth >= MAX_DEPTH)) {
      return new Map(base).set(key, value);
    }
    return new GrownMap(base, key, value);
  }

  /**
   * The additions that made `map` out of `base` (an earlier map it was
   * grown from), oldest first; undefined when it was not grown from `base`
   * (or was folded into a copy since).
   */
  static addedSince<K, V>(map: ReadonlyMap<K, V>, base: ReadonlyMap<K, V>): [K, V][] | undefined {
    const added: [K, V][] = [];
    let at: ReadonlyMap<K, V> = map;
    while (at !== base) {
      if (!(at instanceof GrownMap)) return undefined;
      added.push([at.key, at.value]);
      at = at.base;
    }
    return added.reverse();
  }

  get(key: K): V | undefined {
    // A loop, not recursion through base.get: the chain is walked without a call per link.
    let at: ReadonlyMap<K, V> = this;
    while (at instanceof GrownMap) {
      if (at.key === key) return at.value;
      at = at.base;
    }
    return at.get(key);
  }

  has(key: K): boolean {
    let at: ReadonlyMap<K, V> = this;
    while (at instanceof GrownMap) {
      if (at.key === key) return true;
      at = at.base;
    }
    return at.has(key);
  }

  /** In insertion order, as a Map would give them: the bottom map's, then each addition. */
  *entries(): MapIterator<[K, V]> {
    const added: GrownMap<K, V>[] = [];
    let at: ReadonlyMap<K, V> = this;
    while (at instanceof GrownMap) {
      added.push(at);
      at = at.base;
    }
    yield* at.entries();
    for (let i = added.length - 1; i >= 0; i--) {
      const link = added[i] as GrownMap<K, V>;
      yield [link.key, link.value];
    }
  }

  *keys(): MapIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): MapIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }
}
