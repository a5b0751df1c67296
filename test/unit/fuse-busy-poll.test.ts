/**
 * The daemon's polling for the next request: after an answer the event
 * loop stays awake for the window, and then sleeps again, so an idle mount
 * costs no CPU. Measured with the loop's own utilization (the share of time
 * it spent running rather than waiting in epoll).
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { busyPoller } from '../../src/adapters/fuse/busy-poll.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function utilization(ms: number): Promise<number> {
  const start = performance.eventLoopUtilization();
  await sleep(ms);
  return performance.eventLoopUtilization(start).utilization;
}

describe('busyPoller', () => {
  it('keeps the loop from sleeping for the window after an answer, then lets it sleep', async () => {
    const answered = busyPoller(60_000);
    answered();
    expect(await utilization(30)).toBeGreaterThan(0.8);
    await sleep(100);
    expect(await utilization(100)).toBeLessThan(0.5);
  });

  it('extends the window with each answer', async () => {
    const answered = busyPoller(40_000);
    answered();
    await sleep(30);
    answered();
    // 30 ms past the first answer's window, still inside the second's.
    const busy = performance.eventLoopUtilization();
    await sleep(40);
    expect(performance.eventLoopUtilization(busy).utilization).toBeGreaterThan(0.8);
    await sleep(100);
    expect(await utilization(100)).toBeLessThan(0.5);
  });

  it('does nothing with a window of 0', async () => {
    const answered = busyPoller(0);
    answered();
    expect(await utilization(30)).toBeLessThan(0.5);
  });
});
