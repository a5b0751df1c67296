/**
 * dynamic-mounts: while a volume is mounted, matching disks that get attached
 * are added and disks that leave are lazily unmounted, within a few seconds.
 *
 * `simplectl mount` returns, so a dynamic volume gets a small detached watcher
 * process (src/cli/volume-watcher.ts) that `simplectl umount` stops; a
 * long-running server (the Docker plugin) may instead pass `watcher: 'none'`
 * to volumeMount and run `watchVolume` in-process. Both run the same pass,
 * `syncVolume`, under the state lock, whenever adapters/disk-watch.ts reports
 * a change (kernel uevent, or the 1 s sysfs poll).
 *
 * Exports: `watchVolume`, `syncVolume`, `ensureWatcher`, `stopWatcher`, `WatcherMode`.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnDetachedNode } from '../adapters/detached-process.js';
import { type DiskWatchOptions, watchDisks } from '../adapters/disk-watch.js';
import { queryPassphrase } from '../adapters/keys.js';
import { type HostIdentity, hostIdentity } from '../adapters/machine.js';
import { makeDirsSync } from '../adapters/make-dirs.js';
import { isProcessAlive, processStartTime } from '../adapters/processes.js';
import { canonicalDir } from '../adapters/real-path.js';
import { type StateSession, watcherLogDir, withStateLock } from '../adapters/volume-state.js';
import { setMount, volumeAtDir, type WatcherRecord } from '../core/assignments.js';
import { errorMessage, OperationError } from '../core/errors.js';
import { parseQuery, redactQuery, wantsEncryption } from '../core/query.js';
import type { CommandContext } from './context.js';
import { type SyncOutcome, syncMountedVolume, type VolumeSpec } from './volume-assemble.js';
import { survey } from './volume-survey.js';

export type WatcherMode = 'detached' | 'none';

/** The daemon's entry point, compiled next to this file's tree (dist/cli/volume-watcher.js). */
const WATCHER_ENTRY = fileURLToPath(new URL('../../dist/cli/volume-watcher.js', import.meta.url));

export interface WatchTarget {
  /** The volume root. */
  dir: string;
  stateDir: string;
  include: readonly string[];
  host?: HostIdentity;
  /**
   * A detached watcher's own pid: it acts only on the volume whose record names
   * it. After a volume is unmounted by hand and another mounted at its
   * directory, the first one's watcher must not take that one for its own.
   */
  watcherPid?: number;
}

export interface SyncResult extends SyncOutcome {
  /** False when the volume watched is no longer mounted at `dir` (another may be): the watcher should stop. */
  mounted: boolean;
}

/** One dynamic-mounts pass over the volume mounted at `dir`. */
export async function syncVolume(target: WatchTarget, ctx: CommandContext): Promise<SyncResult> {
  const host = target.host ?? (await hostIdentity());
  return withStateLock(target.stateDir, { purpose: `watch ${target.dir}` }, async (session) => {
    const found = await survey(session, { include: target.include, host }, ctx);
    const volume = volumeAtDir(session.state, await canonicalDir(target.dir));
    const ours =
      volume?.mount?.dynamic === true &&
      (target.watcherPid === undefined || volume.mount.watcher?.pid === target.watcherPid);
    if (!volume?.mount || !ours) return { mounted: false, added: [], removed: [] };
    const query = parseQuery(volume.name, volume.options);
    const passphrase = wantsEncryption(query)
      ? await queryPassphrase(query, { log: ctx.log, name: volume.name })
      : null;
    const spec: VolumeSpec = { name: volume.name, query, options: volume.options, passphrase };
    const outcome = await syncMountedVolume(spec, found.disks, { session, host, ctx });
    return { mounted: true, ...outcome };
  });
}

