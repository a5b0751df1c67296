import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/core/errors.js';
import { FsError, fsCodeForZk } from '../../../src/core/zkfs/errors.js';
import { nodeKind, showsDataFile } from '../../../src/core/zkfs/modes.js';
import {
  baseName,
  checkNewName,
  isHiddenChild,
  isSharedDoc,
  isWithin,
  nameProblem,
  normalizeZkPath,
  parentPath,
  toMountPath,
  toZnode,
  zkChild,
} from '../../../src/core/zkfs/paths.js';

function code(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error instanceof FsError ? error.code : (error as Error).name;
  }
}

describe('paths', () => {
  it.each([
    ['/', '/'],
    ['/app', '/app'],
    ['/app/', '/app'],
    ['/a/b/c', '/a/b/c'],
  ])('normalises the mount PATH %s to %s', (input, expected) => {
    expect(normalizeZkPath(input)).toBe(expected);
  });

  it.each(['app', '', '/a//b', '/a/./b', '/a/../b', '/a\u0001b', '/app/__zkfs__', '/__zkfs__/x'])(
    'refuses the mount PATH %j',
    (input) => {
      expect(() => normalizeZkPath(input)).toThrow(UsageError);
    },
  );

  it.each([
    ['/', '/', '/'],
    ['/', '/a/b', '/a/b'],
    ['/app', '/', '/app'],
    ['/app', '/a/b', '/app/a/b'],
  ])('maps root %s and mount path %s to znode %s and back', (root, mountPath, znode) => {
    expect(toZnode(root, mountPath)).toBe(znode);
    expect(toMountPath(root, znode)).toBe(mountPath);
  });

  it('splits and joins paths', () => {
    expect(parentPath('/a/b')).toBe('/a');
    expect(parentPath('/a')).toBe('/');
    expect(baseName('/a/b')).toBe('b');
    expect(baseName('/')).toBe('');
    expect(zkChild('/', 'x')).toBe('/x');
    expect(zkChild('/a', 'x')).toBe('/a/x');
  });

  it('knows what lies within a path without matching mere prefixes', () => {
    expect(isWithin('/a/b', '/a')).toBe(true);
    expect(isWithin('/a', '/a')).toBe(true);
    expect(isWithin('/ab', '/a')).toBe(false);
    expect(isWithin('/anything', '/')).toBe(true);
  });

  it('hides the metadata child everywhere and __symlinks__ only at the root', () => {
    expect(isHiddenChild('__zkfs__', false)).toBe(true);
    expect(isHiddenChild('__symlinks__', true)).toBe(true);
    expect(isHiddenChild('__symlinks__', false)).toBe(false);
    expect(isHiddenChild('_zoo_data_', true)).toBe(false);
  });

  it('tells the documents every host rewrites from nodes that merely end alike', () => {
    expect(isSharedDoc('/app/d/__zkfs__')).toBe(true);
    expect(isSharedDoc('/app/__symlinks__')).toBe(true);
    expect(isSharedDoc('/app/d/my__zkfs__')).toBe(false);
    expect(isSharedDoc('/app/d')).toBe(false);
  });

  it.each([
    ['ok.txt', true, undefined],
    ['a'.repeat(256), false, 'ENAMETOOLONG'],
    ['bad\u0007', false, 'EINVAL'],
    ['line\nbreak', false, 'EINVAL'],
    ['caf\u00e9 \u00a0\u4e2d', false, undefined],
    ['smile\u{1f600}', false, 'EINVAL'],
    ['__zkfs__', false, 'EPERM'],
    ['__symlinks__', true, 'EPERM'],
    ['__symlinks__', false, undefined],
    ['with=equals and spaces', false, undefined],
  ])('new name %j at root=%s gives %s', (name, atRoot, expected) => {
    expect(code(() => checkNewName(name, atRoot))).toBe(expected);
  });

  it('says which characters ZooKeeper refuses in a name', () => {
    expect(nameProblem('smile\u{1f600}')).toMatch(/beyond U\+FFFF \(emoji/);
    expect(nameProblem('tab\there')).toMatch(/control or private-use/);
    expect(nameProblem('private\ue000')).toMatch(/control or private-use/);
  });
});

describe('modes', () => {
  const cases: [string, Parameters<typeof nodeKind>[1], 'hybrid' | 'dir' | 'file', string][] = [
    ['leaf with data', { numChildren: 0, dataLength: 5 }, 'hybrid', 'file'],
    ['leaf without data, no stored type', { numChildren: 0, dataLength: 0 }, 'hybrid', 'dir'],
    ['empty file made here', { numChildren: 0, dataLength: 0, storedType: 'file' }, 'hybrid', 'file'],
    ['empty dir made here', { numChildren: 0, dataLength: 3, storedType: 'dir' }, 'hybrid', 'dir'],
    [
      'stored file that gained children',
      { numChildren: 2, dataLength: 3, storedType: 'file' },
      'hybrid',
      'dir',
    ],
    ['leaf in dir mode', { numChildren: 0, dataLength: 5 }, 'dir', 'dir'],
    ['stored file in dir mode', { numChildren: 0, dataLength: 5, storedType: 'file' }, 'dir', 'dir'],
    ['leaf in file mode', { numChildren: 0, dataLength: 0 }, 'file', 'file'],
    ['parent in file mode', { numChildren: 1, dataLength: 0 }, 'file', 'dir'],
    ['empty mkdir in file mode', { numChildren: 0, dataLength: 0, storedType: 'dir' }, 'file', 'dir'],
  ];
  it.each(cases)('%s → %s mode shows %s', (_label, facts, mode, expected) => {
    expect(nodeKind(mode, facts)).toBe(expected);
  });

  it('lists _zoo_data_ always in dir mode, otherwise only when the znode has data', () => {
    expect(showsDataFile('dir', 0)).toBe(true);
    expect(showsDataFile('hybrid', 0)).toBe(false);
    expect(showsDataFile('hybrid', 1)).toBe(true);
    expect(showsDataFile('file', 7)).toBe(true);
  });
});

describe('ZooKeeper errors', () => {
  it.each([
    ['NO_NODE', 'ENOENT'],
    ['NODE_EXISTS', 'EEXIST'],
    ['NOT_EMPTY', 'ENOTEMPTY'],
    ['NO_AUTH', 'EACCES'],
    ['INVALID_ACL', 'EACCES'],
    ['BAD_ARGUMENTS', 'EINVAL'],
    ['CONNECTION_LOSS', 'ETIMEDOUT'],
    ['SESSION_EXPIRED', 'ETIMEDOUT'],
    ['BAD_VERSION', 'EIO'],
    ['SYSTEM_ERROR', 'EIO'],
  ] as const)('%s becomes %s', (zk, fs) => {
    expect(fsCodeForZk(zk)).toBe(fs);
  });
});
