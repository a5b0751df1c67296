/**
 * The trials that decide whether polling for the next request pays: blocks
 * of cycles with polling allowed and not, alternating, then a long stretch
 * going by the running average of recent trials.
 */
import { describe, expect, it } from 'vitest';
import { MAX_CYCLE_MS, type PollTrial, pollTrial } from '../../src/core/fuse/poll-trial.js';

const small = { block: 4, blocks: 4, hold: 10, maxHold: 10 };

/** Feeds `n` cycles, each `polled` ms long while polling is allowed and `slept` ms while not. */
function run(trial: PollTrial, n: number, polled: number, slept: number): boolean[] {
  const seen: boolean[] = [];
  for (let i = 0; i < n; i++) {
    seen.push(trial.allowed);
    trial.cycle(trial.allowed ? polled : slept);
  }
  return seen;
}

/** The verdicts after each of `n` trials (16 cycles) and the stretches after them (10), all alike. */
function verdicts(trial: PollTrial, n: number, polled: number, slept: number): boolean[] {
  const seen: boolean[] = [];
  for (let i = 0; i < n; i++) {
    run(trial, 16, polled, slept);
    seen.push(trial.allowed);
    run(trial, 10, polled, slept);
  }
  return seen;
}

describe('pollTrial', () => {
  it('alternates blocks, then keeps polling only where it gave shorter cycles', () => {
    const trial = pollTrial(small);
    const tried = run(trial, 16, 0.05, 0.08);
    expect(tried).toEqual([
      ...Array(4).fill(true),
      ...Array(4).fill(false),
      ...Array(4).fill(false),
      ...Array(4).fill(true),
    ]);
    expect(trial).toMatchObject({ allowed: true, trials: 1, won: 1 });

    const lost = pollTrial(small);
    run(lost, 16, 0.08, 0.05);
    expect(lost).toMatchObject({ allowed: false, trials: 1, won: 0 });
  });

  it('holds the verdict for its stretch, then tries again, and follows a lasting change within a few trials', () => {
    const trial = pollTrial(small);
    run(trial, 16, 0.08, 0.05);
    expect(run(trial, 10, 0.05, 0.08)).toEqual(Array(10).fill(false));
    // From now on polling is faster: the next trials start polling, and the second win turns it on.
    expect(verdicts(trial, 3, 0.05, 0.08)).toEqual([false, true, true]);
    expect(trial).toMatchObject({ trials: 4, won: 3 });
  });

  it('turns polling on after one trial only where it was clearly faster, after a few where it was a little', () => {
    const clear = pollTrial(small);
    run(clear, 16, 0.06, 0.08);
    expect(clear).toMatchObject({ allowed: true, trials: 1, won: 1 });
    expect(verdicts(pollTrial(small), 3, 0.072, 0.08)).toEqual([false, false, true]);
  });

  it('is not swayed by one trial against the others', () => {
    const trial = pollTrial(small);
    for (let i = 0; i < 4; i++) run(trial, 26, 0.08, 0.05);
    run(trial, 16, 0.04, 0.08);
    expect(trial).toMatchObject({ allowed: false, trials: 5, won: 1 });
  });

  it('tries less often while trials agree, and as often as at first once the verdict changes', () => {
    const trial = pollTrial({ ...small, maxHold: 40 });
    // Polling is slower for the first four trials, then much faster.
    const decidedAt: number[] = [];
    for (let i = 0; decidedAt.length < 7; i++) {
      const faster = decidedAt.length >= 4;
      trial.cycle(trial.allowed === faster ? 0.02 : 0.08);
      if (trial.trials > decidedAt.length) decidedAt.push(i);
    }
    const gaps = decidedAt.slice(1).map((at, k) => at - decidedAt[k]!);
    // Each gap is the stretch held, then a trial of 16 cycles: 10, 20, 40 (the most) while polling
    // loses; the first win does not outweigh four losses, the second changes the verdict, and the
    // stretch after it is back to 10.
    expect(gaps).toEqual([26, 36, 56, 56, 56, 26]);
    expect(trial.pays).toBe(true);
  });

  it('does not count idle time or waits for ZooKeeper as cycles', () => {
    const trial = pollTrial(small);
    for (let i = 0; i < 100; i++) trial.cycle(MAX_CYCLE_MS + 1);
    trial.cycle(Number.NaN);
    trial.cycle(-1);
    expect(trial).toMatchObject({ allowed: true, trials: 0 });
  });

  it('is not decided by a slow start that falls mostly in polled blocks', () => {
    // As measured on a new mount's cold walk: its first 192 cycles (blocks 0 to 2, two of them
    // polled) took about 1 ms, the rest a few hundredths; polling is twice as fast throughout.
    const trial = pollTrial({ block: 64, blocks: 8, hold: 1000, maxHold: 1000 });
    for (let i = 0; i < 512; i++) {
      const base = i < 192 ? 1 : 0.02;
      trial.cycle(trial.allowed ? base / 2 : base);
    }
    expect(trial).toMatchObject({ allowed: true, trials: 1, won: 1 });
  });

  it('weighs a steady drift alike on both sides', () => {
    // Each cycle a little longer than the last (a walk slowing down); polling 10% faster throughout.
    const trial = pollTrial({ block: 64, blocks: 8, hold: 1000, maxHold: 1000 });
    for (let i = 0; i < 512; i++) {
      const base = 0.01 + i * 0.0002;
      trial.cycle(trial.allowed ? base * 0.9 : base);
    }
    expect(trial).toMatchObject({ trials: 1, won: 1 });
  });

  it('judges each side over the same spells of a changing workload', () => {
    // The walk's cycles double halfway through the trial; polling is 30% faster throughout.
    const trial = pollTrial({ block: 32, blocks: 8, hold: 1000, maxHold: 1000 });
    for (let i = 0; i < 256; i++) {
      const base = i < 128 ? 0.05 : 0.1;
      trial.cycle(trial.allowed ? base * 0.7 : base);
    }
    expect(trial).toMatchObject({ allowed: true, trials: 1, won: 1 });
  });
});
