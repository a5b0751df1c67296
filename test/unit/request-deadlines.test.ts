import { afterEach, describe, expect, it, vi } from 'vitest';
import { RequestDeadlines } from '../../src/adapters/request-deadlines.js';

describe('request deadlines', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gives up exactly the requests whose limit has passed, oldest first', () => {
    let now = 0;
    const deadlines = new RequestDeadlines(1000, () => now);
    const given: string[] = [];
    const a = () => given.push('a');
    const b = () => given.push('b');
    const c = () => given.push('c');
    deadlines.add(a);
    now = 300;
    deadlines.add(b);
    now = 600;
    deadlines.add(c);
    deadlines.done(b); // answered in time
    now = 999;
    deadlines.check();
    expect(given).toEqual([]);
    now = 1000;
    deadlines.check();
    expect(given).toEqual(['a']);
    now = 5000;
    deadlines.check();
    expect(given).toEqual(['a', 'c']);
    expect(deadlines.size).toBe(0);
  });

  it('checks on its own while requests wait, and stops when none do', () => {
    vi.useFakeTimers();
    const deadlines = new RequestDeadlines(400);
    const giveUp = vi.fn();
    deadlines.add(giveUp);
    vi.advanceTimersByTime(399);
    expect(giveUp).not.toHaveBeenCalled();
    vi.advanceTimersByTime(200); // checked every 100 ms: given up within one check of the limit
    expect(giveUp).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
    const answered = vi.fn();
    deadlines.add(answered);
    deadlines.done(answered);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(answered).not.toHaveBeenCalled();
  });
});
