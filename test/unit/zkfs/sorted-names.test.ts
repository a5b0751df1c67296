import { describe, expect, it } from 'vitest';
import {
  insertSorted,
  PATCH_LIMIT,
  patchedList,
  position,
  sortedIncludes,
} from '../../../src/core/zkfs/sorted-names.js';

describe('sorted child lists', () => {
  const list = ['B', 'a', 'b', 'file10', 'file2', 'z', 'é'].sort();

  it('inserts a name where Array.prototype.sort would put it, in a copy', () => {
    for (const name of ['0', 'A', 'aa', 'file1', 'file3', 'zz', 'ü', '😀']) {
      const grown = insertSorted(list, name);
      expect(grown).toEqual([...list, name].sort());
      expect(grown).not.toBe(list);
    }
    expect(list).toEqual(['B', 'a', 'b', 'file10', 'file2', 'z', 'é']);
    expect(insertSorted([], 'only')).toEqual(['only']);
  });

  it('finds names by bisection, and only names that are there', () => {
    for (const name of list) expect(sortedIncludes(list, name)).toBe(true);
    for (const name of ['', 'A', 'file1', 'zz', 'e']) expect(sortedIncludes(list, name)).toBe(false);
    expect(position(list, 'file2')).toBe(list.indexOf('file2'));
    expect(position(list, '~')).toBe(list.indexOf('é'));
  });
  it('patches a change into a copy of a list, but not into a very long one', () => {
    expect(patchedList(list, 'c', 1)).toEqual([...list, 'c'].sort());
    expect(patchedList(list, 'file10', -1)).toEqual(list.filter((n) => n !== 'file10'));
    expect(patchedList(list, 'absent', -1)).toEqual(list);
    expect(patchedList(list, 'c', 1)).not.toBe(list);
    expect(list).toEqual(['B', 'a', 'b', 'file10', 'file2', 'z', 'é']);

    const long = Array.from({ length: PATCH_LIMIT }, (_, i) => `n${String(i).padStart(6, '0')}`);
    expect(patchedList(long, 'x', 1)).toHaveLength(PATCH_LIMIT + 1);
    const longer = [...long, 'x'];
    // Copying it for every change cost more than reading it again when needed.
    expect(patchedList(longer, 'y', 1)).toBeUndefined();
    expect(patchedList(longer, 'x', -1)).toBeUndefined();
  });
});
