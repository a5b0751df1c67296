/**
 * What the mount decides, once its watch is back, about the names the
 * kernel held when it went: which were deleted, which were deleted and
 * made again, and how many lookups it spends telling. The tree is a table
 * of names and creation numbers standing in for ZooKeeper; the integration
 * test (zkfs-deleted-open.test.ts) covers the same against a real server.
 */
import { describe, expect, it } from 'vitest';
import { GapDeletions } from '../../src/adapters/fuse/gap-deletions.js';
import { type Leaving, Orphans } from '../../src/adapters/fuse/orphans.js';
import { createLogger } from '../../src/adapters/logger.js';
import type { FileAttr, NodeIdentity } from '../../src/adapters/zkfs/vfs.js';
import { NodeTable } from '../../src/core/fuse/node-table.js';

/** Paths to [created, childrenChanged]; a directory's names are the paths one level below it. */
type Tree = Map<string, [bigint, bigint]>;

/** `forgotten`: paths whose stat memory no longer held when the watch went (evicted). */
function setup(before: Tree, forgotten: ReadonlySet<string> = new Set()) {
  const nodes = new NodeTable<FileAttr>();
  for (const path of before.keys()) if (path !== '/') nodes.lookup(path);
  let now: Tree = before;
  const lookups: string[] = [];
  const identity = (tree: Tree, path: string): NodeIdentity | undefined => {
    const found = tree.get(path);
    return found && { created: found[0], childrenChanged: found[1] };
  };
  const vfs = {
    async readdir(dir: string) {
      const prefix = dir === '/' ? '/' : `${dir}/`;
      return [...now.keys()]
        .filter((p) => p.startsWith(prefix) && p !== dir && !p.slice(prefix.length).includes('/'))
        .map((p) => p.slice(prefix.length));
    },
    cachedIdentity: (path: string) => (forgotten.has(path) ? undefined : identity(before, path)),
    async identity(path: string) {
      lookups.push(path);
      return identity(now, path) ?? null;
    },
    async identities(paths: readonly string[]) {
      return Promise.all(paths.map((path) => vfs.identity(path)));
    },
    lastSeen: () => undefined,
  };
  const orphans = new Orphans(nodes, vfs);
  const found: { path: string; madeAgain: boolean }[] = [];
  const gap = new GapDeletions(
    nodes,
    orphans,
    vfs,
    (leaving: Leaving, madeAgain) => {
      found.push({ path: leaving.path, madeAgain });
      orphans.gone(leaving);
    },
    createLogger({ level: 'error' }),
  );
  return {
    nodes,
    gap,
    found,
    lookups,
    after(tree: Tree) {
      now = tree;
    },
  };
}

const BEFORE: Tree = new Map([
  ['/', [1n, 4n]],
  ['/a', [2n, 2n]],
  ['/b', [3n, 3n]],
  ['/d', [4n, 6n]],
  ['/d/x', [5n, 5n]],
  ['/d/y', [6n, 6n]],
]);

describe('names deleted while the watch was down', () => {
  it('spends one lookup per directory when no child came or went in it', async () => {
    const t = setup(BEFORE);
    t.gap.watchLost();
    t.after(BEFORE);
    await t.gap.watchBack();
    expect(t.found).toEqual([]);
    expect(t.lookups.sort()).toEqual(['/', '/d']);
  });

  it('finds a name deleted, and one deleted and made again, and gives the name a new node', async () => {
    const t = setup(BEFORE);
    const oldX = t.nodes.idOf('/d/x');
    t.gap.watchLost();
    const after: Tree = new Map(BEFORE);
    after.delete('/a');
    after.set('/d/x', [9n, 9n]);
    after.set('/d', [4n, 9n]);
    after.set('/', [1n, 8n]);
    t.after(after);
    await t.gap.watchBack();
    expect(t.found.sort((p, q) => p.path.localeCompare(q.path))).toEqual([
      { path: '/a', madeAgain: false },
      { path: '/d/x', madeAgain: true },
    ]);
    expect(t.nodes.idOf('/d/x')).toBeUndefined();
    expect(t.nodes.lookup('/d/x')).not.toBe(oldX);
    expect(t.nodes.idOf('/d/y')).toBeDefined();
  });

  it('looks up only the names the kernel still holds', async () => {
    const t = setup(BEFORE);
    t.gap.watchLost();
    t.nodes.forget(t.nodes.idOf('/d/y') as number, 1);
    const after: Tree = new Map(BEFORE);
    after.set('/d/y', [9n, 9n]);
    after.set('/d', [4n, 9n]);
    t.after(after);
    await t.gap.watchBack();
    expect(t.found).toEqual([]);
    expect(t.lookups).not.toContain('/d/y');
    expect(t.lookups).toContain('/d/x');
  });

  it('tells a name made again from the one the kernel held when memory had let go of both it and its directory', async () => {
    const t = setup(BEFORE, new Set(['/d', '/d/x', '/d/y']));
    // The last transaction the session had seen when the watch went: 6.
    t.gap.watchLost(6n);
    const after: Tree = new Map(BEFORE);
    after.set('/d/x', [9n, 9n]);
    after.set('/d', [4n, 9n]);
    t.after(after);
    await t.gap.watchBack();
    expect(t.found).toEqual([{ path: '/d/x', madeAgain: true }]);
    expect(t.nodes.idOf('/d/y')).toBeDefined();
  });

  it('without that transaction, cannot tell a name memory had let go of', async () => {
    const t = setup(BEFORE, new Set(['/d/x']));
    t.gap.watchLost();
    const after: Tree = new Map(BEFORE);
    after.set('/d/x', [9n, 9n]);
    after.set('/d', [4n, 9n]);
    t.after(after);
    await t.gap.watchBack();
    expect(t.found).toEqual([]);
  });

  it('spends one lookup per directory memory had let go of when no child came or went in it since', async () => {
    const t = setup(BEFORE, new Set(['/', '/d', '/d/x', '/a']));
    t.gap.watchLost(6n);
    t.after(BEFORE);
    await t.gap.watchBack();
    expect(t.found).toEqual([]);
    expect(t.lookups.sort()).toEqual(['/', '/d']);
  });

  it('holds requests by path from the watch going until the names are checked, then lets them go', async () => {
    const t = setup(BEFORE);
    expect(t.gap.settled()).toBeUndefined();
    t.gap.watchLost();
    const after: Tree = new Map(BEFORE);
    after.set('/d/x', [9n, 9n]);
    after.set('/d', [4n, 9n]);
    t.after(after);
    // A read of /d/x that got the new node's data waits, then finds the kernel's node gone.
    let seen: number | undefined | 'not yet' = 'not yet';
    const waiting = t.gap.settled()?.then(() => {
      seen = t.nodes.idOf('/d/x');
    });
    expect(waiting).toBeDefined();
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toBe('not yet');
    await t.gap.watchBack();
    await waiting;
    expect(seen).toBeUndefined();
    expect(t.gap.settled()).toBeUndefined();
  });

  it('lets requests go when the watch came back with nothing held to check', async () => {
    const t = setup(new Map([['/', [1n, 1n]]]));
    t.gap.watchLost();
    const waiting = t.gap.settled();
    await t.gap.watchBack();
    await expect(waiting).resolves.toBeUndefined();
  });
});
