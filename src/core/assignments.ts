/**
 * Which disk belongs to which volume, and what is mounted where: the persistent
 * state of simplectl volumes, and its pure transitions.
 *
 * A volume is identified by its name (the query as given, exactly as Docker
 * names it). A disk assigned to a volume stays assigned across umount and mount,
 * keeping its number, until the volume is released (`umount --release`, or the
 * plugin's Remove) or the disk disappears; an exclusive volume's disks are never
 * given to another volume meanwhile. Disks are identified by the UUID of their
 * data partition, which survives reboots and device renames.
 *
 * Every function returns a new state; nothing here does I/O.
 */
import { join } from 'node:path';

export const STATE_VERSION = 1;

export interface VolumesState {
  version: typeof STATE_VERSION;
  volumes: Record<string, VolumeRecord>;
}

export interface VolumeRecord {
  /** The volume name (the query). May hold a passphrase: the state file is 0600. */
  name: string;
  /** Settings given besides the name (the plugin's `-o` options); may hold a passphrase. */
  options: Record<string, string>;
  exclusive: boolean;
  /** Disks assigned to the volume, by disk id. */
  disks: Record<string, AssignedDisk>;
  /** Numbers of disks that left (disappeared), offered back to them if they return. */
  rememberedNumbers: Record<string, number>;
  mount: VolumeMount | null;
  createdAt: string;
}

export interface AssignedDisk {
  /** UUID of the disk's data partition (lowercase). */
  id: string;
  /** Directory number for numeric naming; null for uuid naming. */
  number: number | null;
  /** Whole-disk device where it was last seen, e.g. /dev/loop3. */
  device: string;
  /** The device's diskseq when last seen: a changed value means other media now sits there. */
  diskseq: number | null;
  assignedAt: string;
}

export interface VolumeMount {
  /** The volume root (where the tmpfs is mounted). */
  dir: string;
  mountedAt: string;
  dynamic: boolean;
  /** Disks mounted in the volume now, by disk id. */
  disks: Record<string, MountedDisk>;
  /** Directory names of persist-numbering placeholders. */
  placeholders: string[];
  /** The detached watcher process of a dynamic volume, when one was started. */
  watcher: WatcherRecord | null;
}

export interface MountedDisk {
  id: string;
  /** Directory name under the volume root. */
  dirName: string;
  mountPoint: string;
  /** Whole-disk device, e.g. /dev/loop3. */
  device: string;
  /** What is mounted: the data partition, or the LUKS mapper device. */
  source: string;
  fsType: string;
  /** LUKS mapper name opened for this mount, if any (closed on release). */
  mapper: string | null;
}

export interface WatcherRecord {
  pid: number;
  startTime: string;
  log: string;
}

export function emptyState(): VolumesState {
  return { version: STATE_VERSION, volumes: {} };
}

function clone(state: VolumesState): VolumesState {
  return structuredClone(state);
}

/**
 * `state` with LUKS mapping `mapper` recorded as the first mounted disk's that
 * reads through it without having opened it (volumes sharing a disk share its
 * mapping), so that the mapping is closed when that mount goes; `state` itself
 * when no mount reads through it.
 */
export function handOverMapper(state: VolumesState, mapper: string): VolumesState {
  const next = clone(state);
  for (const volume of Object.values(next.volumes)) {
    for (const disk of Object.values(volume.mount?.disks ?? {})) {
      if (disk.mapper === null && disk.source === `/dev/mapper/${mapper}`) {
        disk.mapper = mapper;
        return next;
      }
    }
  }
  return state;
}

/** Volumes that have disk `id` assigned. */
export function diskHolders(state: VolumesState, id: string): VolumeRecord[] {
  return Object.values(state.volumes).filter((v) => v.disks[id] !== undefined);
}

/**
 * May disk `id` be given to volume `name`? Yes when no other volume holds it,
 * or when this volume and every other holder are all non-exclusive.
 */
