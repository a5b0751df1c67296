import { describe, expect, it } from 'vitest';
import { insertSorted, position, sortedIncludes } from '../../../src/core/zkfs/sorted-names.js';

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
});
