/**
 * `simplectl status`: volumes, their disks and numbers, and which disk is
 * assigned to which volume, as the state file says after checking it against
 * the mount table and sysfs (read-only: nothing is written, no disk probed).
 *
 * Exports: `volumeStatus(options, ctx)`, `listVolumes(options)` (mounted
 * volumes, for a plugin server starting up).
 */
import { blockDeviceFacts, isPresent } from '../adapters/disk-watch.js';
import { readMountTable } from '../adapters/mountinfo.js';
import { isProcessAlive } from '../adapters/processes.js';
import { loadState, resolveStateDir } from '../adapters/volume-state.js';
import { reconcile, type VolumesState } from '../core/assignments.js';
import { kernelName } from '../core/names.js';
import { redactQuery } from '../core/query.js';
import type { CommandContext } from './context.js';
import { hostFacts } from './volume-survey.js';

export interface VolumeStatusOptions {
  stateDir?: string;
}

export interface StatusDisk {
  uuid: string;
  number: number | null;
  /** Where the disk was last seen. */
  device: string;
  /** The device is there now (with media, not being detached). */
  present: boolean;
  /** Where it is mounted in the volume, or null. */
  mountPoint: string | null;
  /** Directory name in the volume, when mounted. */
  name: string | null;
}

export interface StatusVolume {
  /** Volume name, passphrase redacted. */
  volume: string;
  exclusive: boolean;
  mounted: boolean;
  dir: string | null;
  dynamic: boolean;
  /** The detached watcher, when the volume has one. */
  watcher: { pid: number; alive: boolean; log: string } | null;
  /** Assigned disks, by number then uuid. */
  disks: StatusDisk[];
  placeholders: string[];
}

export interface VolumeStatusResult {
  stateDir: string;
  volumes: StatusVolume[];
  /** Every assigned disk and the volumes holding it. */
  assignments: { uuid: string; device: string; volumes: string[] }[];
  /** Differences between the state file and the machine, each with what the next mount will do about it. */
  notes: string[];
}

/** The state as it will look once reconciled (computed, not saved: the notes say what the next mount changes). */
async function reconciledState(stateDir: string): Promise<{ state: VolumesState; notes: string[] }> {
  const saved = await loadState(stateDir);
  const facts = await hostFacts(saved, [], await readMountTable());
  const { state, notes } = reconcile(saved, facts, { show: redactQuery, preview: true });
  return { state, notes };
}

export async function volumeStatus(
  options: VolumeStatusOptions,
  _ctx: CommandContext,
): Promise<VolumeStatusResult> {
  const stateDir = resolveStateDir(options.stateDir);
  const { state, notes } = await reconciledState(stateDir);
  const volumes: StatusVolume[] = [];
  const holders = new Map<string, { device: string; volumes: string[] }>();
  for (const v of Object.values(state.volumes).sort((a, b) => a.name.localeCompare(b.name))) {
    const disks: StatusDisk[] = [];
    for (const d of Object.values(v.disks)) {
      const m = v.mount?.disks[d.id];
      disks.push({
        uuid: d.id,
        number: d.number,
        device: d.device,
        present: isPresent(await blockDeviceFacts(kernelName(d.device))),
        mountPoint: m?.mountPoint ?? null,
        name: m?.dirName ?? null,
      });
      const h = holders.get(d.id) ?? { device: d.device, volumes: [] };
      h.volumes.push(redactQuery(v.name));
      holders.set(d.id, h);
    }
    disks.sort((a, b) => (a.number ?? 0) - (b.number ?? 0) || a.uuid.localeCompare(b.uuid));
    const w = v.mount?.watcher ?? null;
    volumes.push({
      volume: redactQuery(v.name),
      exclusive: v.exclusive,
      mounted: v.mount !== null,
      dir: v.mount?.dir ?? null,
      dynamic: v.mount?.dynamic ?? false,
      watcher: w ? { pid: w.pid, alive: isProcessAlive(w.pid, w.startTime), log: w.log } : null,
      disks,
      placeholders: [...(v.mount?.placeholders ?? [])].sort(),
    });
  }
  const assignments = [...holders.entries()]
    .map(([uuid, h]) => ({ uuid, device: h.device, volumes: h.volumes }))
    .sort((a, b) => a.device.localeCompare(b.device, 'en', { numeric: true }));
  return { stateDir, volumes, assignments, notes };
}

export interface MountedVolume {
  /** The volume name exactly as mounted (may hold a passphrase: do not log it). */
  name: string;
  dir: string;
  dynamic: boolean;
  disks: { uuid: string; number: number | null; device: string; mountPoint: string }[];
}

/**
 * The volumes mounted now, from the state file checked against the mount
 * table: what a plugin server rebuilds its picture from at start-up.
 */
export async function listVolumes(options: { stateDir?: string }): Promise<MountedVolume[]> {
  const { state } = await reconciledState(resolveStateDir(options.stateDir));
  return Object.values(state.volumes)
    .filter((v) => v.mount !== null)
    .map((v) => ({
      name: v.name,
      dir: v.mount!.dir,
      dynamic: v.mount!.dynamic,
      disks: Object.values(v.mount!.disks).map((m) => ({
        uuid: m.id,
        number: v.disks[m.id]?.number ?? null,
        device: m.device,
        mountPoint: m.mountPoint,
      })),
    }));
}
