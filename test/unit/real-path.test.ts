import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canonicalDir } from '../../src/adapters/real-path.js';

describe('canonicalDir: a volume directory as the mount table will show it', () => {
  const base = mkdtempSync(join(tmpdir(), 'real-path-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  mkdirSync(join(base, 'real', 'sub'), { recursive: true });
  symlinkSync('real', join(base, 'link'));
  symlinkSync('real/sub', join(base, 'deep-link'));
  writeFileSync(join(base, 'file'), '');

  it.each([
    ['a link to a directory', 'link', 'real'],
    ['a trailing slash', 'link/', 'real'],
    ['a missing directory under a link', 'link/new/deeper', 'real/new/deeper'],
    ['.. after a link, as the kernel reads it', 'deep-link/..', 'real'],
    ['a path through a file, left for the caller to refuse', 'file/sub', 'file/sub'],
  ])('%s', async (_, given, expected) => {
    // Concatenated, not joined: join would read `..` lexically and drop the trailing slash.
    expect(await canonicalDir(`${base}/${given}`)).toBe(join(await canonicalDir(base), expected));
  });

  it('resolves a relative path from the working directory', async () => {
    expect(await canonicalDir(`${relative(process.cwd(), join(base, 'link'))}/`)).toBe(
      join(await canonicalDir(base), 'real'),
    );
  });
});
