/**
 * `simplectl umount DIR` (and the simple plugin's Unmount): stop the volume's
 * watcher, unmount its disks, then the root, then close their LUKS mappings;
 * a disk or root that is busy puts back the disks already unmounted.
 * The disks stay assigned to the volume (same disks, same numbers next time)
 * unless `release` is given; `volumeRelease` frees an unmounted volume's disks.
 *
 * Unmounting a directory that holds no volume throws NotMountedError, so a
 * caller that wants "unmount if mounted" catches exactly that.
 *
 * Only the volume's own mounts are taken down: the root, and the disks mounted
 * directly on it (the root is a read-only tmpfs simplectl made, so only
 * simplectl made mount points in it; one a crash left out of the state is
 * still unmounted). Anything mounted deeper, inside a disk (a user's mount,
 * another simplectl volume), is not ours: umount refuses, like umount(8)'s
 * "target is busy", names it, and unmounts nothing, with --lazy too (a lazy
 * detach would still take the user's mount away from everyone).
 *
 * Exports: `volumeUmount`, `volumeRelease`, `NotMountedError`.
 */
import { isBusyError, isVolumeRoot, unmount } from '../adapters/mount.js';
import { type MountEntry, mountAt, mountsOn, readMountTable } from '../adapters/mountinfo.js';
import { canonicalDir } from '../adapters/real-path.js';
import { loadState, resolveStateDir, withStateLock } from '../adapters/volume-state.js';
import {
  handOverMapper,
  type MountedDisk,
  moveMountDir,
  releaseVolume,
  setMount,
  type VolumeRecord,
  type VolumesState,
  volumeAtDir,
} from '../core/assignments.js';
import { errorMessage, OperationError, UsageError } from '../core/errors.js';
import { mapperOfSource } from '../core/names.js';
import { checkVolumeName, redactQuery } from '../core/query.js';
import type { CommandContext } from './context.js';
import { closeMapper, detachDisk, reattachDisk } from './volume-disks.js';
import { mappersInUse } from './volume-survey.js';
import { stopWatcher } from './volume-watch.js';

/** Nothing simplectl mounted is at the directory. */
export class NotMountedError extends OperationError {
  override readonly name: string = 'NotMountedError';
}

export interface VolumeUmountOptions {
  /** The volume root given to mount. */
  dir: string;
  stateDir?: string;
  /** Also release the volume's disks (they may then go to other volumes). */
  release?: boolean;
  /** Detach busy disks now and let the kernel finish when they are released (umount -l). */
  lazy?: boolean;
  lockTimeoutMs?: number;
}

export interface VolumeUmountResult {
  /** The volume name (passphrase redacted), or null when the state did not know the mount. */
  volume: string | null;
  dir: string;
  /** Mount points unmounted, disks first, the root last. */
  unmounted: string[];
  /** True when the volume's disk assignments were released. */
  released: boolean;
}

