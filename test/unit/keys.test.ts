import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readKeyFile, readSecretFile } from '../../src/adapters/keys.js';
import { createLogger } from '../../src/adapters/logger.js';

const dirs: string[] = [];
function file(text: string, mode: number): string {
  const d = mkdtempSync(join(tmpdir(), 'volkit-keys-'));
  dirs.push(d);
  const path = join(d, 'secret');
  writeFileSync(path, text, { mode });
  return path;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function recorder() {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: 'debug', write: (l) => lines.push(l) }) };
}

describe('readSecretFile', () => {
  it('returns the whole text of a private file, saying nothing', async () => {
    const { lines, log } = recorder();
    const path = file('alice:pw\nsecond line\n', 0o600);
    expect(await readSecretFile(path, { label: '--auth-file', othersAccess: 'warn', log })).toBe(
      'alice:pw\nsecond line\n',
    );
    expect(lines).toEqual([]);
  });

  it('warns about a file group or others can read, naming it and its mode, and still reads it', async () => {
    const { lines, log } = recorder();
    const path = file('alice:pw\n', 0o644);
    expect(await readSecretFile(path, { label: '--auth-file', othersAccess: 'warn', log })).toBe(
      'alice:pw\n',
    );
    expect(lines).toEqual([
      `warn: --auth-file ${path} is accessible by group or others (mode 644); chmod 600 it`,
    ]);
    expect(lines.join('\n')).not.toContain('pw');
  });

  it('refuses such a file when asked to', async () => {
    const path = file('pw', 0o640);
    await expect(readSecretFile(path, { label: 'key file', othersAccess: 'refuse' })).rejects.toThrow(
      `key file ${path} is accessible by group or others (mode 640); chmod 600 it`,
    );
    // Without a check, the same file is read.
    expect(await readSecretFile(path, { label: 'key file' })).toBe('pw');
  });

  it('names a missing file and a directory by their label', async () => {
    const d = mkdtempSync(join(tmpdir(), 'volkit-keys-'));
    dirs.push(d);
    await expect(readSecretFile(join(d, 'nope'), { label: '--auth-file' })).rejects.toThrow(
      `--auth-file ${join(d, 'nope')} does not exist`,
    );
    mkdirSync(join(d, 'sub'));
    await expect(readSecretFile(join(d, 'sub'), { label: '--auth-file' })).rejects.toThrow(
      `--auth-file ${join(d, 'sub')} is not a regular file`,
    );
  });

  it('reads "-" as a file of that name unless standard input is allowed', async () => {
    await expect(readSecretFile('-', { label: 'key file' })).rejects.toThrow(/key file - /);
  });
});

describe('readKeyFile', () => {
  it('drops one trailing newline and refuses an empty key, as before', async () => {
    expect(await readKeyFile(file('pass\n\n', 0o600))).toBe('pass\n');
    const empty = file('\n', 0o600);
    await expect(readKeyFile(empty)).rejects.toThrow(`key file ${empty} is empty`);
    const open = file('pass', 0o604);
    await expect(readKeyFile(open, { privateOnly: true })).rejects.toThrow(
      `key file ${open} is accessible by group or others (mode 604); chmod 600 it`,
    );
  });
});
