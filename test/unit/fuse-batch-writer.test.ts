/**
 * The writer of page-cache stores to /dev/fuse, against a plain file, on
 * both of its threads (the native module's thread-pool jobs, built by
 * `npm run build`, and the worker used without it): every message lands
 * whole and in order, each caller learns its own outcome, and nothing is
 * written once the writer is closed. The kernel side is covered by the
 * read-only mount tests in zkfs-coherence.test.ts.
 */
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { batchWriter } from '../../src/adapters/fuse/batch-writer.js';
import { createLogger } from '../../src/adapters/logger.js';

const log = createLogger({ level: 'error', write: () => {} });
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function scratchFile(): { path: string; fd: number } {
  const dir = mkdtempSync(join(tmpdir(), 'volkit-batch-'));
  const path = join(dir, 'out');
  const fd = openSync(path, 'w');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => closeSync(fd));
  return { path, fd };
}

describe('batchWriter', () => {
  it("writes from the native module's thread where it is built (npm test builds it)", () => {
    const { fd } = scratchFile();
    const writer = batchWriter(fd, log);
    cleanups.push(() => writer.close());
    expect(writer.thread).toBe('native');
  });
});

describe.each(['native', 'worker'] as const)('batchWriter on %s', (thread) => {
  it('writes every message whole and in order, across turns of the event loop', async () => {
    const { path, fd } = scratchFile();
    const writer = batchWriter(fd, log, { thread });
    cleanups.push(() => writer.close());
    const first = Array.from({ length: 100 }, (_, i) => writer.write(Buffer.from(`a${i};`)));
    await new Promise((resolve) => setImmediate(resolve));
    const second = Array.from({ length: 50 }, (_, i) => writer.write(Buffer.from(`b${i};`)));
    expect(await Promise.all([...first, ...second])).toEqual(Array(150).fill(null));
    const expected = [
      ...Array.from({ length: 100 }, (_, i) => `a${i};`),
      ...Array.from({ length: 50 }, (_, i) => `b${i};`),
    ].join('');
    expect(readFileSync(path, 'utf8')).toBe(expected);
  });

  it('tells each caller the error of its own write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'volkit-batch-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    // A descriptor open for reading only: every write fails, and says why.
    const fd = openSync(dir, 'r');
    cleanups.push(() => closeSync(fd));
    const writer = batchWriter(fd, log, { thread });
    cleanups.push(() => writer.close());
    const outcomes = await Promise.all([writer.write(Buffer.from('x')), writer.write(Buffer.from('y'))]);
    expect(outcomes.map((o) => o?.code)).toEqual(['EBADF', 'EBADF']);
  });

  it('writes nothing once closed, and answers what was still waiting as unwanted', async () => {
    const { path, fd } = scratchFile();
    const writer = batchWriter(fd, log, { thread });
    expect(await writer.write(Buffer.from('before;'))).toBeNull();
    const waiting = writer.write(Buffer.from('queued;'));
    expect(writer.close()).toBe(true);
    expect((await waiting)?.code).toBe('ENODEV');
    expect((await writer.write(Buffer.from('after;')))?.code).toBe('ENODEV');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(readFileSync(path, 'utf8')).toBe('before;');
  });
});

/** This process's thread count once it has held still for a while (earlier tests' threads may still be ending). */
async function settledThreads(): Promise<number> {
  const threads = () => readdirSync('/proc/self/task').length;
  let before = threads();
  for (let still = 0; still < 3; ) {
    await new Promise((r) => setTimeout(r, 50));
    const now = threads();
    still = now === before ? still + 1 : 0;
    before = now;
  }
  return before;
}

describe('batchWriter on the native thread', () => {
  it('starts one thread with the first batch, keeps it for the next, and ends it when closed', async () => {
    const { path, fd } = scratchFile();
    const writer = batchWriter(fd, log, { thread: 'native' });
    cleanups.push(() => writer.close());
    const threads = () => readdirSync('/proc/self/task').length;
    // The thread pool's threads start with their first job: start them now, so as not to count them.
    await new Promise((resolve) => setImmediate(resolve));
    const before = await settledThreads();
    expect(await writer.write(Buffer.from('one;'))).toBeNull();
    expect(threads()).toBe(before + 1);
    expect(await writer.write(Buffer.from('two;'))).toBeNull();
    expect(threads()).toBe(before + 1);
    expect(writer.close()).toBe(true);
    const deadline = Date.now() + 5000;
    while (threads() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(threads()).toBe(before);
    expect(readFileSync(path, 'utf8')).toBe('one;two;');
  });
});

/** Threads of this process named `zkfs-store`: the native writer's (store-writer.c names it). */
function storeThreads(): number {
  return readdirSync('/proc/self/task').filter((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'zkfs-store';
    } catch {
      return false; // ended meanwhile
    }
  }).length;
}

describe('batchWriter on the native thread, idle', () => {
  it('ends its thread after the idle time, and starts another for the next batch', async () => {
    const { path, fd } = scratchFile();
    const writer = batchWriter(fd, log, { thread: 'native', idleMs: 200 });
    cleanups.push(() => writer.close());
    expect(await writer.write(Buffer.from('one;'))).toBeNull();
    expect(storeThreads()).toBe(1);
    const deadline = Date.now() + 5000;
    while (storeThreads() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(storeThreads()).toBe(0);
    // The writer goes on: the next batch finds no thread and starts one.
    expect(await writer.write(Buffer.from('two;'))).toBeNull();
    expect(await writer.write(Buffer.from('three;'))).toBeNull();
    expect(storeThreads()).toBe(1);
    expect(readFileSync(path, 'utf8')).toBe('one;two;three;');
    expect(writer.close()).toBe(true);
  });
});

describe('batchWriter on a worker', () => {
  it('stops its thread when idle, and starts another for the next message', async () => {
    const { path, fd } = scratchFile();
    const threads = () => readdirSync('/proc/self/task').length;
    const writer = batchWriter(fd, log, { thread: 'worker', idleMs: 100 });
    cleanups.push(() => writer.close());
    expect(await writer.write(Buffer.from('one;'))).toBeNull();
    const busy = threads();
    const deadline = Date.now() + 5000;
    while (threads() >= busy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(threads()).toBe(busy - 1);
    expect(await writer.write(Buffer.from('two;'))).toBeNull();
    expect(readFileSync(path, 'utf8')).toBe('one;two;');
  });

  it('starts its thread when told writes are coming, and stops it again when none come', async () => {
    const { path, fd } = scratchFile();
    const threads = () => readdirSync('/proc/self/task').length;
    const writer = batchWriter(fd, log, { thread: 'worker', idleMs: 300 });
    cleanups.push(() => writer.close());
    const before = await settledThreads();
    writer.prepare();
    writer.prepare(); // once is enough
    expect(threads()).toBe(before + 1);
    const deadline = Date.now() + 5000;
    while (threads() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(threads()).toBe(before);
    writer.prepare();
    expect(await writer.write(Buffer.from('ready;'))).toBeNull();
    expect(threads()).toBe(before + 1);
    expect(readFileSync(path, 'utf8')).toBe('ready;');
  });
});
