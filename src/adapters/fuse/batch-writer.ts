/**
 * Writing many notifications to /dev/fuse off the event loop, in batches:
 * each message is still its own write(2) (the device takes one message per
 * write), but a batch costs one hand-over between threads instead of one
 * thread-pool job, with its two wake-ups, per message. A cold walk stores
 * thousands of files into the page cache this way.
 *
 * Not the event loop: a store waits for the page lock of a read the kernel
 * has in flight, and only the event loop answers reads.
 *
 * A batch goes as soon as its turn of the event loop ends, without waiting
 * for the one before: a batch that waited for the event loop to hear that
 * the last one was written (the loop being busy answering the walk) came
 * too late, and a cold walk sent 560 READs instead of 335. One thread
 * writes them, in order. Where zkfs's native module is built, that is a
 * plain thread of its own (src/native/store-writer.c), which starts in
 * well under a millisecond and ends after 30 s with nothing to write.
 * Without it, a worker thread, which takes tens of milliseconds to start
 * and holds about 8 MB while it runs.
 */
import { getSystemErrorName } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.js';
import { type NativeStoreWriter, nativeStoreWriter } from './native-module.js';

export type WriteOutcome = NodeJS.ErrnoException | null;

export interface BatchWriter {
  /** Writes one message; resolves with the error the kernel gave, if any. */
  write(message: Buffer): Promise<WriteOutcome>;
  /**
   * Gets the writing thread ready now, when writes are about to come: a
   * worker takes tens of milliseconds to start, which the first writes
   * would otherwise wait out. It stops again after the idle time if none
   * comes. Nothing to do for the native thread, which starts at once.
   */
  prepare(): void;
  /**
   * Stops writing, waiting for a write in progress: after it returns true
   * the descriptor may be closed. Messages not yet written resolve ENODEV.
   */
  close(): boolean;
  /** Which thread writes: the native module's, or a worker. */
  readonly thread: 'native' | 'worker';
}

export interface BatchWriterOptions {
  /** A thread with nothing to write for this long is stopped (a worker after 5 min, the native thread after 30 s). */
  idleMs?: number;
  /** Which thread writes; by default the native module's, where it is built. */
  thread?: 'native' | 'worker';
}

/** Writes a batch of messages, in order; `done` gets each one's error code or null. */
interface Thread {
  send(messages: Buffer[], done: (codes: (string | null)[]) => void): void;
  prepare(): void;
  /** Nothing is written after this; true once no write is in progress. */
  close(): boolean;
}

/** How long close() waits for a write in progress (the connection is aborted or gone by then). */
const CLOSE_WAIT_MS = 2000;
/**
 * A worker with nothing to write for this long is stopped (its thread holds
 * about 8 MB); the next store starts another, which takes about 20 ms. Not
 * sooner: the pages a mount stored are often dropped by the kernel while it
 * is idle, and the walk that then finds them gone (page-store.ts) is the
 * first to store anything; in the 20 ms a start took, one such walk had
 * read 214 of its 500 files one READ each, the stores arriving too late.
 */
const IDLE_MS = 5 * 60_000;

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`write to /dev/fuse: ${code}`), { code });
}

/** A writer for `fd`. */
export function batchWriter(fd: number, log: Logger, options: BatchWriterOptions = {}): BatchWriter {
  const native = options.thread === 'worker' ? undefined : nativeStoreWriter(log);
  if (options.thread === 'native' && !native) throw new Error('the native store writer is not built');
  const thread = native
    ? nativeThread(native, fd, log, options.idleMs)
    : workerThread(fd, log, options.idleMs ?? IDLE_MS);
  let closed = false;
  /** Messages waiting for the next batch. */
  let queued: Buffer[] = [];
  let waiting: ((outcome: WriteOutcome) => void)[] = [];

  const flush = () => {
    if (closed || queued.length === 0) return;
    const messages = queued;
    const batch = waiting;
    queued = [];
    waiting = [];
    thread.send(messages, (codes) => {
      for (let i = 0; i < batch.length; i++) {
        const code = codes[i];
        batch[i]?.(code ? errnoError(code) : null);
      }
    });
  };

  return {
    thread: native ? 'native' : 'worker',
    prepare() {
      if (!closed) thread.prepare();
    },
    write(message) {
      if (closed) return Promise.resolve(errnoError('ENODEV'));
      return new Promise((resolve) => {
        queued.push(message);
        waiting.push(resolve);
        // The messages of this turn of the event loop go together.
        if (queued.length === 1) queueMicrotask(flush);
      });
    },
    close() {
      if (!closed) {
        closed = true;
        const gone = errnoError('ENODEV');
        for (const resolve of waiting) resolve(gone);
        queued = [];
        waiting = [];
      }
      return thread.close();
    },
  };
}

