import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readJson, writeJsonAtomic } from '../../src/adapters/state-file.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'volkit-state-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('state files', () => {
  it('writes JSON readable back, mode 0600, leaving no temporary file', async () => {
    const dir = tempDir();
    const path = join(dir, 'sub', 'state.json');
    await writeJsonAtomic(path, { volumes: { a: 1 }, auth: 'secret' });
    expect(await readJson(path, {})).toEqual({ volumes: { a: 1 }, auth: 'secret' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, 'sub'))).toEqual(['state.json']);
  });

  it('replaces an existing file whole and tightens its mode', async () => {
    const path = join(tempDir(), 'state.json');
    writeFileSync(path, '{"old":true}', { mode: 0o644 });
    await writeJsonAtomic(path, { new: true });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ new: true });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('returns the fallback for a missing file and names a corrupt one', async () => {
    const dir = tempDir();
    expect(await readJson(join(dir, 'none.json'), { empty: true })).toEqual({ empty: true });
    writeFileSync(join(dir, 'bad.json'), '{"trunc');
    await expect(readJson(join(dir, 'bad.json'), {})).rejects.toThrow(/bad\.json is not valid JSON/);
  });
});
