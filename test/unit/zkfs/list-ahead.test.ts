import { describe, expect, it } from 'vitest';
import { LIST_AHEAD_MAX, ListAheadWindow } from '../../../src/core/zkfs/list-ahead.js';

describe('ListAheadWindow', () => {
  it('lists one directory ahead of a listing it did not see coming', () => {
    const w = new ListAheadWindow();
    expect(w.listed('/a')).toBe(1);
    expect(w.listed('/a')).toBe(1);
  });

  it('doubles while the walk lists what was listed ahead, up to the limit', () => {
    const w = new ListAheadWindow();
    let window = w.listed('/d0');
    const seen: number[] = [window];
    for (let d = 1; d <= 6; d++) {
      w.listedAhead(`/d${d}`, window);
      window = w.listed(`/d${d}`);
      seen.push(window);
    }
    expect(seen).toEqual([1, 2, 4, 8, 8, 8, 8]);
    expect(LIST_AHEAD_MAX).toBe(8);
  });

  it('starts again at one when the program lists a directory nobody listed ahead', () => {
    const w = new ListAheadWindow();
    w.listedAhead('/b', 4);
    expect(w.listed('/b')).toBe(8);
    expect(w.listed('/elsewhere')).toBe(1);
    // Listed again: no longer a sign of a walk.
    expect(w.listed('/b')).toBe(1);
  });

  it('forgets abandoned walks instead of growing without bound', () => {
    const w = new ListAheadWindow();
    w.listedAhead('/old', 2);
    for (let i = 0; i < 300; i++) w.listedAhead(`/x${i}`, 1);
    expect(w.listed('/old')).toBe(1);
    expect(w.listed('/x299')).toBe(2);
  });
});
