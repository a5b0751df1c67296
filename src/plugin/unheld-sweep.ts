/**
 * Now and then, releases the mount references the engine will never release
 * (VolumeStore.releaseUnheld: it was killed while containers held volumes),
 * each volume between its requests, so that such a volume does not stay
 * mounted for good.
 */
import type { Logger } from '../adapters/logger.js';
import { type MountUse, readMountUse } from '../adapters/mount-holders.js';
import { errorMessage } from '../core/errors.js';
import type { Router } from './router.js';
import type { VolumeStore } from './volume-store.js';

export interface UnheldSweep {
  /** Stops sweeping; waits for a sweep under way. */
  stop(): Promise<void>;
}

export interface UnheldSweepOptions {
  store: Pick<VolumeStore, 'names' | 'releaseUnheld'>;
  router: Pick<Router, 'exclusive'>;
  /** --release-unheld in milliseconds; 0 sweeps nothing. */
  releaseUnheldMs: number;
  log: Logger;
}

/** Sweeps every half of the timeout, at least each second and at most each minute. */
export function startUnheldSweep(options: UnheldSweepOptions): UnheldSweep {
  if (options.releaseUnheldMs <= 0) return { stop: async () => {} };
  const everyMs = Math.min(60_000, Math.max(1000, options.releaseUnheldMs / 2));
  let running: Promise<void> | undefined;
  const sweep = async () => {
    // Read at most once a sweep, when a volume first needs it: a volume whose Mount came after it
    // was read is not released (its quiet time starts again), one whose container left meanwhile
    // is by the next sweep.
    let read: Promise<MountUse | undefined> | undefined;
    const readUse = () => {
      read ??= readMountUse();
      return read;
    };
    for (const name of options.store.names()) {
      await options.router
        .exclusive(name, () => options.store.releaseUnheld(name, readUse))
        .catch((error: unknown) => {
          options.log.error(
            `volume ${name}: could not release its unheld references: ${errorMessage(error)}`,
          );
        });
    }
  };
  const timer = setInterval(() => {
    if (running) return;
    running = sweep().finally(() => {
      running = undefined;
    });
  }, everyMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
