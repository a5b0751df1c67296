import { describe, expect, it } from 'vitest';
import { FsError } from '../../../src/core/zkfs/errors.js';
import {
  checkTarget,
  encodeSymlinks,
  hasLinksWithin,
  linksIn,
  moveLinks,
  parseSymlinks,
  showsLinkChanges,
  withoutLinksBelow,
  withoutLinksIn,
} from '../../../src/core/zkfs/symlinks.js';

describe('__symlinks__ codec', () => {
  it('reads the old format: link=target lines, no trailing LF', () => {
    const map = parseSymlinks(Buffer.from('/a=/etc/hosts\n/d/b=../x'));
    expect([...map]).toEqual([
      ['/a', '/etc/hosts'],
      ['/d/b', '../x'],
    ]);
  });

  it('splits on the first = only, so targets keep their = (the old code split on every =)', () => {
    expect(parseSymlinks('/q=a=b=c').get('/q')).toBe('a=b=c');
  });

  it('tolerates blank lines, CRLF and a trailing LF', () => {
    expect([...parseSymlinks('/a=x\r\n\n/b=y\n')]).toEqual([
      ['/a', 'x'],
      ['/b', 'y'],
    ]);
  });

  it('writes plain names exactly as the old tool did', () => {
    const map = new Map([
      ['/a', '/etc/hosts'],
      ['/d/b', 'x=y'],
    ]);
    expect(encodeSymlinks(map).toString()).toBe('/a=/etc/hosts\n/d/b=x=y');
  });

  it('escapes =, %, LF and CR in link names and reads them back', () => {
    const map = new Map([['/we=ird%20\nname\r', 'target%41']]);
    const text = encodeSymlinks(map).toString();
    expect(text).toBe('/we%3Dird%2520%0Aname%0D=target%41');
    expect([...parseSymlinks(text)]).toEqual([...map]);
  });

  it('leaves other % sequences in old names alone', () => {
    expect([...parseSymlinks('/100%20off=t').keys()]).toEqual(['/100%20off']);
  });

  it('refuses targets it cannot store', () => {
    expect(() => checkTarget('a\nb')).toThrow(FsError);
    expect(() => checkTarget('')).toThrow(FsError);
    expect(() => checkTarget('fine = target')).not.toThrow();
  });
});

describe('symlink table queries', () => {
  const map = new Map([
    ['/top', 't'],
    ['/d/one', '1'],
    ['/d/sub/two', '2'],
    ['/dd/three', '3'],
  ]);

  it('lists the links directly in a directory', () => {
    expect(linksIn(map, '/')).toEqual(['top']);
    expect(linksIn(map, '/d')).toEqual(['one']);
    expect(linksIn(map, '/d/sub')).toEqual(['two']);
  });

  it('knows whether a subtree holds links', () => {
    expect(hasLinksWithin(map, '/d')).toBe(true);
    expect(hasLinksWithin(map, '/e')).toBe(false);
  });

  it('moves links with their own targets (the old code wrote target=target)', () => {
    expect([...moveLinks(map, '/d', '/e')!]).toEqual([
      ['/top', 't'],
      ['/e/one', '1'],
      ['/e/sub/two', '2'],
      ['/dd/three', '3'],
    ]);
    expect([...moveLinks(map, '/top', '/d/top2')!.entries()][0]).toEqual(['/d/top2', 't']);
    expect(moveLinks(map, '/nothing', '/x')).toBeUndefined();
  });

  it('drops the links below a name about to be made, not the link at it nor a sibling with its prefix', () => {
    expect([...withoutLinksBelow(map, '/d')!]).toEqual([
      ['/top', 't'],
      ['/dd/three', '3'],
    ]);
    expect([...withoutLinksBelow(map, '/d/sub')!].map(([link]) => link)).toEqual([
      '/top',
      '/d/one',
      '/dd/three',
    ]);
    expect(withoutLinksBelow(map, '/top')).toBeUndefined();
    expect(withoutLinksBelow(map, '/nothing')).toBeUndefined();
  });

  it('drops the links directly inside gone directories, not those below or beside them', () => {
    expect([...withoutLinksIn(map, new Set(['/d']))!].map(([link]) => link)).toEqual([
      '/top',
      '/d/sub/two',
      '/dd/three',
    ]);
    expect(withoutLinksIn(map, new Set(['/gone']))).toBeUndefined();
  });

  it('replaces a link that a moved link lands on', () => {
    expect([...moveLinks(map, '/top', '/d/one')!]).toEqual([
      ['/d/one', 't'],
      ['/d/sub/two', '2'],
      ['/dd/three', '3'],
    ]);
  });
});

describe('a table write sent again after its reply was lost', () => {
  const before = new Map([
    ['/a/l1', 'x'],
    ['/a/l2', 'y'],
    ['/keep', 'z'],
  ]);
  const after = moveLinks(before, '/a', '/b') ?? before;
  const shows = showsLinkChanges(before, after);

  it('counts as done when the links it moved are at their new names, whatever other links changed', () => {
    const now = new Map([...after, ['/theirs', 'w']]);
    now.delete('/keep'); // another host removed a link this write did not touch
    expect(shows(encodeSymlinks(now))).toBe(true);
  });

  it('does not while a link is still at its old name, or missing from or wrong at its new one', () => {
    expect(shows(encodeSymlinks(before))).toBe(false);
    expect(shows(encodeSymlinks(new Map([['/b/l1', 'x']])))).toBe(false);
    expect(shows(encodeSymlinks(new Map([...after, ['/b/l2', 'other']])))).toBe(false);
  });
});
