import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_STATE_DIR,
  loadState,
  resolveStateDir,
  statePath,
  withStateLock,
} from '../../src/adapters/volume-state.js';
import { emptyState, ensureVolume } from '../../src/core/assignments.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'volkit-vstate-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('state directory', () => {
  it('prefers the option, then SIMPLECTL_STATE_DIR, then the default', () => {
    expect(resolveStateDir('/a', { SIMPLECTL_STATE_DIR: '/b' })).toBe('/a');
    expect(resolveStateDir(undefined, { SIMPLECTL_STATE_DIR: '/b' })).toBe('/b');
    expect(resolveStateDir(undefined, { SIMPLECTL_STATE_DIR: '' })).toBe(DEFAULT_STATE_DIR);
    expect(resolveStateDir(undefined, {})).toBe('/var/lib/simplectl');
    expect(resolveStateDir('rel', {})).toBe(join(process.cwd(), 'rel'));
  });

  it('rejects an empty option', () => {
    expect(() => resolveStateDir('  ', {})).toThrow(/must not be empty/);
  });
});

describe('state file', () => {
  it('starts empty, commits atomically with mode 0600, and reads back', async () => {
    const dir = join(tempDir(), 'state');
    expect(await loadState(dir)).toEqual(emptyState());
    await withStateLock(dir, {}, async (session) => {
      await session.commit(ensureVolume(session.state, 'label.a', true, 'now'));
      expect(session.state.volumes['label.a']).toBeDefined();
    });
    expect(Object.keys((await loadState(dir)).volumes)).toEqual(['label.a']);
    expect(statSync(statePath(dir)).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('names a state file it cannot use', async () => {
    const dir = tempDir();
    writeFileSync(statePath(dir), '{"version":7,"volumes":{}}');
    await expect(loadState(dir)).rejects.toThrow(/volumes.json is not usable: unsupported version 7/);
  });
});