export function isAvailable(state: VolumesState, name: string, exclusive: boolean, id: string): boolean {
  const others = diskHolders(state, id).filter((v) => v.name !== name);
  if (others.length === 0) return true;
  return !exclusive && others.every((v) => !v.exclusive);
}

/** The volumes holding disk `id`, in the shape the matcher reads (core/disk-state.ts DiskAssignment). */
export function assignmentOf(
  state: VolumesState,
  id: string,
): { volumes: string[]; exclusive: boolean } | null {
  const holders = diskHolders(state, id);
  if (holders.length === 0) return null;
  return { volumes: holders.map((v) => v.name), exclusive: holders.some((v) => v.exclusive) };
}

/** The volume mounted at `dir`, if the state knows one. */
export function volumeAtDir(state: VolumesState, dir: string): VolumeRecord | undefined {
  return Object.values(state.volumes).find((v) => v.mount?.dir === dir);
}

/** Returns the state with volume `name` present (created empty if new), with its current settings. */
export function ensureVolume(
  state: VolumesState,
  name: string,
  exclusive: boolean,
  now: string,
  options: Record<string, string> = {},
): VolumesState {
  const next = clone(state);
  const existing = next.volumes[name];
  if (existing) {
    existing.exclusive = exclusive;
    existing.options = { ...options };
  } else {
    next.volumes[name] = {
      name,
      options: { ...options },
      exclusive,
      disks: {},
      rememberedNumbers: {},
      mount: null,
      createdAt: now,
    };
  }
  return next;
}

export type NewAssignment = Omit<AssignedDisk, 'assignedAt'>;

/** Assigns disks to an existing volume. Throws if one is not available to it (callers check first). */
export function assignDisks(
  state: VolumesState,
  name: string,
  disks: readonly NewAssignment[],
  now: string,
): VolumesState {
  const next = clone(state);
  const volume = next.volumes[name];
  if (!volume) throw new RangeError(`no volume '${name}' in the state`);
  for (const disk of disks) {
    if (!isAvailable(next, name, volume.exclusive, disk.id)) {
      throw new RangeError(`disk ${disk.id} is assigned to another volume`);
    }
    volume.disks[disk.id] = { ...disk, assignedAt: volume.disks[disk.id]?.assignedAt ?? now };
    delete volume.rememberedNumbers[disk.id];
  }
  return next;
}

/** Updates where an assigned disk was last seen. */
export function updateDiskLocation(
  state: VolumesState,
  name: string,
  id: string,
  device: string,
  diskseq: number | null,
): VolumesState {
  const next = clone(state);
  const disk = next.volumes[name]?.disks[id];
  if (disk) {
    disk.device = device;
    disk.diskseq = diskseq;
  }
  return next;
}

/** Releases one disk from a volume; its number is remembered for when it comes back. */
export function releaseDisk(state: VolumesState, name: string, id: string): VolumesState {
  const next = clone(state);
  const volume = next.volumes[name];
  const disk = volume?.disks[id];
  if (!volume || !disk) return next;
  if (disk.number !== null) volume.rememberedNumbers[id] = disk.number;
  delete volume.disks[id];
  if (volume.mount) delete volume.mount.disks[id];
  return next;
}

/**
 * Forgets disk `id` everywhere: in every volume that holds it, in their mounts
 * and remembered numbers. For a disk whose identity is gone (re-initialised:
 * its data partition has a new UUID), so no volume waits for it to come back.
 */
export function forgetDisk(state: VolumesState, id: string): VolumesState {
  const next = clone(state);
  for (const volume of Object.values(next.volumes)) {
    delete volume.disks[id];
    delete volume.rememberedNumbers[id];
    if (volume.mount) delete volume.mount.disks[id];
  }
  return next;
}

/** Forgets a volume entirely, releasing all its disks. */
export function releaseVolume(state: VolumesState, name: string): VolumesState {
  const next = clone(state);
  delete next.volumes[name];
  return next;
}

