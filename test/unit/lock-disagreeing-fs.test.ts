/**
 * acquireLock on a filesystem whose answers disagree from one call to the
 * next, as a network filesystem's cached lookups can: the exclusive create
 * says the lock file is there while reading it finds none, or every read
 * finds other content. No such filesystem runs here (no NFS server on this
 * machine), so node:fs/promises answers for the one lock path as it would;
 * every other path is the real filesystem.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { acquireLock } from '../../src/adapters/lock.js';
import { deadPid } from '../fixtures/dead-pid.js';

const fake = vi.hoisted(() => ({
  path: '',
  reads: 'missing' as 'missing' | 'changing',
  creates: 0,
  deadPid: 0,
  served: 0,
}));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  // Real I/O answers on a later turn of the event loop; so do these.
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  const missing = (path: unknown) =>
    Object.assign(new Error(`ENOENT: no such file or directory, '${String(path)}'`), { code: 'ENOENT' });
  const fileStats = {
    isFile: () => true,
    isDirectory: () => false,
    isFIFO: () => false,
    isSocket: () => false,
    isSymbolicLink: () => false,
    mtimeMs: 0,
  };
  // A dead holder's record, different each time it is read.
  const record = () =>
    JSON.stringify({
      pid: fake.deadPid,
      startTime: '1',
      purpose: 'elsewhere',
      since: `read ${++fake.served}`,
    });
  return {
    ...real,
    open: async (path: string, flags: string | number, mode?: number) => {
      if (path !== fake.path) return real.open(path, flags, mode);
      await turn();
      if (flags === 'wx') {
        fake.creates++;
        throw Object.assign(new Error(`EEXIST: file already exists, '${path}'`), { code: 'EEXIST' });
      }
      if (fake.reads === 'missing') throw missing(path);
      const text = record();
      return { stat: async () => fileStats, readFile: async () => text, close: async () => {} };
    },
    stat: async (path: string) => {
      if (path !== fake.path) return real.stat(path);
      await turn();
      if (fake.reads === 'missing') throw missing(path);
      return fileStats;
    },
    lstat: async (path: string) => {
      if (path !== fake.path) return real.lstat(path);
      await turn();
      throw missing(path);
    },
    // The name stays: its removal is not seen by the next lookup either.
    unlink: async (path: string) => (path === fake.path ? turn() : real.unlink(path)),
  };
});

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function disagreeing(reads: 'missing' | 'changing'): string {
  const dir = mkdtempSync(join(tmpdir(), 'volkit-lock-'));
  dirs.push(dir);
  fake.path = join(dir, 'assign.lock');
  fake.reads = reads;
  fake.creates = 0;
  fake.deadPid = deadPid();
  return fake.path;
}

describe('lock on a filesystem whose answers disagree', () => {
  it('waits, says so once and times out, where the create finds the file and the read does not', async () => {
    const path = disagreeing('missing');
    const told: string[] = [];
    const started = Date.now();
    await expect(
      acquireLock(path, { timeoutMs: 300, pollMs: 20, onWait: (who) => told.push(who) }),
    ).rejects.toThrow(
      `timed out after 0.3 s waiting for the lock ${path}, whose lock file is reported both there and missing`,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    // Tried again at once only twice in a row, then at the poll's pace: not thousands of times.
    expect(fake.creates).toBeLessThan(100);
    expect(told).toEqual([expect.stringMatching(/^whose lock file is reported both there and missing/)]);
  });

  it('waits and times out where the file reads differently every time', async () => {
    const path = disagreeing('changing');
    await expect(acquireLock(path, { timeoutMs: 300, pollMs: 20 })).rejects.toThrow(
      new RegExp(
        `waiting for the lock ${path}, held by pid ${fake.deadPid} \\(elsewhere\\) since read \\d+, not running`,
      ),
    );
    expect(fake.creates).toBeLessThan(100);
  });
});
