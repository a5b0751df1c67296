/**
 * Reads FUSE requests from a mounted /dev/fuse descriptor and hands each to
 * a listener, one read per request.
 *
 * The fastest way is the native reader (src/native/fuse-fast.c, built by
 * `npm run build` where a C compiler is present): it polls the descriptor
 * on the event loop too, and answers re-opens for reading without entering
 * JavaScript (FastOpens below). Without it, or with VOLKIT_FUSE_READER set
 * to `event-loop` or `thread-pool`, requests are read in JavaScript.
 *
 * The fast JavaScript way watches the descriptor with the event loop's own epoll, so a
 * request wakes the thread that answers it. A blocking read on libuv's
 * thread pool costs a second thread wake-up per request (pool thread, then
 * event loop), which measured as most of a cached request's wall time. Node
 * has no public API to poll a character device, so the descriptor is given
 * to a libuv pipe handle (uv_pipe_open accepts any pollable descriptor) with
 * a user buffer, which makes one read(2), and so one request, per callback.
 * Where that binding is missing (a later Node), or VOLKIT_FUSE_READER is
 * `thread-pool` (to compare the two, and to test the fallback), reads go to
 * the thread pool.
 */
import { closeSync, read, writeSync } from 'node:fs';
import { Socket, type SocketConstructorOpts } from 'node:net';
import { constants } from 'node:os';
import type { Logger } from '../logger.js';
import { type NativeReader, nativeModule } from './native-module.js';

/** Handles one request, given the buffer it arrived in (valid until it returns) and its length. */
export type RequestListener = (buf: Buffer, length: number) => void;

/** How requests are read: see the top of this file, and src/native/fuse-fast.c. */
export type ReaderKind = 'native' | 'event-loop' | 'thread-pool';

/** The reader owns the descriptor from now on: only it closes it. */
export interface RequestReader {
  readonly kind: ReaderKind;
  /** Resolves when reading has ended: the connection is gone or the reader was closed. */
  readonly ended: Promise<void>;
  /** Whether the descriptor is still open, so that replies may be written to it. */
  isOpen(): boolean;
  /** Stops reading and closes the descriptor. */
  close(): void;
  /** Opens answered without JavaScript (src/native/fuse-fast.c), where that reader runs. */
  readonly fast?: FastOpens;
  /** Sends a reply or notification: 0, or the errno that refused it. */
  send(message: Buffer): number;
  /** Requests over io_uring (src/native/fuse-ring.c), where the native reader can take them. */
  readonly ring?: RequestRing;
}

/**
 * FUSE over io_uring: a queue per CPU, each served by a native thread kept
 * on its CPU, so that a program's request and its answer never wake a
 * thread on another CPU. The kernel offers it in FUSE_INIT where the fuse
 * module's enable_uring parameter is Y (Linux 6.14 and later).
 */
export interface RequestRing {
  /** Sets the queues up before FUSE_INIT is answered: false (saying why in the log) where they cannot be. */
  prepare(): boolean;
  /** FUSE_INIT has been answered with io_uring: the queues start taking requests. */
  start(): void;
  /** The queues taking requests: 0 before start(), or without io_uring. */
  queues(): number;
}

/**
 * Read-only opens that the native reader answers by itself: a node the
 * daemon has just opened or listed from memory may be opened the same way,
 * until anything changes.
 */
export interface FastOpens {
  /**
   * OPEN for reading of `nodeId` may be answered with `openFlags` until
   * changed() is next called; given `since` (from changes()), only if it was
   * not called since then either.
   */
  allow(nodeId: number, openFlags: number, since?: number): void;
  /** Something the answer to an OPEN depends on has changed: every allowance so far lapses. */
  changed(): void;
  /** Where changes stand now, for allow(). */
  changes(): number;
  /** Whether `fh` is a handle the native reader gave out (reads through it go by the node's path). */
  isFastHandle(fh: number | bigint): boolean;
  /** What the native reader answered by itself so far, and how its polling after those answers went. */
  answered(): NativeAnswers;
  /**
   * How long, in microseconds, to keep polling for the next request after
   * answering one without JavaScript; 0: sleep at once (busy-poll.ts decides).
   */
  pollWindow(us: number): void;
  /**
   * Where the cycles of requests answered without JavaScript go, in
   * batches: milliseconds from a request's arrival to the next one's, and
   * whether a polling window followed its answer.
   */
  onCycle(listener: CycleListener): void;
}

export interface NativeAnswers {
  opens: number;
  releases: number;
  /** GETXATTR of a name outside user.zk.*, answered ENODATA. */
  xattrs: number;
  /** Polling windows opened after those answers, and the gaps after them scored (busy-poll.ts). */
  windows: number;
  hits: number;
  misses: number;
  /** Times an io_uring queue's thread left idle priority, having waited for its CPU (fuse-ring.c). */
  raised: number;
}

export type CycleListener = (ms: number, polled: boolean) => void;