/** Sets (or with null clears) a volume's mount. */
export function setMount(state: VolumesState, name: string, mount: VolumeMount | null): VolumesState {
  const next = clone(state);
  const volume = next.volumes[name];
  if (!volume) throw new RangeError(`no volume '${name}' in the state`);
  volume.mount = mount === null ? null : structuredClone(mount);
  return next;
}

/**
 * Records volume `name` as mounted at `dir` (the same mount, reached by its
 * real path): the root and every disk's mount point move with it.
 */
export function moveMountDir(state: VolumesState, name: string, dir: string): VolumesState {
  const mount = state.volumes[name]?.mount;
  if (!mount) throw new RangeError(`volume '${name}' is not mounted in the state`);
  const disks = Object.fromEntries(
    Object.entries(mount.disks).map(([id, d]) => [id, { ...d, mountPoint: join(dir, d.dirName) }]),
  );
  return setMount(state, name, { ...mount, dir, disks });
}

/** What reconciliation needs to know about the machine, as plain lookups. */
export interface HostFacts {
  /** Is a volume root tmpfs of ours mounted at exactly `dir`? */
  isVolumeRoot(dir: string): boolean;
  /** `dir` with symbolic links resolved, as the mount table shows it (state written by older versions kept the path as given). */
  realDir(dir: string): string;
  /** Is anything mounted at exactly `path`? */
  isMounted(path: string): boolean;
  /** The device's current diskseq, `null` when unknown, or undefined when the device is gone or empty. */
  deviceSeq(device: string): number | null | undefined;
  /** Where a scan within scope found disk `id` now, if it did. */
  locate(id: string): { device: string; diskseq: number | null } | undefined;
  /**
   * The id of the disk a scan within scope found on `device`: null for a
   * blank one, undefined when the scan did not cover it or could not tell.
   */
  heldBy(device: string): string | null | undefined;
  /** Is the recorded watcher process still running? */
  isWatcherAlive(watcher: WatcherRecord): boolean;
}

export interface ReconcileOptions {
  /** How a volume is named in notes (names may hold a passphrase: pass a redacting function). */
  show?: (name: string) => string;
  /**
   * The caller only looks (status) and saves nothing: notes then say what the
   * next mount will change, rather than that it is being changed.
   */
  preview?: boolean;
}

export interface ReconcileResult {
  state: VolumesState;
  /** One sentence per change, for the log (worded for `preview` when asked). */
  notes: string[];
  /** LUKS mappers of mounts that are gone; the caller closes those no longer in use. */
  orphanMappers: string[];
}

/**
 * Brings the state in line with the machine after a restart or crash: mounts
 * that no longer exist are forgotten, disks mounted nowhere that disappeared
 * are released (their numbers remembered), moved disks get their new device,
 * and dead watchers are cleared. Disks still mounted are left to umount or the
 * watcher, and a device that merely lies outside the scan's scope is not
 * mistaken for a missing one. With `preview`, the same changes are computed
 * but the notes say what the next mount will do, for a caller that saves nothing.
 */
