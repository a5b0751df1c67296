/**
 * `simplectl mount QUERY DIR` (and the simple plugin's Mount): gather the
 * disks matching QUERY, mount a 4 KiB tmpfs at DIR, one directory per disk,
 * each disk mounted on its directory, then make the root read-only. With
 * min-disks.0 and nothing matching, the volume is an empty read-only root.
 *
 * Too few disks fails before anything changes; a failure later undoes every
 * step (nothing stays mounted, opened or newly assigned). Mounting a volume
 * that is already mounted at DIR returns it as it is (and restarts its watcher
 * if that died, or mounts again its own disks found unmounted); at another
 * directory it is an error.
 *
 * Exports: `volumeMount(options, ctx)` → `VolumeMountResult`, `VolumeDiskInfo`, `describeVolume`.
 */
import { queryPassphrase } from '../adapters/keys.js';
import { type HostIdentity, hostIdentity } from '../adapters/machine.js';
import { canonicalDir } from '../adapters/real-path.js';
import { resolveStateDir, type StateSession, withStateLock } from '../adapters/volume-state.js';
import {
  releaseDisk,
  setMount,
  type VolumeRecord,
  type VolumesState,
  volumeAtDir,
} from '../core/assignments.js';
import { type DiskReport, diskId } from '../core/disk-state.js';
import { OperationError } from '../core/errors.js';
import type { MatchResult } from '../core/match.js';
import { parseQuery, redactQuery, wantsEncryption } from '../core/query.js';
import type { CommandContext } from './context.js';
import { Undo } from './undo.js';
import {
  type AssembleContext,
  addToMountedVolume,
  assign,
  chooseDisks,
  entriesFor,
  numbersFor,
  prepareChosen,
  shown,
  tooFewDisks,
  type VolumeSpec,
} from './volume-assemble.js';
import { mountDisk } from './volume-disks.js';
import { applyLayout, checkVolumeDir, createVolumeRoot, sealVolumeRoot } from './volume-root.js';
import { mappersInUse, survey } from './volume-survey.js';
import { ensureWatcher, type WatcherMode } from './volume-watch.js';

export interface VolumeMountOptions {
  /** The volume name: a query such as `label.fast_min-disks.2`. */
  query: string;
  /** Where the volume root goes (created if missing). */
  dir: string;
  /** Settings besides the name (the plugin's `-o` options). */
  options?: Readonly<Record<string, string>>;
  /** State directory (default: SIMPLECTL_STATE_DIR or /var/lib/simplectl). */
  stateDir?: string;
  /** Kernel-name globs of the devices to consider; empty = every whole disk. */
  include?: readonly string[];
  /**
   * Who watches a dynamic-mounts volume: 'detached' (default) starts a small
   * watcher process that `volumeUmount` stops; 'none' leaves it to the caller
   * (a long-running server runs `watchVolume` in-process).
   */
  watcher?: WatcherMode;
  /** How long to wait for another simplectl holding the assignment lock (default 120 s). */
  lockTimeoutMs?: number;
  host?: HostIdentity;
}

export interface VolumeDiskInfo {
  device: string;
  /** The data partition's UUID (names the directory with naming-style uuid). */
  uuid: string;
  /** The directory number (numeric naming), else null. */
  number: number | null;
  /** Directory name under the volume root. */
  name: string;
  mountPoint: string;
  fsType: string;
  encrypted: boolean;
}

export interface VolumeMountResult {
  /** The volume name, any passphrase replaced by ***. */
  volume: string;
  dir: string;
  disks: VolumeDiskInfo[];
  /** Empty read-only directories kept for absent disks (persist-numbering). */
  placeholders: string[];
  dynamic: boolean;
  /** The detached watcher of a dynamic volume, when one runs. */
  watcher: { pid: number; log: string } | null;
  /** True when the volume was mounted at `dir` already and was left as it was. */
  alreadyMounted: boolean;
}

