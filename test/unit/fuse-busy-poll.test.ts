/**
 * The daemon's polling for the next request: after an answer the event
 * loop stays awake for the window, then sleeps again, so an idle mount
 * costs no CPU; a request still waiting for its answer (for ZooKeeper) lets
 * it sleep; and polling stops while it keeps missing. Measured with the
 * loop's own utilization (the share of time it ran rather than waited in
 * epoll).
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { type BusyPoller, busyPoller } from '../../src/adapters/fuse/busy-poll.js';
import { DEFAULT_TRIAL } from '../../src/core/fuse/poll-trial.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Request `id` arrives and is answered at once, as a cached one is. */
function serve(poller: BusyPoller, id: number): void {
  poller.arrived(id);
  poller.answered(id);
}

async function utilization(ms: number): Promise<number> {
  const start = performance.eventLoopUtilization();
  await sleep(ms);
  return performance.eventLoopUtilization(start).utilization;
}

describe('busyPoller', () => {
  it('keeps the loop from sleeping for the window after an answer, then lets it sleep', async () => {
    const poller = busyPoller(60_000);
    serve(poller, 1);
    expect(await utilization(30)).toBeGreaterThan(0.8);
    await sleep(100);
    expect(await utilization(100)).toBeLessThan(0.5);
  });

  it('opens the window again with each answer', async () => {
    const poller = busyPoller(40_000);
    serve(poller, 1);
    await sleep(30);
    serve(poller, 2);
    // Past the first answer's window, inside the second's.
    const busy = performance.eventLoopUtilization();
    await sleep(40);
    expect(performance.eventLoopUtilization(busy).utilization).toBeGreaterThan(0.8);
    await sleep(100);
    expect(await utilization(100)).toBeLessThan(0.5);
  });

  it('sleeps while a request that arrived is not answered yet', async () => {
    const poller = busyPoller(60_000);
    serve(poller, 1);
    poller.arrived(2);
    await sleep(5);
    expect(await utilization(40)).toBeLessThan(0.5);
  });

  it('does not poll after an answer while another request still waits for its own', async () => {
    const poller = busyPoller(60_000);
    poller.arrived(1);
    serve(poller, 2);
    expect(await utilization(40)).toBeLessThan(0.5);
    poller.answered(1);
    expect(await utilization(30)).toBeGreaterThan(0.8);
  });

  it('stops polling after answers that no request followed within the window, and starts again on hits', async () => {
    const poller = busyPoller(20_000);
    let id = 0;
    poller.arrived(++id);
    for (let i = 0; i < 6; i++) {
      poller.answered(id);
      await sleep(40);
      poller.arrived(++id);
    }
    poller.answered(id);
    expect(await utilization(15)).toBeLessThan(0.5);
    await sleep(10);
    poller.arrived(++id);
    // Answers followed at once by a request bring the recent hit rate back over half.
    for (let i = 0; i < 2; i++) {
      poller.answered(id);
      poller.arrived(++id);
    }
    poller.answered(id);
    expect(await utilization(15)).toBeGreaterThan(0.8);
    expect(poller.counters).toMatchObject({ windowUs: 20_000, windows: 7, hits: 2, misses: 7 });
  });

  it('stops polling where it made the cycle from one request to the next longer than sleeping did', async () => {
    // Cycles timed by a clock of the test's own: sleeping 3 ms on a loaded machine took more than
    // the 5 ms past which a cycle is not counted, and the trial never ended.
    let clockMs = 1000;
    const trial = { block: 2, blocks: 2, hold: 1000, maxHold: 1000 };
    const poller = busyPoller(
      60_000,
      trial,
      () => {},
      () => clockMs,
    );
    let id = 0;
    poller.arrived(++id);
    // Two cycles with polling allowed come slow, two without at once (tens of microseconds).
    for (const wait of [3, 3, 0.05, 0.05]) {
      poller.answered(id);
      clockMs += wait;
      poller.arrived(++id);
    }
    expect(poller.counters).toMatchObject({ trials: 1, won: 0, pays: false });
    poller.answered(id);
    expect(await utilization(30)).toBeLessThan(0.5);
  });

  it('does nothing with a window of 0', async () => {
    const published: number[] = [];
    const poller = busyPoller(0, DEFAULT_TRIAL, (us) => published.push(us));
    serve(poller, 1);
    poller.nativeCycle(0.01, true);
    expect(await utilization(30)).toBeLessThan(0.5);
    expect(published).toEqual([]);
  });
});

describe('busyPoller and the native reader', () => {
  /** A poller whose every published window is kept, last one last. */
  function publishing(trial = DEFAULT_TRIAL) {
    const published: number[] = [];
    const poller = busyPoller(100, trial, (us) => published.push(us));
    return { poller, last: () => published.at(-1) };
  }

  it('lets it poll after its own answers only while no request waits for an answer here', () => {
    const { poller, last } = publishing();
    serve(poller, 1);
    expect(last()).toBe(100);
    // A request waiting for ZooKeeper: polling would take CPU from the server.
    poller.arrived(2);
    expect(last()).toBe(0);
    poller.arrived(3);
    poller.answered(3);
    expect(last()).toBe(0);
    poller.answered(2);
    expect(last()).toBe(100);
  });

  it('counts its cycles in the trials, and stops it polling where polling made them longer', () => {
    const { poller, last } = publishing({ block: 2, blocks: 2, hold: 1000, maxHold: 1000 });
    serve(poller, 1);
    // Two cycles with polling, then (the trial turns polling off) two without, faster.
    poller.nativeCycle(0.03, true);
    poller.nativeCycle(0.03, true);
    expect(last()).toBe(0);
    poller.nativeCycle(0.01, false);
    poller.nativeCycle(0.01, false);
    expect(poller.counters).toMatchObject({ trials: 1, won: 0, pays: false });
    expect(last()).toBe(0);
    serve(poller, 2);
    expect(last()).toBe(0);
  });

  it('keeps it polling where polling made its cycles shorter', () => {
    const { poller, last } = publishing({ block: 2, blocks: 2, hold: 1000, maxHold: 1000 });
    serve(poller, 1);
    poller.nativeCycle(0.01, true);
    poller.nativeCycle(0.01, true);
    poller.nativeCycle(0.03, false);
    poller.nativeCycle(0.03, false);
    expect(poller.counters).toMatchObject({ trials: 1, won: 1, pays: true });
    expect(last()).toBe(100);
  });

  it('ignores cycles measured on the other side of the trial than the current one', () => {
    const { poller } = publishing({ block: 2, blocks: 2, hold: 1000, maxHold: 1000 });
    serve(poller, 1);
    // Polling is allowed now: cycles measured without a window are from before, or waited for ZooKeeper.
    for (let i = 0; i < 10; i++) poller.nativeCycle(0.01, false);
    expect(poller.counters.trials).toBe(0);
  });
});