/** Read errors that mean the connection has ended, not that something is wrong. */
const ENDED = new Set(['ENODEV', 'ECONNABORTED', 'EBADF']);
/** Read errors after which the next read may succeed. */
const RETRY = new Set(['ENOENT', 'EINTR', 'EAGAIN']);
/** Thread-pool reads kept waiting at once, so a request never waits for one to be issued. */
const POOL_READERS = 2;

interface PipeHandle {
  open(fd: number): number;
}
interface PipeWrap {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}

function pipeWrap(): PipeWrap | undefined {
  try {
    const binding = (process as unknown as { binding(name: string): PipeWrap }).binding('pipe_wrap');
    return typeof binding?.Pipe === 'function' ? binding : undefined;
  } catch {
    return undefined;
  }
}

/** A reader's `ended` promise, and what resolves it. */
function endSignal(): { ended: Promise<void>; end: () => void } {
  let end: () => void = () => {};
  const ended = new Promise<void>((resolve) => {
    end = resolve;
  });
  return { ended, end };
}

function describe(failure: unknown): string {
  return failure instanceof Error ? (failure.stack ?? failure.message) : String(failure);
}

/** What every way of reading needs: readRequests()'s arguments, the listener made safe. */
interface ReaderSetup {
  fd: number;
  bufferSize: number;
  onRequest: RequestListener;
  log: Logger;
  beforeClose: () => void;
}

/**
 * Starts reading requests of up to `bufferSize` bytes from `fd`.
 * `beforeClose` runs once, just before the descriptor is closed, whichever
 * way that happens: other threads writing to it must stop first.
 */
export function readRequests(
  fd: number,
  bufferSize: number,
  onRequest: RequestListener,
  log: Logger,
  beforeClose: () => void = () => {},
): RequestReader {
  const handle = (buf: Buffer, length: number) => {
    try {
      onRequest(buf, length);
    } catch (failure) {
      log.error(`FUSE request handler: ${describe(failure)}`);
    }
  };
  const setup: ReaderSetup = { fd, bufferSize, onRequest: handle, log, beforeClose };
  const choice = process.env.VOLKIT_FUSE_READER;
  const native = choice === 'thread-pool' || choice === 'event-loop' ? undefined : nativeModule(log);
  if (native) {
    try {
      return readNatively(native, setup);
    } catch (error) {
      log.warn(`the native FUSE reader could not start (${(error as Error).message}); reading in JavaScript`);
    }
  }
  const inLoop = choice === 'thread-pool' ? undefined : readInEventLoop(setup);
  if (inLoop) return inLoop;
  log.info('reading /dev/fuse on the thread pool: each request costs one more thread wake-up');
  return readOnThreadPool(setup);
}

/** The cells of the array shared with the native reader (fuse-fast.c lays it out alike). */
const CELL_CHANGES = 0;
const CELL_WINDOW = 1;
const CELL_CYCLES = 2;
const CELL_RING = 3;
/** Cycles the ring holds; the C side tells JavaScript when a quarter of them are new. */
const CYCLE_RING = 256;

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

/** ENOENT for 2, and so on. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? String(errno);
}

function readNatively(native: NativeReader, setup: ReaderSetup): RequestReader {
  const { fd, bufferSize, onRequest, log, beforeClose } = setup;
  // Shared with the C side, which reads and writes it without a call (fuse-fast.c):
  // cell 0 counts changes (a double never wraps round); cell 1 is the window to poll
  // for after its own answers; cell 2 counts the cycles it has left in the ring after.
  const cells = new Float64Array(CELL_RING + CYCLE_RING);
  let drained = 0;
  let cycleListener: CycleListener = () => {};
  const drain = () => {
    const written = cells[CELL_CYCLES] as number;
    // Cycles overwritten before they were read are lost: trials only need a sample.
    for (let k = Math.max(drained, written - CYCLE_RING); k < written; k++) {
      const value = cells[CELL_RING + (k % CYCLE_RING)] as number;
      cycleListener(value >= 0 ? value : -1 - value, value >= 0);
    }
    drained = written;
  };
  let open = true;
  const { ended, end: resolveEnded } = endSignal();
  const close = () => {
    if (!open) return;
    open = false;
    native.close(reader);
    beforeClose();
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    resolveEnded();
  };
  const reader = native.start(
    fd,
    bufferSize,
    cells,
    (buf, length) => {
      // A request JavaScript answers ends any cycle of one answered natively: trials see them in order.
      if (cells[CELL_CYCLES] !== drained) drain();
      onRequest(buf, length);
    },
    (errno, queue) => {
      const code = errnoName(errno);
      if (queue >= 0) {
        // Its CPU's requests would wait for ever: closing the descriptor ends the connection, so they fail.
        log.error(
          `FUSE requests over io_uring: queue ${queue} failed (${code}); ending the mount, as programs on CPU ${queue} would wait for ever`,
        );
      } else if (!ENDED.has(code)) log.warn(`reading /dev/fuse: ${code}`);
      close();
    },
    drain,
  );
  const base = native.handleBase;
  let queues = 0;
  let started = false;
  const ring: RequestRing = {
    prepare: () => {
      if (!native.prepareRing) return false;
      try {
        queues = native.prepareRing(reader);
        return true;
      } catch (error) {
        log.info(`FUSE over io_uring is offered, but ${(error as Error).message}: reading /dev/fuse`);
        return false;
      }
    },
    start: () => {
      if (queues === 0 || !native.startRing) return;
      native.startRing(reader);
      started = true;
    },
    queues: () => (started ? queues : 0),
  };
  const send = (message: Buffer): number =>
    native.send ? native.send(reader, message) : sendDirect(fd, message);
  const fast: FastOpens = {
    allow: (nodeId, openFlags, since = cells[CELL_CHANGES] as number) => {
      // An allowance made at an earlier count has lapsed already: the native side never matches it.
      if (open) native.allow(reader, nodeId, openFlags, since);
    },
    changed: () => {
      cells[CELL_CHANGES] = (cells[CELL_CHANGES] as number) + 1;
    },
    changes: () => cells[CELL_CHANGES] as number,
    isFastHandle: (fh) => (typeof fh === 'bigint' ? fh >= BigInt(base) : fh >= base),
    answered: () => {
      const [opens, releases, xattrs, windows, hits, misses, raised = 0] = native.answered(reader);
      return { opens, releases, xattrs, windows, hits, misses, raised };
    },
    pollWindow: (us) => {
      cells[CELL_WINDOW] = us;
    },
    onCycle: (listener) => {
      cycleListener = listener;
    },
  };
  return { kind: 'native', ended, isOpen: () => open, close, fast, send, ring };
}

/** Writes a message to the descriptor: 0, or the errno that refused it. */
export function sendDirect(fd: number, message: Buffer): number {
  try {
    writeSync(fd, message);
    return 0;
  } catch (error) {
    return -((error as NodeJS.ErrnoException).errno ?? -constants.errno.EIO);
  }
}

