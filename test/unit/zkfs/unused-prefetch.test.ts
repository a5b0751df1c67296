import { describe, expect, it } from 'vitest';
import { UnusedPrefetch } from '../../../src/core/zkfs/unused-prefetch.js';

describe('data read ahead and not used yet', () => {
  it('counts a node from when it is read ahead until it is used, once each way', () => {
    const unused = new UnusedPrefetch<object>();
    const a = {};
    const b = {};
    unused.add(a, 300);
    unused.add(a, 300);
    unused.add(b, 200);
    expect(unused.bytes).toBe(500);
    unused.use(a);
    unused.use(a);
    expect(unused.bytes).toBe(200);
  });

  it('ignores the use of a node that was not read ahead', () => {
    const unused = new UnusedPrefetch<object>();
    unused.add({}, 100);
    unused.use({});
    expect(unused.bytes).toBe(100);
  });

  it('starts again from nothing after a reset, forgetting what was counted before', () => {
    const unused = new UnusedPrefetch<object>();
    const a = {};
    unused.add(a, 100);
    unused.reset();
    expect(unused.bytes).toBe(0);
    unused.use(a);
    expect(unused.bytes).toBe(0);
  });
});
