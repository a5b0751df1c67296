/**
 * Writing many notifications to /dev/fuse from one worker thread, in
 * batches: each message is still its own write(2) (the device takes one
 * message per write), but a batch costs one hand-over between threads
 * instead of one thread-pool job, with its two wake-ups, per message. A cold
 * walk of a read-only mount stores thousands of files into the page cache
 * this way.
 *
 * Not the event loop: a store waits for the page lock of a read the kernel
 * has in flight, and only the event loop answers reads.
 *
 * The worker is plain CommonJS handed over as text, so it runs the same
 * from the compiled package and from the sources under test.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.js';

/**
 * Flags shared with the worker, so that it never writes to a descriptor
 * number the device has closed (and the process may have reused): the
 * worker raises WRITING and then checks CLOSED; close() raises CLOSED and
 * then waits for WRITING to fall. Sequentially consistent atomics make
 * sure at least one of the two sees the other.
 */
const WRITING = 0;
const CLOSED = 1;

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

export type WriteOutcome = NodeJS.ErrnoException | null;

export interface BatchWriter {
  /** Writes one message; resolves with the error the kernel gave, if any. */
  write(message: Buffer): Promise<WriteOutcome>;
  /**
   * Starts the thread now, when writes are about to come: starting it takes
   * tens of milliseconds, which the first writes would otherwise wait out.
   * It stops again after the idle time if none comes.
   */
  prepare(): void;
  /**
   * Stops writing, waiting for a write in progress: after it returns true
   * the descriptor may be closed. Messages not yet written resolve ENODEV.
   */
  close(): boolean;
}

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`write to /dev/fuse: ${code}`), { code });
}

/**
 * A writer for `fd` whose worker starts with the first message and stops
 * after `idleMs` with nothing to write.
 */
export function batchWriter(fd: number, log: Logger, idleMs = IDLE_MS): BatchWriter {
  let worker: Worker | undefined;
  let closed = false;
  const state = new Int32Array(new SharedArrayBuffer(8));
  /** Messages of the current event-loop turn, sent together. */
  let queued: Buffer[] = [];
  let waiting: ((outcome: WriteOutcome) => void)[] = [];
  /** Resolvers of the batches the worker has, oldest first (it answers in order). */
  const sent: ((outcome: WriteOutcome) => void)[][] = [];
  let idle: NodeJS.Timeout | undefined;

  const stopWhenIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (sent.length > 0 || queued.length > 0 || !worker) return;
      void worker.terminate();
      worker = undefined;
    }, idleMs);
    idle.unref();
  };

  const failAll = (code: string) => {
    const gone = errnoError(code);
    for (const batch of sent.splice(0)) for (const resolve of batch) resolve(gone);
    for (const resolve of waiting) resolve(gone);
    queued = [];
    waiting = [];
  };

  const start = (): Worker => {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd, state: state.buffer } });
    // The mount's lifetime is the device's, not this thread's.
    w.unref();
    w.on('message', (codes: (string | null)[]) => {
      const batch = sent.shift() ?? [];
      for (let i = 0; i < batch.length; i++) {
        const code = codes[i];
        batch[i]?.(code ? errnoError(code) : null);
      }
      if (sent.length === 0) stopWhenIdle();
    });
    w.on('error', (error) => {
      log.warn(`page-cache writer stopped: ${String(error)}`);
      worker = undefined;
      failAll('EIO');
    });
    return w;
  };

  const flush = () => {
    if (queued.length === 0) return;
    const lengths = queued.map((m) => m.length);
    /*
     * One buffer for the batch, shared rather than transferred: transferring
     * detaches it, and the first detached buffer in a process makes V8 drop
     * every optimised function that touches a typed array (all of the FUSE
     * and ZooKeeper codecs) and guard each such access ever after.
     */
    const buffer = new SharedArrayBuffer(lengths.reduce((a, b) => a + b, 0));
    const bytes = new Uint8Array(buffer);
    let at = 0;
    for (const m of queued) {
      bytes.set(m, at);
      at += m.length;
    }
    sent.push(waiting);
    queued = [];
    waiting = [];
    clearTimeout(idle);
    worker ??= start();
    worker.postMessage({ buffer, lengths });
  };

  return {
    prepare() {
      if (closed || worker) return;
      worker = start();
      stopWhenIdle();
    },
    write(message) {
      if (closed) return Promise.resolve(errnoError('ENODEV'));
      return new Promise((resolve) => {
        queued.push(message);
        waiting.push(resolve);
        if (queued.length === 1) queueMicrotask(flush);
      });
    },
    close() {
      if (!closed) {
        closed = true;
        clearTimeout(idle);
        failAll('ENODEV');
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
