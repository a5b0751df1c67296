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
  store: Pick<VolumeStore, 'names' | 'mayBeUnheld' | 'releaseUnheld'>;
  router: Pick<Router, 'exclusive'>;
  /** --release-unheld in milliseconds; 0 sweeps nothing. */
  releaseUnheldMs: number;
  log: Logger;
  /** What every process uses (readMountUse). */
  readUse?: () => Promise<MountUse | undefined>;
}

/** Sweeps every half of the timeout, at least each second and at most each minute. */
export function startUnheldSweep(options: UnheldSweepOptions): UnheldSweep {
  if (options.releaseUnheldMs <= 0) return { stop: async () => {} };
  const everyMs = Math.min(60_000, Math.max(1000, options.releaseUnheldMs / 2));
  let running: Promise<void> | undefined;
  const sweep = async () => {
    const candidates: string[] = [];
    for (const name of options.store.names()) {
      if (await options.store.mayBeUnheld(name)) candidates.push(name);
    }
    if (candidates.length === 0) return;
    // Read once, before any volume's turn, so that no request waits while it is read. Reading it
    // early is safe: a volume whose container started since got a Mount since, which restarts its
    // quiet time; one whose container left since is released by the next sweep.
    const use = await (options.readUse ?? readMountUse)();
    for (const name of candidates) {
      await options.router
        .exclusive(name, () => options.store.releaseUnheld(name, async () => use))
        .catch((error: unknown) => {
          options.log.error(
            `volume ${name}: could not release its unheld references: ${errorMessage(error)}`,
          );
        });
    }
  };
  const timer = setInterval(() => {
    if (running) return;
    running = sweep()
      .catch((error: unknown) => {
        // Never fatal: the server goes on answering, and the next sweep tries again.
        options.log.error(`could not look for unheld mount references: ${errorMessage(error)}`);
      })
      .finally(() => {
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
