import { describe, expect, it } from 'vitest';
import {
  diskDirName,
  type LayoutSettings,
  layoutChanges,
  layoutEntries,
} from '../../src/core/volume-layout.js';

const numeric: LayoutSettings = {
  basename: 'simple-',
  namingStyle: 'numeric',
  maxDisks: 0,
  persistNumbering: false,
};
const uuid: LayoutSettings = { ...numeric, namingStyle: 'uuid' };
const persist: LayoutSettings = { ...numeric, maxDisks: 4, persistNumbering: true };

describe('diskDirName', () => {
  it.each([
    [numeric, { id: 'u1', number: 0 }, 'simple-0'],
    [{ ...numeric, basename: 'data' }, { id: 'u1', number: 12 }, 'data12'],
    [uuid, { id: 'AB-CD', number: null }, 'simple-ab-cd'],
    [uuid, { id: 'ab-cd', number: 3 }, 'simple-ab-cd'],
  ] as const)('%o %o -> %s', (settings, disk, expected) => {
    expect(diskDirName(settings, disk)).toBe(expected);
  });

  it('needs a number for numeric naming', () => {
    expect(() => diskDirName(numeric, { id: 'x', number: null })).toThrow(/has no number/);
  });

  it('never yields a path with a slash (a hand-edited state file)', () => {
    expect(() => diskDirName({ ...uuid, basename: '' }, { id: '../x', number: null })).toThrow(
      /cannot be a directory/,
    );
    expect(() => diskDirName({ ...uuid, basename: '' }, { id: '..', number: null })).toThrow(
      /cannot be a directory/,
    );
  });
});

describe('layoutEntries', () => {
  it('lists disks in number order', () => {
    const got = layoutEntries(numeric, [
      { id: 'b', number: 2 },
      { id: 'a', number: 0 },
    ]);
    expect(got).toEqual([
      { name: 'simple-0', diskId: 'a', number: 0 },
      { name: 'simple-2', diskId: 'b', number: 2 },
    ]);
  });

  it('adds placeholders for every free number below max-disks with persist-numbering', () => {
    const got = layoutEntries(persist, [{ id: 'b', number: 2 }]);
    expect(got.map((e) => [e.name, e.diskId])).toEqual([
      ['simple-0', null],
      ['simple-1', null],
      ['simple-2', 'b'],
      ['simple-3', null],
    ]);
  });

  it('keeps no placeholders without persist-numbering or with uuid naming', () => {
    expect(layoutEntries({ ...persist, persistNumbering: false }, [])).toEqual([]);
    expect(layoutEntries({ ...persist, namingStyle: 'uuid' }, [])).toEqual([]);
    expect(layoutEntries({ ...persist, maxDisks: 0 }, [])).toEqual([]);
  });

  it('names uuid disks by partition uuid, sorted by name', () => {
    const got = layoutEntries(uuid, [
      { id: 'ff', number: null },
      { id: '0a', number: null },
    ]);
    expect(got.map((e) => e.name)).toEqual(['simple-0a', 'simple-ff']);
  });
});

describe('layoutChanges', () => {
  it('creates what is missing and removes what is no longer wanted', () => {
    const next = layoutEntries(persist, [{ id: 'a', number: 1 }]);
    expect(layoutChanges(['simple-0', 'simple-1', 'simple-7'], next)).toEqual({
      create: ['simple-2', 'simple-3'],
      remove: ['simple-7'],
    });
  });
});
