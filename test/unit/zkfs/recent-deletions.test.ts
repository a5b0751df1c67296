import { describe, expect, it } from 'vitest';
import { RecentDeletions } from '../../../src/core/zkfs/recent-deletions.js';

describe('names another client deleted moments ago', () => {
  it('holds a name for the window after its deletion, until it is created again', () => {
    const recent = new RecentDeletions(1000);
    recent.deleted('/a/f', 5000);
    expect(recent.within('/a/f', 5000)).toBe(true);
    expect(recent.within('/a/f', 5999)).toBe(true);
    expect(recent.within('/a/g', 5000)).toBe(false);
    recent.created('/a/f');
    expect(recent.within('/a/f', 5001)).toBe(false);
    recent.deleted('/a/f', 6000);
    expect(recent.within('/a/f', 7000)).toBe(false);
    // Past its window a name is forgotten when asked about.
    expect(recent.size).toBe(0);
  });

  it('tells a name deleted and made again (replaced) for the rest of the window', () => {
    const recent = new RecentDeletions(1000);
    recent.deleted('/a/f', 5000);
    expect(recent.remade('/a/f', 5000)).toBe(false);
    recent.created('/a/f');
    expect(recent.remade('/a/f', 5500)).toBe(true);
    expect(recent.remade('/a/g', 5500)).toBe(false);
    // A name made without a deletion first is just new.
    recent.created('/a/g');
    expect(recent.remade('/a/g', 5500)).toBe(false);
    // Deleted again, it is a name to ask about until made again.
    recent.deleted('/a/f', 5600);
    expect([recent.within('/a/f', 5600), recent.remade('/a/f', 5600)]).toEqual([true, false]);
    recent.created('/a/f');
    expect(recent.remade('/a/f', 6599)).toBe(true);
    expect(recent.remade('/a/f', 6600)).toBe(false);
    expect(recent.size).toBe(0);
  });

  it('empties once deletions stop, whatever name is asked about', () => {
    const recent = new RecentDeletions(1000);
    recent.deleted('/a', 0);
    recent.deleted('/b', 500);
    expect(recent.within('/other', 999)).toBe(false);
    expect(recent.size).toBe(2);
    expect(recent.within('/other', 1200)).toBe(false);
    expect(recent.size).toBe(1);
    expect(recent.within('/other', 1500)).toBe(false);
    expect(recent.size).toBe(0);
  });

  it('keeps at most its limit, forgetting names past the window and then the oldest', () => {
    const recent = new RecentDeletions(1000, 3);
    recent.deleted('/old', 0);
    recent.deleted('/a', 1500);
    recent.deleted('/b', 1600);
    recent.deleted('/c', 1700);
    expect(recent.size).toBe(3);
    expect(recent.within('/old', 1700)).toBe(false);
    recent.deleted('/d', 1800);
    expect(recent.size).toBe(3);
    expect(['/a', '/b', '/c', '/d'].map((p) => recent.within(p, 1900))).toEqual([false, true, true, true]);
    // A name deleted again moves to the young end.
    recent.deleted('/b', 1950);
    recent.deleted('/e', 1960);
    expect(['/b', '/c', '/d', '/e'].map((p) => recent.within(p, 1970))).toEqual([true, false, true, true]);
  });
});
