/**
 * zkfs's native module (src/native/, built into dist/native/ by
 * bin/build-native where a C compiler is present): the FUSE reader
 * (fuse-fast.c) and the page-cache store writer (store-writer.c). Optional:
 * without it requests are read, and stores written, from JavaScript.
 */
import { createRequire } from 'node:module';
import type { Logger } from '../logger.js';

export interface NativeReader {
  start(
    fd: number,
    bufferSize: number,
    cells: Float64Array,
    onRequest: (buf: Buffer, length: number) => void,
    /** `queue`: the io_uring queue whose failure ended reading, or -1 (reading /dev/fuse ended). */
    onEnd: (errno: number, queue: number) => void,
    onCycles: () => void,
  ): object;
  allow(reader: object, nodeId: number, openFlags: number, change: number): void;
  answered(reader: object): [number, number, number, number, number, number, number?];
  close(reader: object): void;
  /** Sets FUSE over io_uring up (fuse-ring.c): the number of queues; throws saying why it cannot. */
  prepareRing?(reader: object): number;
  /** FUSE_INIT has been answered with io_uring: the queues register with the kernel. */
  startRing?(reader: object): void;
  /** Sends a reply (to the ring entry its request came in, if it did) or notification: 0, or an errno. */
  send?(reader: object, message: Buffer): number;
  handleBase: number;
}

export interface NativeStoreWriter {
  /** A writer for `fd`, whose thread ends after `idleMs` (30 s) with nothing to write. */
  storeWriter(fd: number, idleMs?: number): object;
  /** Writes each of `lengths`' messages from `bytes` on the thread pool; `done` gets 0 or an errno for each. */
  writeBatch(writer: object, bytes: Buffer, lengths: number[], done: (errnos: number[]) => void): void;
  /** Nothing is written after this; true once no write is in progress (waited for up to `waitMs`). */
  closeWriter(writer: object, waitMs: number): boolean;
}

export type NativeModule = NativeReader & Partial<NativeStoreWriter>;

/** Where it is built, seen from this module in dist/, or in src/ when run from source (tsx: the bench's stub). */
const PATHS = ['../../native/fuse_fast.node', '../../../dist/native/fuse_fast.node'];

let loaded: { module: NativeModule | undefined; failures: string } | undefined;

/** The native module, or undefined (saying why at debug level) where it is not built. Loaded once. */
export function nativeModule(log: Logger): NativeModule | undefined {
  if (!loaded) {
    const load = createRequire(import.meta.url);
    const failures: string[] = [];
    let module: NativeModule | undefined;
    for (const path of PATHS) {
      try {
        const candidate = load(path) as NativeModule;
        if (typeof candidate.start === 'function') {
          module = candidate;
          break;
        }
      } catch (error) {
        failures.push((error as Error).message.split('\n')[0] ?? '');
      }
    }
    loaded = { module, failures: failures.join('; ') };
  }
  if (!loaded.module) log.debug(`no native module (${loaded.failures}); working in JavaScript`);
  return loaded.module;
}

/** The store writer of the native module, where it is built with one. */
export function nativeStoreWriter(log: Logger): NativeStoreWriter | undefined {
  const module = nativeModule(log);
  return typeof module?.writeBatch === 'function' ? (module as NativeStoreWriter) : undefined;
}
