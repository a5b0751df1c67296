/**
 * Now and then, looks at every volume, each in its turn between its
 * requests: reports one in use whose serving process died
 * (VolumeStore.reportDead), takes down one left mounted after its last
 * Unmount failed (VolumeStore.unmountUnused), and releases the references the engine will
 * never release (VolumeStore.releaseUnheld: it was killed while containers
 * held volumes), so that such a volume does not stay mounted for good.
 */
import type { Logger } from '../adapters/logger.js';
import { type MountUse, readMountUse } from '../adapters/mount-holders.js';
import { errorMessage } from '../core/errors.js';
import type { Router } from './router.js';
import type { VolumeStore } from './volume-store.js';

export interface VolumeSweep {
  /** Stops sweeping; waits for a sweep under way. */
  stop(): Promise<void>;
}

export interface VolumeSweepOptions {
  store: Pick<VolumeStore, 'names' | 'reportDead' | 'unmountUnused' | 'mayBeUnheld' | 'releaseUnheld'>;
  router: Pick<Router, 'exclusive'>;
  /** --release-unheld in milliseconds; 0 releases nothing. */
  releaseUnheldMs: number;
  log: Logger;
  /** What every process uses (readMountUse). */
  readUse?: () => Promise<MountUse | undefined>;
}

/** How often the sweep runs when it releases nothing. */
const DEAD_CHECK_MS = 30_000;

/**
 * Sweeps every half of the release timeout, at least each second and at
 * most each minute (each 30 s when nothing is released).
 */
export function startVolumeSweep(options: VolumeSweepOptions): VolumeSweep {
  const releasing = options.releaseUnheldMs > 0;
  const everyMs = releasing ? Math.min(60_000, Math.max(1000, options.releaseUnheldMs / 2)) : DEAD_CHECK_MS;
  const inTurn = async (name: string, what: string, task: () => Promise<unknown>) => {
    await options.router.exclusive(name, task).catch((error: unknown) => {
      options.log.error(`volume ${name}: could not ${what}: ${errorMessage(error)}`);
    });
  };
  const sweep = async () => {
    const candidates: string[] = [];
    for (const name of options.store.names()) {
      await inTurn(name, 'check its mount', async () => {
        await options.store.reportDead(name);
        await options.store.unmountUnused(name);
      });
      if (releasing && (await options.store.mayBeUnheld(name))) candidates.push(name);
    }
    if (candidates.length === 0) return;
    // Read once, before any volume's turn, so that no request waits while it is read. Reading it
    // early is safe: a volume whose container started since got a Mount since, which restarts its
    // quiet time; one whose container left since is released by the next sweep.
    const use = await (options.readUse ?? readMountUse)();
    for (const name of candidates) {
      await inTurn(name, 'release its unheld references', () =>
        options.store.releaseUnheld(name, async () => use),
      );
    }
  };
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = sweep()
      .catch((error: unknown) => {
        // Never fatal: the server goes on answering, and the next sweep tries again.
        options.log.error(`could not look at the volumes in use: ${errorMessage(error)}`);
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