/** The result shape for a volume record that is mounted. */
export function describeVolume(volume: VolumeRecord, alreadyMounted: boolean): VolumeMountResult {
  const mount = volume.mount!;
  const disks = Object.values(mount.disks)
    .map((m) => ({
      device: m.device,
      uuid: m.id,
      number: volume.disks[m.id]?.number ?? null,
      name: m.dirName,
      mountPoint: m.mountPoint,
      fsType: m.fsType,
      encrypted: m.source.startsWith('/dev/mapper/'),
    }))
    .sort((a, b) => (a.number ?? 0) - (b.number ?? 0) || a.name.localeCompare(b.name));
  return {
    volume: redactQuery(volume.name),
    dir: mount.dir,
    disks,
    placeholders: [...mount.placeholders].sort(),
    dynamic: mount.dynamic,
    watcher: mount.watcher ? { pid: mount.watcher.pid, log: mount.watcher.log } : null,
    alreadyMounted,
  };
}

export async function volumeMount(
  options: VolumeMountOptions,
  ctx: CommandContext,
): Promise<VolumeMountResult> {
  const query = parseQuery(options.query, options.options ?? {});
  const passphrase = wantsEncryption(query)
    ? await queryPassphrase(query, { log: ctx.log, name: options.query })
    : null;
  const spec: VolumeSpec = {
    name: options.query,
    query,
    options: { ...(options.options ?? {}) },
    passphrase,
  };
  // The kernel records the real path (symbolic links followed); so does the state.
  const dir = await canonicalDir(options.dir);
  await checkVolumeDir(dir);
  const stateDir = resolveStateDir(options.stateDir);
  const include = options.include ?? [];
  const host = options.host ?? (await hostIdentity());
  const watcherMode = options.watcher ?? 'detached';
  const lock = { purpose: `mount ${shown(spec)} at ${dir}`, timeoutMs: options.lockTimeoutMs ?? 120_000 };
  return withStateLock(stateDir, lock, async (session) => {
    const ac: AssembleContext = { session, host, ctx };
    const found = await survey(session, { include, host }, ctx);
    const existing = session.state.volumes[spec.name]?.mount;
    if (existing) {
      if (existing.dir !== dir) {
        throw new OperationError(`volume ${shown(spec)} is already mounted at ${existing.dir}`);
      }
      if (existing.dynamic)
        await ensureWatcher(session, spec.name, { stateDir, include, mode: watcherMode }, ctx);
      else await remountMembers(spec, found.disks, ac);
      return describeVolume(session.state.volumes[spec.name]!, true);
    }
    const other = volumeAtDir(session.state, dir);
    if (other) throw new OperationError(`${dir} already holds the volume ${redactQuery(other.name)}`);

    ctx.progress(`matching disks for ${shown(spec)}`);
    const match = await chooseDisks(spec, found.disks, ac);
    if (!match.satisfied) throw tooFewDisks(spec, match);
    const before = session.state;
    const undo = new Undo();
    try {
      await assemble(spec, dir, match, found.disks, ac, undo);
      if (query.dynamicMounts) {
        await ensureWatcher(session, spec.name, { stateDir, include, mode: watcherMode }, ctx);
      }
      undo.clear();
      return describeVolume(session.state.volumes[spec.name]!, false);
    } catch (error) {
      await undo.run(ctx.log);
      await restore(session, before);
      throw error;
    }
  });
}

/**
 * Mounts again the disks of a mounted volume that are its own, here, and no
 * longer mounted (unmounted by hand, or by a umount killed half-way), so a
 * second mount brings the volume back whole rather than report an emptier
 * one as mounted. It takes no disk that is not the volume's already; a
 * dynamic-mounts volume's watcher does the same on its own.
 */