/** Batches written by the native module's thread. */
function nativeThread(native: NativeStoreWriter, fd: number, log: Logger, idleMs?: number): Thread {
  const writer = native.storeWriter(fd, idleMs);
  let closed = false;
  return {
    send(messages, done) {
      if (closed) {
        done(messages.map(() => 'ENODEV'));
        return;
      }
      try {
        const lengths = messages.map((m) => m.length);
        native.writeBatch(writer, Buffer.concat(messages), lengths, (errnos) =>
          done(errnos.map((errno) => (errno === 0 ? null : getSystemErrorName(-errno)))),
        );
      } catch (error) {
        log.warn(`page-cache writer: ${(error as Error).message}`);
        done(messages.map(() => 'EIO'));
      }
    },
    prepare() {},
    close() {
      closed = true;
      return native.closeWriter(writer, CLOSE_WAIT_MS);
    },
  };
}

/**
 * Flags shared with the worker, so that it never writes to a descriptor
 * number the device has closed (and the process may have reused): the
 * worker raises WRITING and then checks CLOSED; close() raises CLOSED and
 * then waits for WRITING to fall. Sequentially consistent atomics make
 * sure at least one of the two sees the other.
 */
const WRITING = 0;
const CLOSED = 1;

/** The worker, plain CommonJS handed over as text, so it runs the same from the compiled package and from the sources under test. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const state = new Int32Array(workerData.state);
parentPort.on('message', ({ buffer, lengths }) => {
  const bytes = new Uint8Array(buffer);
  let at = 0;
  const codes = lengths.map((length) => {
    const message = bytes.subarray(at, at + length);
    at += length;
    Atomics.store(state, ${WRITING}, 1);
    try {
      if (Atomics.load(state, ${CLOSED}) === 1) return 'ENODEV';
      writeSync(workerData.fd, message);
      return null;
    } catch (error) {
      return error && error.code ? error.code : String(error);
    } finally {
      Atomics.store(state, ${WRITING}, 0);
      Atomics.notify(state, ${WRITING});
    }
  });
  parentPort.postMessage(codes);
});
`;

/** Batches written by a worker thread that starts with the first batch and stops after `idleMs` with nothing to write. */
function workerThread(fd: number, log: Logger, idleMs: number): Thread {
  let worker: Worker | undefined;
  let closed = false;
  const state = new Int32Array(new SharedArrayBuffer(8));
  /** The batches the worker has, oldest first (it answers in order): their callbacks and sizes. */
  const pending: { done: (codes: (string | null)[]) => void; count: number }[] = [];
  let idle: NodeJS.Timeout | undefined;

  const stopWhenIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (pending.length > 0 || !worker) return;
      void worker.terminate();
      worker = undefined;
    }, idleMs);
    idle.unref();
  };

  const fail = (code: string) => {
    for (const batch of pending.splice(0)) batch.done(Array(batch.count).fill(code));
  };

  const start = (): Worker => {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd, state: state.buffer } });
    // The mount's lifetime is the device's, not this thread's.
    w.unref();
    w.on('message', (codes: (string | null)[]) => {
      const batch = pending.shift();
      if (pending.length === 0) stopWhenIdle();
      batch?.done(codes);
    });
    w.on('error', (error) => {
      log.warn(`page-cache writer stopped: ${String(error)}`);
      worker = undefined;
      fail('EIO');
    });
    return w;
  };

  return {
    send(messages, done) {
      if (closed) {
        done(messages.map(() => 'ENODEV'));
        return;
      }
      /*
       * Copied into shared memory rather than transferred: transferring
       * detaches the buffer, and the first detached buffer in a process
       * makes V8 drop every optimised function that touches a typed array
       * (all of the FUSE and ZooKeeper codecs) and guard each such access
       * ever after.
       */
      const lengths = messages.map((m) => m.length);
      const buffer = new SharedArrayBuffer(lengths.reduce((a, b) => a + b, 0));
      const bytes = new Uint8Array(buffer);
      let at = 0;
      for (const m of messages) {
        bytes.set(m, at);
        at += m.length;
      }
      clearTimeout(idle);
      pending.push({ done, count: lengths.length });
      worker ??= start();
      worker.postMessage({ buffer, lengths });
    },
    prepare() {
      if (closed || worker) return;
      worker = start();
      stopWhenIdle();
    },
    close() {
      if (!closed) {
        closed = true;
        clearTimeout(idle);
        fail('ENODEV');
        void worker?.terminate();
        worker = undefined;
      }
      Atomics.store(state, CLOSED, 1);
      const deadline = Date.now() + CLOSE_WAIT_MS;
      while (Atomics.load(state, WRITING) === 1) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        Atomics.wait(state, WRITING, 1, left);
      }
      return true;
    },
  };
}
