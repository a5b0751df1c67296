/**
 * Which names the kernel holds go stale when a directory's metadata
 * document changes: the entries that differ, whether the document only
 * grew (read from what it added) or was rewritten.
 */
import { describe, expect, it } from 'vitest';
import { type CacheView, docChanges, staleFor } from '../../../src/adapters/zkfs/kernel-stale.js';
import type { ZkStat } from '../../../src/adapters/zookeeper.js';
import { encodeMeta, parseMeta, withEntry } from '../../../src/core/zkfs/attrs.js';
import { GrownMap } from '../../../src/core/zkfs/grown-map.js';

const view: CacheView = {
  root: '/mnt',
  linksPath: '/mnt/__symlinks__',
  stat: () => undefined,
  meta: () => undefined,
  links: () => undefined,
};

describe('docChanges', () => {
  it('names only the entries a grown document added, as fresh names', () => {
    let meta = parseMeta(undefined);
    for (let i = 0; i < 40; i++) meta = withEntry(meta, `f${i}`, { t: 'f' });
    const before = parseMeta(encodeMeta(meta));
    const grown = withEntry(withEntry(before, 'g1', { t: 'f' }), 'g2', { t: 'd', m: 0o755 });
    const after = parseMeta(encodeMeta(grown), before);
    // Read as grown: the old entries are not compared again.
    expect(GrownMap.addedSince(after.entries, before.entries)).toHaveLength(2);
    expect(docChanges(view, '/mnt/d', before, after)).toEqual([
      { path: '/d/g1', entry: true, fresh: true },
      { path: '/d/g2', entry: true, fresh: true },
    ]);
  });

  it('compares a rewritten document entry by entry: changed, removed and added names', () => {
    let meta = parseMeta(undefined);
    for (const name of ['a', 'b', 'c']) meta = withEntry(meta, name, { t: 'f' });
    const before = parseMeta(encodeMeta(meta));
    const rewritten = withEntry(
      withEntry(withEntry(before, 'a', { t: 'f', m: 0o600 }), 'b', undefined),
      'n',
      {
        t: 'f',
      },
    );
    const after = parseMeta(encodeMeta(rewritten), before);
    expect(docChanges(view, '/mnt', before, after)).toEqual([
      // A new mode: the node's attributes go, its name stays (a directory's would take every name below).
      { path: '/a', entry: false, fresh: false },
      { path: '/b', entry: true, fresh: false },
      { path: '/n', entry: true, fresh: true },
    ]);
  });

  it("leaves alone the names whose marks another host's create dropped because they hold data", () => {
    // Another host fills a directory: each create drops the mark of the file before it.
    const stats: Record<string, { dataLength: number; numChildren: number }> = {
      '/mnt/full': { dataLength: 5, numChildren: 0 },
      '/mnt/empty': { dataLength: 0, numChildren: 0 },
    };
    const seen: CacheView = { ...view, stat: (znode) => stats[znode] as ZkStat | undefined };
    let meta = parseMeta(undefined);
    for (const name of ['full', 'empty', 'unknown']) meta = withEntry(meta, name, { t: 'f' });
    const before = parseMeta(encodeMeta(meta));
    let rewritten = before;
    for (const name of ['full', 'empty', 'unknown']) rewritten = withEntry(rewritten, name, undefined);
    const after = parseMeta(encodeMeta(withEntry(rewritten, 'next', { t: 'f' })), before);
    // The empty one would turn into a directory, and one memory holds nothing of may be anything.
    expect(docChanges(seen, '/mnt', before, after).map((s) => s.path)).toEqual([
      '/empty',
      '/unknown',
      '/next',
    ]);
  });
});

describe('staleFor', () => {
  // A directory made by zkCli: no stored type, so only its children say it is one.
  const withChildren = (counts: Record<string, number>): CacheView => ({
    ...view,
    stat: (znode) =>
      znode in counts ? ({ numChildren: counts[znode], dataLength: 0 } as ZkStat) : undefined,
  });

  it("keeps a directory's name, and so every name below it, when a child is added to one that had a child", () => {
    const one = withChildren({ '/mnt/d': 1 });
    expect(staleFor(one, { type: 'created', path: '/mnt/d/b' })).toEqual([
      { path: '/d/b', entry: true, fresh: true },
    ]);
    // Its data changed: it has a child still, so it stays a directory.
    expect(staleFor(one, { type: 'dataChanged', path: '/mnt/d' })).toEqual([
      { path: '/d', entry: false, fresh: true },
      { path: '/d/_zoo_data_', entry: true },
    ]);
  });

  it('drops the name of a node that may have changed type: its first child came or its last went', () => {
    expect(staleFor(withChildren({ '/mnt/f': 0 }), { type: 'created', path: '/mnt/f/c' })).toContainEqual({
      path: '/f',
      entry: true,
    });
    expect(staleFor(withChildren({ '/mnt/d': 1 }), { type: 'deleted', path: '/mnt/d/c' })).toContainEqual({
      path: '/d',
      entry: true,
    });
    expect(staleFor(withChildren({ '/mnt/d': 2 }), { type: 'deleted', path: '/mnt/d/c' })).toEqual([
      { path: '/d/c', entry: true, fresh: false },
    ]);
  });
});