function readInEventLoop(setup: ReaderSetup): RequestReader | undefined {
  const { fd, bufferSize, onRequest, log, beforeClose } = setup;
  const binding = pipeWrap();
  if (!binding) return undefined;
  const pipe = new binding.Pipe(binding.constants.SOCKET);
  const status = pipe.open(fd);
  if (status !== 0) {
    (pipe as { close?: () => void }).close?.();
    log.debug(
      `polling /dev/fuse from the event loop failed (libuv error ${status}); reading on the thread pool`,
    );
    return undefined;
  }
  const buffer = Buffer.allocUnsafe(bufferSize);
  // `handle` is an undocumented option of net.Socket (how Node wraps its own handles), absent from its types.
  const socket = new Socket({
    handle: pipe,
    readable: true,
    writable: false,
    onread: {
      buffer,
      callback: (length: number) => {
        onRequest(buffer, length);
        return true;
      },
    },
  } as SocketConstructorOpts);
  // A read error destroys the socket from inside net (libuv then closes the
  // descriptor at once), so the hook goes in front of destroy itself.
  const destroy = socket.destroy.bind(socket);
  let closing = false;
  socket.destroy = (error?: Error) => {
    if (!closing) {
      closing = true;
      beforeClose();
    }
    return destroy(error);
  };
  const ended = new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
  });
  socket.on('error', (error: NodeJS.ErrnoException) => {
    if (!ENDED.has(error.code ?? '')) log.warn(`reading /dev/fuse: ${error.message}`);
  });
  // A read error destroys the socket, and with it (libuv closes a pipe's
  // descriptor) the descriptor: `destroyed` is set before that happens.
  return {
    kind: 'event-loop',
    ended,
    isOpen: () => !socket.destroyed,
    send: (message) => sendDirect(fd, message),
    close: () => {
      socket.destroy();
    },
  };
}

function readOnThreadPool(setup: ReaderSetup): RequestReader {
  const { fd, bufferSize, onRequest, log, beforeClose } = setup;
  let stopped = false;
  let open = true;
  let readers = POOL_READERS;
  const { ended, end: resolveEnded } = endSignal();
  const readLoop = () => {
    const buf = Buffer.allocUnsafe(bufferSize);
    const done = () => {
      readers--;
      if (readers === 0) resolveEnded();
    };
    const next = () => {
      if (stopped) return done();
      read(fd, buf, 0, bufferSize, null, (error, length) => {
        if (error) {
          if (RETRY.has(error.code ?? '')) return next();
          if (!ENDED.has(error.code ?? '') && !stopped) log.warn(`reading /dev/fuse: ${error.message}`);
          return done();
        }
        onRequest(buf, length);
        next();
      });
    };
    next();
  };
  for (let i = 0; i < POOL_READERS; i++) readLoop();
  return {
    kind: 'thread-pool',
    ended,
    isOpen: () => open,
    send: (message) => sendDirect(fd, message),
    close: () => {
      stopped = true;
      if (!open) return;
      open = false;
      beforeClose();
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    },
  };
}