export async function volumeUmount(
  options: VolumeUmountOptions,
  ctx: CommandContext,
): Promise<VolumeUmountResult> {
  // The mount table and the state hold real paths (a link to the volume reaches it too).
  const dir = await canonicalDir(options.dir);
  const stateDir = resolveStateDir(options.stateDir);
  const saved = await loadState(stateDir);
  // Refused before anything changes, the watcher included; checked again under the lock.
  refuseForeignMounts(await readMountTable(), dir, saved);
  // The watcher takes the lock for each pass: stop it before taking the lock ourselves.
  const watcher = (await volumeAtRealDir(saved, dir))?.mount?.watcher;
  if (watcher) await stopWatcher(watcher);
  const lock = { purpose: `umount ${dir}`, timeoutMs: options.lockTimeoutMs ?? 120_000 };
  return withStateLock(stateDir, lock, async (session) => {
    const table = await readMountTable();
    const root = mountAt(table, dir);
    let volume = await volumeAtRealDir(session.state, dir);
    if (volume?.mount && volume.mount.dir !== dir) {
      await session.commit(moveMountDir(session.state, volume.name, dir));
      volume = session.state.volumes[volume.name];
    }
    if (!root) {
      if (volume) {
        // The root is gone (reboot, or someone unmounted it): only the state is left to fix.
        let next = setMount(session.state, volume.name, null);
        if (options.release) next = releaseVolume(next, volume.name);
        await session.commit(next);
      }
      throw new NotMountedError(`${dir} is not mounted`);
    }
    if (!isVolumeRoot(root)) {
      throw new NotMountedError(
        `${dir} is not a simplectl volume (${root.fsType} from ${root.source} is mounted there)`,
      );
    }
    refuseForeignMounts(table, dir, session.state);
    const unmounted: string[] = [];
    const recorded = new Map<string, MountedDisk>(
      Object.values(volume?.mount?.disks ?? {}).map((d) => [d.mountPoint, d]),
    );
    const detached: MountedDisk[] = [];
    /** All or nothing: puts the disks back and says what stays, after `error` stopped the umount. */
    const undo = async (error: unknown): Promise<never> => {
      const back = await reattach(detached, ctx);
      if (volume?.mount) {
        // Record what could not be put back, so that a second umount carries on from here.
        const left = Object.fromEntries(
          Object.entries(volume.mount.disks).filter(
            ([, d]) => !unmounted.includes(d.mountPoint) || back.includes(d.mountPoint),
          ),
        );
        await session.commit(
          setMount(session.state, volume.name, { ...volume.mount, disks: left, watcher: null }),
        );
      }
      if (back.length === unmounted.length) {
        throw new OperationError(`${errorMessage(error)}. ${dir} stays mounted, with all its disks.`, {
          cause: error,
          ...(error instanceof OperationError && error.detail ? { detail: error.detail } : {}),
        });
      }
      throw error;
    };
    // The disks on the root: recorded ones, and any a crash left untracked (nothing is inside them).
    const untracked: string[] = [];
    for (const entry of mountsOn(table, root)) {
      const disk = recorded.get(entry.mountPoint);
      try {
        if (disk) {
          await detachDisk(disk, { lazy: options.lazy ?? false }, ctx);
          detached.push(disk);
        } else {
          await unmount(entry.mountPoint, { lazy: options.lazy ?? false, logger: ctx.log });
          // The mapping it read through, which its mount opened, goes with the others below.
          const mapper = mapperOfSource(entry.source);
          if (mapper) untracked.push(mapper);
        }
      } catch (error) {
        return undo(error);
      }
      unmounted.push(entry.mountPoint);
    }
    // The root last, before any LUKS mapping closes, so that a root still in use (a shell
    // working in it) can have its disks back: it holds nothing of theirs, so their
    // unmounts went through, and without this the volume would be left empty.
    try {
      await unmount(dir, { lazy: options.lazy ?? false, logger: ctx.log });
    } catch (error) {
      return undo(
        isBusyError(error)
          ? new OperationError(
              `${dir} is busy (a process works in it or holds it open); stop it, or unmount with --lazy`,
              { cause: error },
            )
          : error,
      );
    }
    unmounted.push(dir);
    let rest = volume ? setMount(session.state, volume.name, null) : session.state;
    // The mappings this volume is to close: its disks', and those untracked disks' mounts opened.
    const mappers = new Set([
      ...detached.flatMap((disk) => (disk.mapper ? [disk.mapper] : [])),
      ...untracked,
    ]);
    for (const mapper of mappers) {
      // A mapping another volume still reads through stays open, and becomes that one's to close.
      if (mappersInUse(rest).has(mapper)) rest = handOverMapper(rest, mapper);
      else await closeMapper(mapper, ctx);
    }
    let released = false;
    if (volume) {
      let next = rest;
      if (options.release) {
        next = releaseVolume(next, volume.name);
        released = true;
      }
      await session.commit(next);
    }
    ctx.log.info(`unmounted ${dir}${released ? ' and released its disks' : ''}`);
    return { volume: volume ? redactQuery(volume.name) : null, dir, unmounted, released };
  });
}

/**
 * The volume the state has mounted at `dir` (a real path), also when the state
 * recorded it by a path through a symbolic link, as older versions did.
 */
async function volumeAtRealDir(state: VolumesState, dir: string): Promise<VolumeRecord | undefined> {
  const exact = volumeAtDir(state, dir);
  if (exact) return exact;
  for (const volume of Object.values(state.volumes)) {
    if (volume.mount && (await canonicalDir(volume.mount.dir)) === dir) return volume;
  }
  return undefined;
}

