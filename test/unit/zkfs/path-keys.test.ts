import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/adapters/logger.js';
import { PathKeyTable } from '../../../src/adapters/zkfs/path-keys.js';
import { ZkTree } from '../../../src/adapters/zkfs/tree.js';
import type { ZkApi, ZkStat } from '../../../src/adapters/zookeeper.js';
import { emptyMeta } from '../../../src/core/zkfs/attrs.js';

describe('PathKeyTable', () => {
  it("derives a path's name, znode and metadata directory once, under any root", () => {
    const table = new PathKeyTable('/app');
    const keys = table.of('/a/b');
    expect(keys).toMatchObject({ name: 'b', hidden: false, znode: '/app/a/b', dir: '/app/a' });
    expect(table.of('/a/b')).toBe(keys);
    expect(new PathKeyTable('/').of('/top')).toMatchObject({ name: 'top', znode: '/top', dir: '/' });
  });

  it('knows the names the mount hides: metadata anywhere, the symlink table at the top only', () => {
    const table = new PathKeyTable('/app');
    expect(table.of('/__zkfs__').hidden).toBe(true);
    expect(table.of('/a/__zkfs__').hidden).toBe(true);
    expect(table.of('/__symlinks__').hidden).toBe(true);
    expect(table.of('/a/__symlinks__').hidden).toBe(false);
  });

  it('stays right when it empties itself after many paths', () => {
    const table = new PathKeyTable('/r');
    const first = table.of('/d/f');
    for (let i = 0; i < 70_000; i++) table.of(`/d/f${i}`);
    const again = table.of('/d/f');
    expect(again).not.toBe(first);
    expect(again).toMatchObject({ name: 'f', znode: '/r/d/f', dir: '/r/d' });
  });
});

describe('ZkTree.cachedNode', () => {
  it("answers from the slots through a path's keys, and not once an entry is forgotten", () => {
    const tree = new ZkTree({} as ZkApi, '/r', () => true, silentLogger);
    // The slots hold keys built elsewhere: equal strings, other objects (what cachedNode() swaps in).
    tree.stats.put(['/r/d', 'f'].join('/'), { version: 3 } as ZkStat);
    tree.metas.put(['/r', 'd'].join('/'), { path: '/r/d/__zkfs__', version: 0, value: emptyMeta() });
    tree.links.put(tree.linksPath, { path: tree.linksPath, version: undefined, value: new Map() });
    const keys = new PathKeyTable('/r').of('/d/f');
    expect(tree.cachedNode(keys)?.stat?.version).toBe(3);
    expect(tree.cachedNode(keys)?.stat?.version).toBe(3);
    expect(keys).toMatchObject({ znode: '/r/d/f', dir: '/r/d' });
    tree.stats.invalidate('/r/d/f');
    expect(tree.cachedNode(keys)).toBeUndefined();
  });
});