async function remountMembers(spec: VolumeSpec, present: DiskReport[], ac: AssembleContext): Promise<void> {
  const mounted = new Set(Object.keys(ac.session.state.volumes[spec.name]?.mount?.disks ?? {}));
  const match = await chooseDisks(spec, present, ac);
  const missing = match.chosen.filter(
    (d) =>
      d.state === 'initialised' &&
      d.action === 'use' &&
      (d.assignment?.volumes.includes(spec.name) ?? false) &&
      !mounted.has(diskId(d)),
  );
  if (missing.length === 0) return;
  ac.ctx.log.info(
    `volume ${shown(spec)} is mounted without ${missing.map((d) => d.device).join(', ')}; mounting ${missing.length === 1 ? 'it' : 'them'} again`,
  );
  await addToMountedVolume(spec, await prepareChosen(spec, missing, ac), ac);
}

/** Puts the state back as it was before a failed mount. */
async function restore(session: StateSession, before: VolumesState): Promise<void> {
  if (session.state !== before) await session.commit(before);
}

/** Prepares, assigns, mounts and seals; every step registers its undo. */
async function assemble(
  spec: VolumeSpec,
  dir: string,
  match: MatchResult,
  present: readonly DiskReport[],
  ac: AssembleContext,
  undo: Undo,
): Promise<void> {
  const { ctx, session } = ac;
  const disks = await prepareChosen(spec, match.chosen, ac);
  // Members that are here but no longer match (relabelled, another filesystem, a
  // passphrase that no longer opens them) stop being this volume's. Members not
  // seen at all may lie outside the scan's scope and keep their assignment, and
  // so do members in use now (fsck, a backup, another namespace's mount): left
  // out of this mount, they are still nobody else's.
  const keep = new Set(disks.map(diskId));
  for (const { disk, busy } of match.rejected) {
    if (!busy || disk.state !== 'initialised') continue;
    keep.add(diskId(disk));
    if (session.state.volumes[spec.name]?.disks[diskId(disk)]) {
      ctx.log.warn(
        `volume ${shown(spec)}: ${disk.device} is in use now (${disk.usage}); left out of this mount, still assigned`,
      );
    }
  }
  let released = session.state;
  for (const d of present) {
    if (d.state !== 'initialised' || keep.has(diskId(d))) continue;
    if (released.volumes[spec.name]?.disks[diskId(d)]) {
      ctx.log.warn(`volume ${shown(spec)}: ${d.device} no longer matches; releasing it`);
      released = releaseDisk(released, spec.name, diskId(d));
    }
  }
  if (released !== session.state) await session.commit(released);
  const numbers = numbersFor(spec, session.state.volumes[spec.name], disks);
  // The assignment is saved before anything is mounted: if this process dies
  // half-way, the disks are still known to be taken and nobody else gets them.
  await assign(spec, disks, numbers, ac);
  let volume = session.state.volumes[spec.name]!;
  const mountRecord = {
    dir,
    mountedAt: new Date().toISOString(),
    dynamic: spec.query.dynamicMounts,
    disks: {},
    placeholders: [],
    watcher: null,
  };
  await session.commit(setMount(session.state, spec.name, mountRecord));
  await createVolumeRoot(dir, ctx, undo);
  volume = session.state.volumes[spec.name]!;
  const planned = entriesFor(
    spec,
    volume,
    disks.map((d) => ({ id: diskId(d) })),
  );
  await applyLayout(dir, { create: planned.map((e) => e.name), remove: [] }, ctx);
  const mounted = [];
  for (const disk of disks) {
    const entry = planned.find((e) => e.diskId === diskId(disk))!;
    mounted.push(
      await mountDisk(
        {
          disk,
          root: dir,
          dirName: entry.name,
          passphrase: spec.passphrase,
          mapperInUse: (name) => mappersInUse(session.state).has(name),
        },
        ctx,
        undo,
      ),
    );
  }
  ctx.progress(`making ${dir} read-only`);
  await sealVolumeRoot(dir, ctx);
  await session.commit(
    setMount(session.state, spec.name, {
      ...mountRecord,
      disks: Object.fromEntries(mounted.map((m) => [m.id, m])),
      placeholders: planned.filter((e) => e.diskId === null).map((e) => e.name),
    }),
  );
  ctx.log.info(`volume ${shown(spec)} mounted at ${dir} with ${mounted.length} disk(s)`);
}
