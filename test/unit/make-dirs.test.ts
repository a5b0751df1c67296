import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeDirs, makeDirsSync } from '../../src/adapters/make-dirs.js';

const base = mkdtempSync(join(tmpdir(), 'volkit-make-dirs-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('makeDirs', () => {
  it('makes the missing directories with the mode given and returns the first one made', async () => {
    const dir = join(base, 'a', 'b', 'c');
    expect(await makeDirs(dir, 0o700)).toBe(join(base, 'a'));
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(statSync(join(base, 'a', 'b')).mode & 0o777).toBe(0o700);
    expect(await makeDirs(dir, 0o700)).toBeUndefined();
    expect(makeDirsSync(join(dir, 'd'), 0o755)).toBe(join(dir, 'd'));
  });

  it('fails at once under /proc, where Node 20’s recursive mkdir never returns', async () => {
    await expect(makeDirs('/proc/volkit-no-such/dir', 0o755)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => makeDirsSync('/proc/volkit-no-such', 0o755)).toThrow(/ENOENT/);
  });

  it('fails where a file stands in the way, as mkdir -p does', async () => {
    const file = join(base, 'file');
    writeFileSync(file, '');
    await expect(makeDirs(file, 0o755)).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(makeDirs(join(file, 'sub'), 0o755)).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});
