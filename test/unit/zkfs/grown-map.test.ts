import { describe, expect, it } from 'vitest';
import { GrownMap, MAX_DEPTH } from '../../../src/core/zkfs/grown-map.js';

/** What the grown map must look like: the same additions made to a plain Map. */
function grow(count: number, start: ReadonlyMap<string, number> = new Map([['base', -1]])) {
  let map = start;
  const plain = new Map(start);
  for (let i = 0; i < count; i++) {
    map = GrownMap.with(map, `k${i}`, i);
    plain.set(`k${i}`, i);
  }
  return { map, plain };
}

describe('GrownMap', () => {
  it('answers get, has, size and iteration as a Map with the same additions would', () => {
    for (const count of [1, 5, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 3 * MAX_DEPTH + 7]) {
      const { map, plain } = grow(count);
      expect(map.size).toBe(plain.size);
      expect([...map]).toEqual([...plain]);
      expect([...map.keys()]).toEqual([...plain.keys()]);
      expect([...map.values()]).toEqual([...plain.values()]);
      for (const key of ['base', 'k0', `k${count - 1}`, 'absent']) {
        expect(map.get(key)).toBe(plain.get(key));
        expect(map.has(key)).toBe(plain.has(key));
      }
      const seen: [string, number][] = [];
      map.forEach((value, key) => {
        seen.push([key, value]);
      });
      expect(seen).toEqual([...plain]);
    }
  });

  it('never chains more than MAX_DEPTH additions: the next one folds them into a Map', () => {
    const { map } = grow(MAX_DEPTH);
    expect(map).toBeInstanceOf(GrownMap);
    expect((map as GrownMap<string, number>).depth).toBe(MAX_DEPTH);
    const folded = GrownMap.with(map, 'one more', 0);
    expect(folded).toBeInstanceOf(Map);
    expect(folded.size).toBe(MAX_DEPTH + 2);
    expect([...folded.keys()].at(-1)).toBe('one more');
  });

  it('replaces a key it already has in its place, leaving the source untouched', () => {
    const { map } = grow(3);
    const changed = GrownMap.with(map, 'k1', 100);
    expect([...changed]).toEqual([
      ['base', -1],
      ['k0', 0],
      ['k1', 100],
      ['k2', 2],
    ]);
    expect(map.get('k1')).toBe(1);
  });

  it('tells what was added since a map it was grown from, and nothing for one it was not', () => {
    const { map: before } = grow(3);
    let after = before;
    for (const key of ['x', 'y']) after = GrownMap.with(after, key, key.length);
    expect(GrownMap.addedSince(after, before)).toEqual([
      ['x', 1],
      ['y', 1],
    ]);
    expect(GrownMap.addedSince(before, before)).toEqual([]);
    // Not grown from it: another map, a changed key (a copy), additions folded into a Map.
    expect(GrownMap.addedSince(after, new Map(before))).toBeUndefined();
    expect(GrownMap.addedSince(GrownMap.with(before, 'k1', 9), before)).toBeUndefined();
    expect(GrownMap.addedSince(grow(MAX_DEPTH + 1, before).map, before)).toBeUndefined();
  });
});
