import { describe, expect, it } from 'vitest';
import { childPath, NodeTable } from '../../src/core/fuse/node-table.js';
import { ROOT_ID } from '../../src/core/fuse/protocol.js';

describe('NodeTable', () => {
  it('knows the root from the start and never forgets it', () => {
    const t = new NodeTable();
    expect(t.path(ROOT_ID)).toBe('/');
    t.forget(ROOT_ID, 100);
    expect(t.path(ROOT_ID)).toBe('/');
  });

  it('hands out one id per path and counts references until forgotten', () => {
    const t = new NodeTable();
    const a = t.lookup('/a');
    expect(t.lookup('/a')).toBe(a);
    expect(t.forget(a, 1)).toBe(false);
    expect(t.path(a)).toBe('/a');
    expect(t.forget(a, 1)).toBe(true);
    expect(t.path(a)).toBeUndefined();
    expect(t.forget(a, 1)).toBe(false);
    expect(t.idOf('/a')).toBeUndefined();
    // a new lookup after the kernel let go gets a fresh id: a late FORGET cannot hit it
    expect(t.lookup('/a')).not.toBe(a);
  });

  it('moves a renamed directory with everything below it', () => {
    const t = new NodeTable();
    const d = t.lookup('/d');
    const f = t.lookup('/d/sub/f');
    const other = t.lookup('/dx');
    t.renamed('/d', '/e');
    expect(t.path(d)).toBe('/e');
    expect(t.path(f)).toBe('/e/sub/f');
    expect(t.path(other)).toBe('/dx');
    expect(t.idOf('/d')).toBeUndefined();
    expect(t.idOf('/e/sub/f')).toBe(f);
  });

  it('detaches a rename target that was replaced, and removed names', () => {
    const t = new NodeTable();
    const src = t.lookup('/src');
    const dst = t.lookup('/dst');
    t.renamed('/src', '/dst');
    expect(t.path(dst)).toBeUndefined();
    expect(t.idOf('/dst')).toBe(src);
    t.removed('/dst');
    expect(t.path(src)).toBeUndefined();
    // forgetting a detached node does not disturb a new node with the same name
    const again = t.lookup('/dst');
    t.forget(src, 1);
    expect(t.idOf('/dst')).toBe(again);
  });

  it('keeps the attributes a node was last handed out with after its name goes, until forgotten', () => {
    const t = new NodeTable<{ size: number }>();
    const f = t.lookup('/f', { size: 1 });
    expect(t.lookup('/f')).toBe(f);
    expect(t.told(f)).toEqual({ size: 1 });
    t.tell(f, { size: 2 });
    t.removed('/f');
    expect(t.told(f)).toEqual({ size: 2 });
    // The name made again is a new node, with its own attributes.
    const again = t.lookup('/f', { size: 3 });
    expect(t.told(again)).toEqual({ size: 3 });
    expect(t.told(f)).toEqual({ size: 2 });
    t.forget(f, 2);
    expect(t.told(f)).toBeUndefined();
  });

  it('keeps what the kernel was told in step with what it changed itself, and nothing for a node it was told nothing of', () => {
    const t = new NodeTable<{ size: number }>();
    const f = t.lookup('/f', { size: 0 });
    // A write of 10 bytes from 0: the kernel's size is 10 now, as a deleted file's attributes must say.
    t.retell(f, (told) => ({ size: Math.max(told.size, 10) }));
    expect(t.told(f)).toEqual({ size: 10 });
    const g = t.lookup('/g');
    t.retell(g, () => ({ size: 5 }));
    expect(t.told(g)).toBeUndefined();
  });

  it('joins names under the root and below', () => {
    expect(childPath('/', 'a')).toBe('/a');
    expect(childPath('/a', 'b')).toBe('/a/b');
  });
});
