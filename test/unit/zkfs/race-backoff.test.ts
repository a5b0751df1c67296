import { describe, expect, it } from 'vitest';
import { RACE_BUDGET_MS, raceWaitMs } from '../../../src/core/zkfs/race-backoff.js';

describe('waiting between attempts after a lost race', () => {
  it('waits a random share of a limit that doubles from 2 ms and stops at 50 ms', () => {
    const longest = (attempt: number) => raceWaitMs(attempt, () => 1);
    expect([0, 1, 2, 3, 4, 5, 6, 20].map(longest)).toEqual([2, 4, 8, 16, 32, 50, 50, 50]);
    expect(raceWaitMs(3, () => 0.25)).toBe(4);
    expect(raceWaitMs(3, () => 0)).toBe(0);
  });

  it('keeps trying for half a minute, hundreds of attempts at the longest wait', () => {
    expect(RACE_BUDGET_MS).toBe(30_000);
    expect(RACE_BUDGET_MS / raceWaitMs(100, () => 1)).toBeGreaterThanOrEqual(600);
  });
});
