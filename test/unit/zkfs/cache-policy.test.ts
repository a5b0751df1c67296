import { describe, expect, it } from 'vitest';
import { type CacheEntry, CacheSlot } from '../../../src/adapters/zkfs/node-cache.js';
import { hitRate, LruBudget } from '../../../src/core/zkfs/cache-policy.js';

/** Marks `key` as just used, as a cache entry's owner does with its mark. */
function use<K>(b: LruBudget<K>, key: K): void {
  const mark = b.markOf(key);
  if (mark) mark.used = true;
}

describe('LruBudget', () => {
  it('evicts the oldest entries once over budget, giving used ones a second chance', () => {
    const b = new LruBudget(300, 1);
    expect(b.add('a', 100)).toEqual([]);
    expect(b.add('b', 100)).toEqual([]);
    expect(b.add('c', 100)).toEqual([]);
    use(b, 'a');
    expect(b.add('d', 100)).toEqual(['b']);
    // a was used, so it went to the back of the queue when eviction reached it.
    expect(b.add('e', 150)).toEqual(['c', 'd']);
    expect(b.usedBytes).toBe(250);
    expect(b.count).toBe(2);
    expect(b.has('a') && b.has('e')).toBe(true);
  });

  it('keeps the eviction order through removals and replacements anywhere in the queue', () => {
    const b = new LruBudget(500, 1);
    for (const k of ['a', 'b', 'c', 'd', 'e']) b.add(k, 100);
    b.remove('c'); // from the middle
    b.remove('a'); // the oldest
    b.add('b', 100); // replaced: now the newest
    b.remove('f'); // unknown: nothing happens
    expect(b.usedBytes).toBe(300);
    b.add('g', 100);
    b.add('h', 100);
    // Oldest first: d, e, b, g, h.
    expect(b.add('i', 250)).toEqual(['d', 'e', 'b']);
    b.clear();
    expect(b.count).toBe(0);
    expect(b.add('j', 500)).toEqual([]);
    expect(b.add('k', 1)).toEqual(['j']);
  });

  it('keeps a new entry that fits even when every other entry was used', () => {
    const b = new LruBudget(200, 1);
    b.add('a', 100);
    b.add('b', 100);
    use(b, 'a');
    use(b, 'b');
    expect(b.add('c', 150)).toEqual(['a', 'b']);
    expect(b.usedBytes).toBe(150);
  });

  it('refuses an entry larger than its share, replacing keeps one size', () => {
    const b = new LruBudget(800, 1 / 8);
    expect(b.maxEntryBytes).toBe(100);
    expect(b.add('big', 101)).toEqual(['big']);
    expect(b.has('big')).toBe(false);
    b.add('x', 50);
    b.add('x', 80);
    expect(b.usedBytes).toBe(80);
    b.add('x', 500); // grown past the share: dropped
    expect(b.usedBytes).toBe(0);
    expect(b.has('x')).toBe(false);
  });

  it("a use mark kept by the key's owner gives the second chance; a dropped key's mark changes nothing", () => {
    const b = new LruBudget(300, 1);
    b.add('a', 100);
    const mark = b.markOf('a');
    b.add('b', 100);
    b.add('c', 100);
    if (mark) mark.used = true;
    expect(b.add('d', 100)).toEqual(['b']);
    b.remove('a');
    expect(b.markOf('a')).toBeUndefined();
    b.add('a', 100); // a new entry for the key, with a mark of its own
    if (mark) mark.used = true;
    expect(b.add('e', 100)).toEqual(['c']);
    expect(b.add('f', 100)).toEqual(['d']);
    expect(b.add('g', 100)).toEqual(['a']);
  });

  it('a zero budget keeps nothing', () => {
    const b = new LruBudget(0);
    expect(b.add('a', 1)).toEqual(['a']);
    expect(b.count).toBe(0);
  });

  it('rejects a negative budget', () => {
    expect(() => new LruBudget(-1)).toThrow(RangeError);
  });

  it('hit rate', () => {
    expect(hitRate(0, 0)).toBe(0);
    expect(hitRate(3, 1)).toBe(0.75);
  });
});