export function reconcile(
  state: VolumesState,
  facts: HostFacts,
  options: ReconcileOptions = {},
): ReconcileResult {
  const show = options.show ?? ((name: string) => name);
  // What a note says was done, or (for a caller that saves nothing) what the next mount will do.
  const change = (done: string, pending: string) => (options.preview ? pending : done);
  let next = clone(state);
  const notes: string[] = [];
  const orphanMappers: string[] = [];
  for (const name of Object.keys(next.volumes)) {
    const dir = next.volumes[name]!.mount?.dir;
    if (dir === undefined || facts.realDir(dir) === dir) continue;
    notes.push(
      `volume ${show(name)}: ${dir} is ${facts.realDir(dir)} (through a symbolic link); ${change('recording that', 'the next mount records that')}`,
    );
    next = moveMountDir(next, name, facts.realDir(dir));
  }
  for (const volume of Object.values(next.volumes)) {
    const mount = volume.mount;
    if (mount && !facts.isVolumeRoot(mount.dir)) {
      notes.push(
        `volume ${show(volume.name)} is no longer mounted at ${mount.dir}; ${change('forgetting that mount', 'the next mount forgets that mount')}`,
      );
      for (const d of Object.values(mount.disks)) if (d.mapper) orphanMappers.push(d.mapper);
      volume.mount = null;
    } else if (mount) {
      for (const d of Object.values(mount.disks)) {
        if (!facts.isMounted(d.mountPoint)) {
          notes.push(`disk ${d.id} of volume ${show(volume.name)} is no longer mounted at ${d.mountPoint}`);
          if (d.mapper) orphanMappers.push(d.mapper);
          delete mount.disks[d.id];
        }
      }
      if (mount.watcher && !facts.isWatcherAlive(mount.watcher)) {
        notes.push(
          `the watcher (pid ${mount.watcher.pid}) of volume ${show(volume.name)} is no longer running`,
        );
        mount.watcher = null;
      }
    }
  }
  for (const volume of Object.values(next.volumes)) {
    for (const disk of Object.values(volume.disks)) {
      if (volume.mount?.disks[disk.id]) continue;
      const seq = facts.deviceSeq(disk.device);
      const sameMedia = seq !== undefined && (seq === null || disk.diskseq === null || seq === disk.diskseq);
      if (sameMedia) {
        // The very media it was (the same diskseq), scanned, holding another disk or none: it was
        // initialised again or wiped, by another host or another state, and this disk will never
        // come back. Kept, it held its number, and a max-disks volume had none for the disk there now.
        const there = facts.heldBy(disk.device);
        if (seq === null || disk.diskseq === null || there === undefined || there === disk.id) continue;
        const gone = `disk ${disk.id} of volume ${show(volume.name)} is gone: ${disk.device} holds ${there === null ? 'a blank disk' : `disk ${there}`} now, on the same media`;
        notes.push(change(`${gone}; released`, `${gone}; the next mount releases it`));
        next = forgetDisk(next, disk.id);
        continue;
      }
      const found = facts.locate(disk.id);
      if (found) {
        if (found.device !== disk.device || found.diskseq !== disk.diskseq) {
          notes.push(
            `disk ${disk.id} of volume ${show(volume.name)} moved from ${disk.device} to ${found.device}`,
          );
          next = updateDiskLocation(next, volume.name, disk.id, found.device, found.diskseq);
        }
        continue;
      }
      if (seq !== undefined) continue; // the device holds other media; ours may be out of scope
      // A caller that only looks may not have scanned: the disk may have moved, as the next mount finds out.
      notes.push(
        change(
          `disk ${disk.id} of volume ${show(volume.name)} (last seen as ${disk.device}) is gone; released`,
          `disk ${disk.id} of volume ${show(volume.name)} is no longer at ${disk.device}; the next mount follows it if it moved, else releases it`,
        ),
      );
      next = releaseDisk(next, volume.name, disk.id);
    }
  }
  return { state: next, notes, orphanMappers: [...new Set(orphanMappers)] };
}

/** Checks that parsed JSON looks like a state file; returns it typed or explains what is wrong. */
export function validateState(value: unknown): VolumesState | string {
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const v = value as Partial<VolumesState>;
  if (v.version !== STATE_VERSION)
    return `unsupported version ${JSON.stringify(v.version)} (expected ${STATE_VERSION})`;
  if (typeof v.volumes !== 'object' || v.volumes === null) return "no 'volumes' object";
  for (const [name, volume] of Object.entries(v.volumes)) {
    if (typeof volume !== 'object' || volume === null || typeof volume.disks !== 'object') {
      return `volume '${name}' is malformed`;
    }
    volume.rememberedNumbers ??= {};
    volume.options ??= {};
    volume.mount ??= null;
  }
  return v as VolumesState;
}
