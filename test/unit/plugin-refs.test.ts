import { describe, expect, it } from 'vitest';
import {
  addRef,
  type MountRefs,
  parseReleaseUnheld,
  reconcileAction,
  releaseRef,
  sanitizeRefs,
  totalRefs,
  type UnheldCheck,
  unheldRefs,
} from '../../src/core/refs.js';

describe('mount references', () => {
  it('mounts on the first reference only', () => {
    const a = addRef({}, 'c1');
    expect(a).toEqual({ refs: { c1: 1 }, first: true });
    const b = addRef(a.refs, 'c2');
    expect(b).toEqual({ refs: { c1: 1, c2: 1 }, first: false });
  });

  it('counts the same ID mounted twice (the engine copies image content with a second mount)', () => {
    const twice = addRef(addRef({}, 'c1').refs, 'c1');
    expect(twice).toEqual({ refs: { c1: 2 }, first: false });
    const once = releaseRef(twice.refs, 'c1');
    expect(once).toEqual({ refs: { c1: 1 }, known: true, last: false });
    expect(releaseRef(once.refs, 'c1')).toEqual({ refs: {}, known: true, last: true });
  });

  it('tears down on the last Unmount over several IDs', () => {
    let refs: MountRefs = {};
    for (const id of ['a', 'b', 'c']) refs = addRef(refs, id).refs;
    const steps = ['b', 'a', 'c'].map((id) => {
      const r = releaseRef(refs, id);
      refs = r.refs;
      return r.last;
    });
    expect(steps).toEqual([false, false, true]);
    expect(totalRefs(refs)).toBe(0);
  });

  it.each([
    ['an empty volume', {}],
    ['a volume held by another ID', { other: 2 }],
  ])('ignores an Unmount of an unknown ID on %s: never below zero', (_label, refs: MountRefs) => {
    const r = releaseRef(refs, 'never-mounted');
    expect(r).toEqual({ refs, known: false, last: false });
    expect(Object.values(r.refs).every((n) => n > 0)).toBe(true);
  });

  it.each([
    [{}, 'absent', 'none'],
    [{}, 'served', 'unmount'],
    [{}, 'dead', 'none'],
    [{ c1: 1 }, 'served', 'keep'],
    [{ c1: 1 }, 'dead', 'remount'],
    [{ c1: 1 }, 'absent', 'forget'],
  ] as const)('reconciles refs %j with a mount %s as %s', (refs, seen, action) => {
    expect(reconcileAction(refs, seen)).toBe(action);
  });

  it('counts an ID named like what every object has (constructor, __proto__) as any other', () => {
    for (const id of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const held = addRef(addRef({ c1: 1 }, id).refs, id);
      expect(held.first).toBe(false);
      expect(totalRefs(held.refs)).toBe(3);
      // As saved and read back, then released.
      const back = sanitizeRefs(JSON.parse(JSON.stringify(held.refs)));
      expect(totalRefs(back)).toBe(3);
      const once = releaseRef(back, id);
      expect({ known: once.known, last: once.last, total: totalRefs(once.refs) }).toEqual({
        known: true,
        last: false,
        total: 2,
      });
      const twice = releaseRef(once.refs, id);
      expect({ known: twice.known, total: totalRefs(twice.refs) }).toEqual({ known: true, total: 1 });
      expect(releaseRef(twice.refs, id)).toEqual({ refs: twice.refs, known: false, last: false });
      expect(releaseRef({ c1: 1 }, id)).toEqual({ refs: { c1: 1 }, known: false, last: false });
    }
  });

  it('drops malformed counts read back from disk', () => {
    expect(sanitizeRefs({ a: 1, b: 0, c: -3, d: 1.5, e: '2', f: 4 })).toEqual({ a: 1, f: 4 });
    expect(sanitizeRefs(null)).toEqual({});
    expect(sanitizeRefs([1, 2])).toEqual({});
  });
});

describe('references the engine will never release', () => {
  const leaked: UnheldCheck = {
    refs: { c1: 1 },
    mounted: true,
    quietMs: 130_000,
    timeoutMs: 120_000,
    holders: 0,
  };

  it('releases them once the volume is mounted, held by no container, and no Mount came for the timeout', () => {
    expect(unheldRefs(leaked)).toBe(true);
  });

  it.each([
    ['a container still holds the mount', { holders: 1 }],
    ['the plugin cannot see who holds it (a PID namespace of its own)', { holders: undefined }],
    ['a Mount came within the timeout (its container may not have started yet)', { quietMs: 119_999 }],
    ['release is turned off', { timeoutMs: 0 }],
    ['nothing is held', { refs: {} }],
    ['the volume is not mounted (start-up or the next Mount settles it)', { mounted: false }],
  ] as const)('keeps them when %s', (_label, change: Partial<UnheldCheck>) => {
    expect(unheldRefs({ ...leaked, ...change })).toBe(false);
  });

  it('takes --release-unheld as whole seconds from 0 to a day', () => {
    expect(parseReleaseUnheld('0')).toBe(0);
    expect(parseReleaseUnheld(' 120 ')).toBe(120);
    for (const bad of ['-1', '1.5', 'soon', '', '86401']) {
      expect(() => parseReleaseUnheld(bad)).toThrow(
        `--release-unheld '${bad}' is not a whole number of seconds`,
      );
    }
  });
});