describe('CacheSlot', () => {
  const always = () => true;

  it('does not store a load that was invalidated while in flight, and forgets finished loads', async () => {
    const slot = new CacheSlot<number>(always);
    let resolve!: (n: number) => void;
    const pending = slot.get('k', () => new Promise<number>((r) => (resolve = r)));
    slot.invalidate('k');
    resolve(1);
    expect(await pending).toBe(1);
    expect(slot.peek('k')).toBeUndefined();
    expect(await slot.get('k', async () => 2)).toBe(2);
    expect(slot.peek('k')).toBe(2);
    // No bookkeeping is left for keys without loads in flight.
    expect((slot as unknown as { loading: Map<string, unknown> }).loading.size).toBe(0);
  });

  it('an older load finishing after a newer one started is not stored', async () => {
    const slot = new CacheSlot<number>(always);
    let first!: (n: number) => void;
    const a = slot.get('k', () => new Promise<number>((r) => (first = r)));
    slot.invalidate('k');
    let second!: (n: number) => void;
    const b = slot.get('k', () => new Promise<number>((r) => (second = r)));
    second(2);
    await b;
    slot.invalidate('k'); // nothing in flight now: generation state was dropped
    first(1);
    await a;
    expect(slot.peek('k')).toBeUndefined();
  });

  it('ignores set() when told to and still takes put() and replace()', () => {
    const slot = new CacheSlot<number>(always);
    slot.trustSet = false;
    slot.set('k', 1);
    expect(slot.peek('k')).toBeUndefined();
    slot.put('k', 2);
    slot.replace('k', 3);
    expect(slot.peek('k')).toBe(3);
  });

  it('reports stores, hits, replacements and drops to its hooks, entry by entry', async () => {
    const slot = new CacheSlot<string>(always);
    const seen: string[] = [];
    slot.hooks = {
      stored: (e) => seen.push(`stored ${e.key}=${e.value}`),
      hit: (e) => seen.push(`hit ${e.key}=${e.value}`),
      dropped: (e) => seen.push(`dropped ${e.key}=${e.value}`),
    };
    await slot.get('/a', async () => 'x');
    await slot.get('/a', async () => 'y');
    slot.put('/a/b', 'z');
    slot.put('/a/b', 'w');
    slot.invalidateTree('/a');
    slot.invalidate('/a');
    expect(seen).toEqual([
      'stored /a=x',
      'hit /a=x',
      'stored /a/b=z',
      'dropped /a/b=z',
      'stored /a/b=w',
      'dropped /a=x',
      'dropped /a/b=w',
    ]);
    expect(slot.stats).toEqual({ hits: 1, misses: 1 });
  });

  it('loads many keys as one batch: only those not cached or loading, each stored unless invalidated meanwhile', async () => {
    const slot = new CacheSlot<string>(always);
    slot.put('/cached', 'c');
    void slot.get('/loading', () => new Promise<string>(() => {}));
    const batch = slot.startMany(['/cached', '/loading', '/a', '/b', '/gone']);
    expect(batch.keys).toEqual(['/a', '/b', '/gone']);
    // Callers asking meanwhile wait for the batch instead of loading again.
    let loads = 0;
    const waiting = slot.get('/a', async () => {
      loads++;
      return 'again';
    });
    const failed = slot.get('/gone', async () => 'never');
    slot.invalidate('/b'); // changed while the batch was on its way
    batch.settle((key) => (key === '/gone' ? new Error('gone') : `value of ${key}`));
    await expect(waiting).resolves.toBe('value of /a');
    await expect(failed).rejects.toThrow('gone');
    expect(loads).toBe(0);
    expect(slot.peek('/a')).toBe('value of /a');
    expect(slot.peek('/b')).toBeUndefined();
    expect(slot.peek('/gone')).toBeUndefined();
    expect(slot.inFlight('/a')).toBe(false);
    expect(slot.stats).toEqual({ hits: 0, misses: 4 });
  });

  it('evicts an entry only while it is still the one kept under its key', () => {
    const slot = new CacheSlot<string>(always);
    const entries: CacheEntry<string>[] = [];
    slot.hooks = { stored: (e) => entries.push(e) };
    slot.put('/k', 'old');
    slot.put('/k', 'new');
    const [old, current] = entries as [CacheEntry<string>, CacheEntry<string>];
    slot.evict(old);
    expect(slot.peek('/k')).toBe('new');
    slot.evict(current);
    expect(slot.peek('/k')).toBeUndefined();
  });
});
