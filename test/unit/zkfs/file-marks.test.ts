/**
 * Which "t":"f" marks a directory's document can shed: only those of files
 * known to hold data, only bare marks, and never the name being written.
 */
import { describe, expect, it } from 'vitest';
import { encodeMeta, parseMeta } from '../../../src/core/zkfs/attrs.js';
import {
  droppableMarks,
  MAX_DROPPED_MARKS,
  type MarkedNode,
  markedAsFile,
  onlyFileMark,
  withoutEntries,
} from '../../../src/core/zkfs/file-marks.js';
import { nodeKind } from '../../../src/core/zkfs/modes.js';

const doc = (entries: Record<string, unknown>) =>
  parseMeta(Buffer.from(JSON.stringify({ zkfs: 1, cn: ['tok'], e: entries })));

const held = (dataLength: number, version = 3, numChildren = 0): MarkedNode => ({
  version,
  dataLength,
  numChildren,
});

describe('file marks', () => {
  it('drops the bare marks of files holding data, with the versions they were seen at', () => {
    const meta = doc({
      full: { t: 'f' },
      empty: { t: 'f' },
      unknown: { t: 'f' },
      parent: { t: 'f' },
      chmodded: { t: 'f', m: 0o600 },
      dir: { t: 'd' },
      timed: { mt: 5, v: 1 },
      writing: { t: 'f' },
    });
    const nodes: Record<string, MarkedNode> = {
      full: held(10, 7),
      empty: held(0),
      parent: held(10, 2, 1),
      chmodded: held(10),
      dir: held(10),
      timed: held(10),
      writing: held(10),
    };
    const dropped = droppableMarks(meta, 'writing', (name) => nodes[name]);
    // An empty file needs its mark (it would read as a directory), an unknown one may be empty,
    // one with children is a directory whatever it says, and the rest say more than a mark.
    expect(dropped).toEqual([{ name: 'full', version: 7 }]);
  });

  it('keeps to a batch at a time, so one write stays small whatever an older version left', () => {
    const entries = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}`, { t: 'f' }]));
    const dropped = droppableMarks(doc(entries), 'new', () => held(1));
    expect(dropped).toHaveLength(MAX_DROPPED_MARKS);
  });

  it('leaves a document without the dropped names, its other keys as they were', () => {
    const meta = doc({ a: { t: 'f' }, b: { t: 'f', m: 0o600 }, c: { t: 'd' } });
    const out = withoutEntries(meta, ['a', 'c']);
    expect(JSON.parse(encodeMeta(out).toString())).toEqual({
      zkfs: 1,
      cn: ['tok'],
      e: { b: { t: 'f', m: 0o600 } },
    });
    expect(withoutEntries(meta, [])).toBe(meta);
  });

  it('tells a bare mark from an entry that says more', () => {
    expect(onlyFileMark({ t: 'f' })).toBe(true);
    expect(onlyFileMark({ t: 'f', m: 0o644 })).toBe(false);
    expect(onlyFileMark({ t: 'd' })).toBe(false);
    expect(onlyFileMark(undefined)).toBe(false);
  });

  it('marks an emptied file again, keeping what its entry says, so that it stays a file', () => {
    expect(markedAsFile(undefined)).toEqual({ t: 'f' });
    expect(markedAsFile({ m: 0o600, u: 5 })).toEqual({ t: 'f', m: 0o600, u: 5 });
    expect(markedAsFile({ t: 'd' })).toEqual({ t: 'f' });
    expect(markedAsFile({ t: 'f', m: 0o600 })).toBeUndefined();
    // Why: without a stored type, an empty leaf is a directory in hybrid mode; with data, a file.
    expect(nodeKind('hybrid', { numChildren: 0, dataLength: 0 })).toBe('dir');
    expect(nodeKind('hybrid', { numChildren: 0, dataLength: 1 })).toBe('file');
  });
});
