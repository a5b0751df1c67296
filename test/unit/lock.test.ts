import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLock, readLockHolder, withLock } from '../../src/adapters/lock.js';
import { isProcessAlive, processStartTime } from '../../src/adapters/processes.js';
import { deadPid } from '../fixtures/dead-pid.js';

const dirs: string[] = [];
function lockFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'volkit-lock-'));
  dirs.push(d);
  return join(d, 'assign.lock');
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('lock', () => {
  it('serialises holders: no two run their critical section at once', async () => {
    const path = lockFile();
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        withLock(path, { pollMs: 5 }, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          await new Promise((r) => setTimeout(r, 10));
          order.push(i);
          inside--;
        }),
      ),
    );
    expect(maxInside).toBe(1);
    expect(order.sort()).toEqual([1, 2, 3, 4, 5]);
    expect(existsSync(path)).toBe(false);
  });

  it('records the holder and releases on error', async () => {
    const path = lockFile();
    await expect(
      withLock(path, { purpose: 'mount label.x' }, async () => {
        const holder = await readLockHolder(path);
        expect(holder).toMatchObject({ pid: process.pid, purpose: 'mount label.x' });
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(existsSync(path)).toBe(false);
  });

  it('breaks a lock left by a dead process', async () => {
    const path = lockFile();
    writeFileSync(
      path,
      JSON.stringify({ pid: deadPid(), startTime: '1', purpose: 'crashed', since: 'then' }),
    );
    const lock = await acquireLock(path, { timeoutMs: 2000 });
    expect((await readLockHolder(path))?.pid).toBe(process.pid);
    await lock.release();
  });

  it('breaks a lock whose pid was recycled by another process', async () => {
    const path = lockFile();
    writeFileSync(
      path,
      JSON.stringify({ pid: process.pid, startTime: 'not-my-start', purpose: '', since: '' }),
    );
    const lock = await acquireLock(path, { timeoutMs: 2000 });
    expect((await readLockHolder(path))?.startTime).toBe(processStartTime(process.pid));
    await lock.release();
  });

  it('times out naming the live holder', async () => {
    const path = lockFile();
    const held = await acquireLock(path, { purpose: 'mount label.a' });
    await expect(acquireLock(path, { timeoutMs: 150, pollMs: 20 })).rejects.toThrow(
      new RegExp(`held by pid ${process.pid} \\(mount label.a\\)`),
    );
    await held.release();
  });

  it('says which lock it could not make, and why, where its directory cannot be made', async () => {
    const file = lockFile();
    writeFileSync(file, 'a file, not a directory');
    const path = join(file, 'state', 'assign.lock');
    await expect(acquireLock(path)).rejects.toThrow(`cannot take the lock ${path}: ENOTDIR`);
    await expect(acquireLock(path)).rejects.toMatchObject({ name: 'OperationError' });
    // A directory where the lock file goes: said at once, not tried again for ever.
    const blocked = lockFile();
    mkdirSync(blocked);
    await expect(acquireLock(blocked, { timeoutMs: 60_000 })).rejects.toThrow(
      `cannot take the lock ${blocked}: it is a directory, not a regular file`,
    );
    // A FIFO: reading it would wait for a writer; it is said at once instead.
    const fifo = lockFile();
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    await expect(acquireLock(fifo, { timeoutMs: 60_000 })).rejects.toThrow(
      `cannot take the lock ${fifo}: it is a FIFO, not a regular file`,
    );
    expect(await readLockHolder(fifo)).toBeUndefined();
    const dangling = lockFile();
    symlinkSync(join(dirname(dangling), 'nowhere'), dangling);
    await expect(acquireLock(dangling, { timeoutMs: 60_000 })).rejects.toThrow(
      `cannot take the lock ${dangling}: it is a symbolic link to nothing`,
    );
  });

  it('tells a waiter once who holds the lock, and never names a lock file not yet written', async () => {
    const path = lockFile();
    const held = await acquireLock(path, { purpose: 'mount label.a' });
    const told: string[] = [];
    const waiting = acquireLock(path, { pollMs: 10, onWait: (who) => told.push(who) });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await held.release();
    await (await waiting).release();
    expect(told).toEqual([
      expect.stringMatching(new RegExp(`^held by pid ${process.pid} \\(mount label.a\\) since `)),
    ]);

    writeFileSync(path, ''); // as between a holder's create and its write
    const quiet: string[] = [];
    await expect(
      acquireLock(path, { timeoutMs: 100, pollMs: 10, onWait: (who) => quiet.push(who) }),
    ).rejects.toThrow(/unreadable/);
    expect(quiet).toEqual([]);
  });

  it('release never removes a lock another holder has taken since', async () => {
    const path = lockFile();
    const first = await acquireLock(path);
    await first.release();
    const second = await acquireLock(path);
    await first.release();
    expect(existsSync(path)).toBe(true);
    await second.release();
    expect(existsSync(path)).toBe(false);
  });

  it('waits for a torn lock file to age before breaking it', async () => {
    const path = lockFile();
    writeFileSync(path, '');
    await expect(acquireLock(path, { timeoutMs: 200, pollMs: 20 })).rejects.toThrow();
    expect(readFileSync(path, 'utf8')).toBe('');
  }, 15_000);

  it('tells live processes from dead and recycled ones', () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(isProcessAlive(process.pid, processStartTime(process.pid))).toBe(true);
    expect(isProcessAlive(process.pid, 'other')).toBe(false);
    expect(isProcessAlive(deadPid())).toBe(false);
    expect(isProcessAlive(0)).toBe(false);
  });
});