export interface VolumeWatcher {
  /** What feeds it: 'uevent(…)+poll' or 'poll'. */
  readonly source: string;
  /** Resolves when the watcher has stopped (stop() called, or the volume was unmounted). */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** Watches the volume at `target.dir` until stopped or until the volume is no longer mounted. */
export async function watchVolume(
  target: WatchTarget,
  ctx: CommandContext,
  options: Pick<DiskWatchOptions, 'mode' | 'intervalMs'> = {},
): Promise<VolumeWatcher> {
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let stopping = false;
  const pass = async (reason: string): Promise<void> => {
    if (stopping) return;
    ctx.log.debug(`watch ${target.dir}: ${reason}`);
    try {
      const result = await syncVolume(target, ctx);
      if (!result.mounted) {
        ctx.log.info(`watch ${target.dir}: the volume it watches is no longer mounted there; stopping`);
        void stop();
      }
    } catch (error) {
      ctx.log.error(`watch ${target.dir}: ${errorMessage(error)}`);
    }
  };
  const watch = await watchDisks(pass, { ...options, logger: ctx.log });
  ctx.log.info(`watching ${target.dir} (${watch.source})`);
  const stop = async (): Promise<void> => {
    if (stopping) return done;
    stopping = true;
    // Waits for the pass under way (watchDisks runs one at a time): a step cut short (a disk
    // mounted but not recorded, a mapping opened and left) is worse than a late stop.
    await watch.stop();
    finish();
  };
  // Catch up with whatever changed between the mount and now.
  await pass('start');
  return { source: watch.source, done, stop };
}

/** Where a volume's detached watcher writes its log. */
function watcherLogPath(stateDir: string, dir: string): string {
  const tag = createHash('sha256').update(dir).digest('hex').slice(0, 16);
  return join(watcherLogDir(stateDir), `${tag}.log`);
}

/**
 * Makes sure the volume `name` (mounted) has a live detached watcher when
 * `mode` is 'detached': starts one and records it otherwise. Call under the lock.
 */
export async function ensureWatcher(
  session: StateSession,
  name: string,
  options: { stateDir: string; include: readonly string[]; mode: WatcherMode },
  ctx: CommandContext,
): Promise<void> {
  const mount = session.state.volumes[name]?.mount;
  if (!mount || options.mode === 'none') return;
  if (mount.watcher && isProcessAlive(mount.watcher.pid, mount.watcher.startTime)) return;
  if (!existsSync(WATCHER_ENTRY)) {
    throw new OperationError(`the volume watcher ${WATCHER_ENTRY} is missing (run npm run build)`);
  }
  const log = watcherLogPath(options.stateDir, mount.dir);
  makeDirsSync(watcherLogDir(options.stateDir), 0o700);
  const args = ['--dir', mount.dir, '--state-dir', options.stateDir];
  for (const glob of options.include) args.push('--include', glob);
  const pid = await spawnDetachedNode(WATCHER_ENTRY, args, log);
  const watcher: WatcherRecord = { pid, startTime: processStartTime(pid) ?? '', log };
  ctx.log.info(`volume ${redactQuery(name)}: watcher started (pid ${pid}, log ${log})`);
  await session.commit(setMount(session.state, name, { ...mount, watcher }));
}

/**
 * Stops a detached watcher: SIGTERM to it alone, so that a tool its pass is running
 * (mount, cryptsetup, mkfs) finishes and the pass with it, then SIGKILL to its whole
 * process group (its uevent helper too) after `graceMs`; a dead one is fine.
 */
export async function stopWatcher(watcher: WatcherRecord, graceMs = 30_000): Promise<void> {
  if (!isProcessAlive(watcher.pid, watcher.startTime)) return;
  try {
    process.kill(watcher.pid, 'SIGTERM');
  } catch {
    // gone meanwhile
  }
  const deadline = Date.now() + graceMs;
  while (isProcessAlive(watcher.pid, watcher.startTime)) {
    if (Date.now() > deadline) {
      try {
        process.kill(-watcher.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
