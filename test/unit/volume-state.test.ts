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
import { OperationError } from '../../src/core/errors.js';

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

  it('creates missing parents 0700 and names a state directory it cannot use', async () => {
    const base = tempDir();
    const deep = join(base, 'a', 'b', 'state');
    await withStateLock(deep, {}, async () => {});
    expect(statSync(join(base, 'a')).mode & 0o777).toBe(0o700);
    const file = join(base, 'file');
    writeFileSync(file, 'x');
    await expect(withStateLock(file, {}, async () => {})).rejects.toThrow(
      new OperationError(`cannot use the state directory ${file}: ${file} is not a directory`),
    );
    await expect(loadState(file)).rejects.toThrow(`cannot read the state file ${file}/volumes.json: ENOTDIR`);
    // Where mkdir says ENOENT under a parent that exists, Node's own mkdir -p never returns.
    await expect(withStateLock('/proc/volkit-no-such-dir/state', {}, async () => {})).rejects.toThrow(
      'cannot create the state directory /proc/volkit-no-such-dir/state: ENOENT',
    );
  });

  it('names a state file it cannot use', async () => {
    const dir = tempDir();
    writeFileSync(statePath(dir), '{"version":7,"volumes":{}}');
    await expect(loadState(dir)).rejects.toThrow(/volumes.json is not usable: unsupported version 7/);
  });
});
