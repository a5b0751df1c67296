import { describe, expect, it } from 'vitest';
import { ChildWatches } from '../../../src/adapters/zkfs/child-watches.js';

/** Hooks whose adds stay in flight until settled, recording each request and each armed directory. */
function fakeHooks() {
  const state = { live: true, epoch: 1 };
  const adds: { dir: string; settle: (ok: boolean) => void }[] = [];
  const armed: string[] = [];
  const hooks = {
    add: (dir: string) =>
      new Promise<void>((resolve, reject) => {
        adds.push({ dir, settle: (ok) => (ok ? resolve() : reject(new Error('CONNECTION_LOSS'))) });
      }),
    live: () => state.live,
    epoch: () => state.epoch,
    armed: (dir: string) => armed.push(dir),
  };
  return { state, adds, armed, hooks };
}

const settled = () => new Promise((r) => setImmediate(r));

describe('ChildWatches', () => {
  it('watches a directory once, and says when the watch is in place so its listing is read again', async () => {
    const f = fakeHooks();
    const watches = new ChildWatches(f.hooks);
    watches.refused('/a', 's1');
    watches.refused('/a', 's2');
    expect(f.adds.map((a) => a.dir)).toEqual(['/a']);
    expect(watches.size).toBe(1);
    f.adds[0]!.settle(true);
    await settled();
    expect(f.armed).toEqual(['/a']);
    expect(watches.size).toBe(1);
  });

  it('knows the names refused in a directory until a listing no longer holds them', () => {
    const watches = new ChildWatches(fakeHooks().hooks);
    watches.refused('/a', 's1');
    watches.refused('/a', 's2');
    expect(watches.unreadable('/a')).toEqual(['s1', 's2']);
    watches.listed('/a', ['open', 's2']);
    expect(watches.unreadable('/a')).toEqual(['s2']);
    expect(watches.unreadable('/b')).toEqual([]);
    // The directory stays watched: a new such node there is reported too.
    expect(watches.size).toBe(1);
  });

  it('waits for the recursive watch before adding, and adds every watch again on a new connection', () => {
    const f = fakeHooks();
    f.state.live = false;
    const watches = new ChildWatches(f.hooks);
    watches.refused('/a', 's');
    watches.refused('/b', 's');
    expect(f.adds).toEqual([]);
    f.state.live = true;
    watches.rearm();
    expect(f.adds.map((a) => a.dir)).toEqual(['/a', '/b']);
  });

  it('ignores a watch added on a connection since lost, and a refused add', async () => {
    const f = fakeHooks();
    const watches = new ChildWatches(f.hooks);
    watches.refused('/a', 's');
    watches.refused('/b', 's');
    f.state.epoch++;
    f.adds[0]!.settle(true);
    f.adds[1]!.settle(false);
    await settled();
    expect(f.armed).toEqual([]);
    // Still wanted: the next connection adds both again.
    watches.rearm();
    expect(f.adds.map((a) => a.dir)).toEqual(['/a', '/b', '/a', '/b']);
  });
});
