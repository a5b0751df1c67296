import { describe, expect, it } from 'vitest';
import { Prefetcher } from '../../../src/adapters/zkfs/prefetch.js';

/** A target whose loads stay in flight until released, recording each request. */
function fakeTarget() {
  const known = new Set<string>();
  const requests: string[][] = [];
  const pending: (() => void)[] = [];
  return {
    known,
    requests,
    finishAll() {
      for (const done of pending.splice(0)) done();
    },
    target: {
      active: () => true,
      has: (znode: string) => known.has(znode),
      load: (znodes: string[]) => {
        requests.push(znodes);
        for (const z of znodes) known.add(z);
        return new Promise<void>((resolve) => pending.push(resolve));
      },
    },
  };
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `/d/n${i}`);

describe('Prefetcher', () => {
  it('keeps at most its window of requests in flight, a batch each', () => {
    const t = fakeTarget();
    const p = new Prefetcher(t.target, 2, () => 4);
    p.add(names(20));
    expect(t.requests).toEqual([names(4), names(8).slice(4)]);
  });

  it('loads an expedited node at once, with the nodes queued after it, beyond the window', async () => {
    const t = fakeTarget();
    const p = new Prefetcher(t.target, 2, () => 4);
    p.add(names(20));
    expect(p.expedite('/d/n10')).toBe(true);
    expect(t.requests[2]).toEqual(['/d/n10', '/d/n11', '/d/n12', '/d/n13']);
    // In flight now: asking again, or for the next ones, starts nothing more.
    expect(p.expedite('/d/n11')).toBe(false);
    expect(t.requests).toHaveLength(3);
    // A listing asking for every entry in turn makes one request per batch, not one per entry.
    for (const z of names(20)) if (!t.known.has(z)) p.expedite(z);
    expect(t.requests.map((r) => r.length)).toEqual([4, 4, 4, 4, 4]);
    // The queue's own turn skips what was expedited.
    t.finishAll();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(t.requests).toHaveLength(5);
    expect(new Set(t.requests.flat()).size).toBe(20);
  });

  it('leaves a node it does not hold to the caller', () => {
    const t = fakeTarget();
    const p = new Prefetcher(t.target, 1, () => 4);
    p.add(names(4));
    expect(p.expedite('/elsewhere')).toBe(false);
    expect(p.expedite('/d/n0')).toBe(false); // already in flight with the first batch
    expect(t.requests).toHaveLength(1);
  });
});