/**
 * Mounts inside the volume at `dir` that are not the volume's own: whatever is
 * mounted inside one of its disks, and below that, except what lies inside
 * another simplectl volume (that volume's umount takes care of it).
 */
export function foreignMounts(table: readonly MountEntry[], root: MountEntry): MountEntry[] {
  const found: MountEntry[] = [];
  const visit = (parent: MountEntry): void => {
    for (const child of mountsOn(table, parent)) {
      found.push(child);
      if (!isVolumeRoot(child)) visit(child);
    }
  };
  for (const disk of mountsOn(table, root)) visit(disk);
  return found;
}

/** Throws, naming each one, when something not the volume's own is mounted inside the volume at `dir`. */
function refuseForeignMounts(table: readonly MountEntry[], dir: string, state: VolumesState): void {
  const root = mountAt(table, dir);
  if (!root || !isVolumeRoot(root)) return;
  const foreign = foreignMounts(table, root);
  if (foreign.length === 0) return;
  const what = foreign.map((entry) => {
    if (!isVolumeRoot(entry)) return `${entry.mountPoint} (${entry.fsType} from ${entry.source})`;
    const other = volumeAtDir(state, entry.mountPoint);
    const name = other ? ` ${redactQuery(other.name)}` : '';
    return `${entry.mountPoint} (the simplectl volume${name}; simplectl umount ${entry.mountPoint} unmounts it)`;
  });
  const one = foreign.length === 1;
  throw new OperationError(
    `${dir} is busy: ${one ? 'a mount that is' : 'mounts that are'} not part of the volume ${one ? 'is' : 'are'} inside it: ${what.join(', ')}. Unmount ${one ? 'it' : 'them'} first; nothing was unmounted.`,
  );
}

/** Mounts `disks` back (newest first); returns the mount points that are back. */
async function reattach(disks: readonly MountedDisk[], ctx: CommandContext): Promise<string[]> {
  const back: string[] = [];
  for (const disk of [...disks].reverse()) {
    try {
      await reattachDisk(disk, ctx);
      back.push(disk.mountPoint);
    } catch (error) {
      ctx.log.error(`could not mount ${disk.source} back at ${disk.mountPoint}: ${errorMessage(error)}`);
    }
  }
  return back;
}

export interface VolumeReleaseOptions {
  /** The volume name (the query) whose disks to release. */
  name: string;
  stateDir?: string;
  lockTimeoutMs?: number;
}

export interface VolumeReleaseResult {
  volume: string;
  /** UUIDs of the disks that were assigned to it. */
  disks: string[];
}

/**
 * Forgets a volume and frees its disks for other volumes (the plugin's
 * Remove). The volume must not be mounted. Releasing an unknown volume is a
 * no-op that returns no disks; a name the query language rejects is a
 * UsageError, thrown before the lock is taken.
 */
export async function volumeRelease(
  options: VolumeReleaseOptions,
  ctx: CommandContext,
): Promise<VolumeReleaseResult> {
  const stateDir = resolveStateDir(options.stateDir);
  await checkReleaseName(options.name, stateDir);
  const lock = {
    purpose: `release ${redactQuery(options.name)}`,
    timeoutMs: options.lockTimeoutMs ?? 120_000,
  };
  return withStateLock(stateDir, lock, async (session) => {
    const volume = session.state.volumes[options.name];
    if (!volume) return { volume: redactQuery(options.name), disks: [] };
    if (volume.mount && mountAt(await readMountTable(), await canonicalDir(volume.mount.dir))) {
      throw new OperationError(
        `volume ${redactQuery(options.name)} is mounted at ${volume.mount.dir}; unmount it first`,
      );
    }
    await session.commit(releaseVolume(session.state, options.name));
    ctx.log.info(`released volume ${redactQuery(options.name)}`);
    return { volume: redactQuery(options.name), disks: Object.keys(volume.disks) };
  });
}

/**
 * Throws the UsageError of a malformed name, which could name no volume, so
 * that a typo is not taken for a volume that holds nothing. A name the saved
 * state holds is released whatever it looks like: a version with another
 * query language may have saved it, and its disks must not be stranded.
 */
async function checkReleaseName(name: string, stateDir: string): Promise<void> {
  try {
    checkVolumeName(name);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    const saved = await loadState(stateDir).catch(() => null);
    if (!saved?.volumes[name]) throw error;
  }
}
