import { describe, expect, it } from 'vitest';
import { daemonNodeOptions, daemonV8PoolSize } from '../../../src/adapters/zkfs/daemon.js';

describe("the daemon's V8 thread pool", () => {
  it('is one thread per four CPUs, at least one and at most four', () => {
    expect([1, 2, 4, 7, 8, 12, 16, 64].map(daemonV8PoolSize)).toEqual([1, 1, 1, 1, 2, 3, 4, 4]);
  });

  it('is given to node as --v8-pool-size, with inlining off and a small young generation', () => {
    expect(daemonNodeOptions(2)).toEqual([
      '--v8-pool-size=1',
      '--no-turbo-inlining',
      '--max-semi-space-size=4',
    ]);
    expect(daemonNodeOptions(32)).toEqual([
      '--v8-pool-size=4',
      '--no-turbo-inlining',
      '--max-semi-space-size=4',
    ]);
  });
});
