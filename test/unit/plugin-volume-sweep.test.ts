import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/adapters/logger.js';
import { startVolumeSweep } from '../../src/plugin/volume-sweep.js';

describe('the sweep over the volumes in use', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function setup(mayBe: (name: string) => Promise<boolean>) {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const released: string[] = [];
    const checked: string[] = [];
    const unused: string[] = [];
    const turns: string[] = [];
    const store = {
      names: () => ['a', 'b', 'c'],
      reportDead: async (name: string) => {
        checked.push(name);
        if (name === 'a') throw new Error('cannot read its mount record');
        return false;
      },
      unmountUnused: async (name: string) => {
        unused.push(name);
        return false;
      },
      mayBeUnheld: mayBe,
      releaseUnheld: async (name: string) => {
        released.push(name);
        if (name === 'c') throw new Error('umount: target is busy');
        return true;
      },
    };
    const router = {
      exclusive: <T>(name: string, task: () => Promise<T>) => {
        turns.push(name);
        return task();
      },
    };
    return {
      lines,
      released,
      checked,
      unused,
      turns,
      start: (ms: number) =>
        startVolumeSweep({
          store,
          router,
          releaseUnheldMs: ms,
          log,
          readUse: async () => ({ namespaces: [], paths: [] }),
        }),
    };
  }

  it('looks every half of the timeout, in each volume’s turn, at every mount and at the volumes that may be unheld', async () => {
    const t = setup(async (name) => name !== 'a');
    const sweep = t.start(10_000);
    await vi.advanceTimersByTimeAsync(4_999);
    expect(t.checked).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.checked).toEqual(['a', 'b', 'c']);
    // In the same turn: a mount its last Unmount could not take down.
    expect(t.unused).toEqual(['b', 'c']);
    expect(t.turns).toEqual(['a', 'b', 'c', 'b', 'c']);
    expect(t.released).toEqual(['b', 'c']);
    // A volume that could not be looked at or released is logged; the others are not held up by it.
    expect(t.lines.join('\n')).toContain('volume a: could not check its mount: cannot read its mount record');
    expect(t.lines.join('\n')).toContain(
      'volume c: could not release its unheld references: umount: target is busy',
    );
    await sweep.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(t.released).toEqual(['b', 'c']);
  });

  it('survives a sweep that fails as a whole, and tries again at the next', async () => {
    let calls = 0;
    const t = setup(async () => {
      calls++;
      throw new Error('cannot read /proc/self/mountinfo');
    });
    const sweep = t.start(2_000);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(t.lines.join('\n')).toContain(
      'could not look at the volumes in use: cannot read /proc/self/mountinfo',
    );
    expect(calls).toBe(2);
    await sweep.stop();
  });

  it('only looks for dead mounts, every 30 s, when releasing is off', async () => {
    const t = setup(async () => true);
    const sweep = t.start(0);
    await vi.advanceTimersByTimeAsync(29_999);
    expect(t.checked).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.checked).toEqual(['a', 'b', 'c']);
    expect(t.released).toEqual([]);
    await sweep.stop();
  });
});
