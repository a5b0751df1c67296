/**
 * Which disks a volume query gets, in what order, and why every other disk
 * does not match. Pure: the caller supplies the scan, this host's identity and
 * whether the query's passphrase opens each encrypted disk.
 *
 * Exports: `matchDisks(query, disks, host, options?)` → `MatchResult`, `DiskAction`,
 * `ChosenDisk`, `RejectedMatch`, `diskReasons(query, disk, host, options)`.
 *
 * Order: disks already assigned to `options.volume`, then initialised disks of
 * the label (by persisted numbering, then device name), and only to reach
 * min-disks: `untyped` disks to relabel (destroys their data: README
 * "Automatic typing"), then blank disks to initialise. max-disks caps the lot.
 */
import { DEFAULT_FILESYSTEM, minimumDiskBytes } from './disk-plan.js';
import { type BlankDisk, type DiskReport, type InitialisedDisk, MIN_DISK_BYTES } from './disk-state.js';
import { naturalCompare } from './names.js';
import { redactQuery, UNTYPED_LABEL, type VolumeQuery, wantsEncryption } from './query.js';
import { formatSize, humanSize } from './units.js';

/** What has to happen to a chosen disk before it can be mounted. */
export type DiskAction = 'use' | 'relabel' | 'initialise';

export type ChosenDisk = (BlankDisk | InitialisedDisk) & { action: DiskAction };

export interface RejectedMatch {
  disk: DiskReport;
  reasons: string[];
  /**
   * It would match but for what passes: it is in use now (a program holds
   * it, it is mounted elsewhere), and so its passphrase could not be tested
   * either. A volume's member rejected so stays its member.
   */
  busy?: boolean;
}

export interface MatchResult {
  /** Disks the volume gets, in mount order. */
  chosen: ChosenDisk[];
  /** Disks that match but are not needed (max-disks reached, or would need initialising beyond min-disks). */
  spare: ChosenDisk[];
  rejected: RejectedMatch[];
  /** chosen.length >= query.minDisks. */
  satisfied: boolean;
}

export interface MatchOptions {
  /**
   * device → whether the query's passphrase opens that disk (`cryptsetup
   * open --test-passphrase`), or why that could not be tested.
   */
  unlocks?: ReadonlyMap<string, boolean | string>;
  /** The volume asking: disks already assigned to it are not "in use". */
  volume?: string;
}

interface Host {
  hostname: string;
  machineId: string;
}

function actionFor(query: VolumeQuery, disk: DiskReport): DiskAction | undefined {
  if (disk.state === 'blank') return 'initialise';
  if (disk.state !== 'initialised') return undefined;
  if (disk.label === query.label) return 'use';
  if (disk.label === UNTYPED_LABEL) return 'relabel';
  return undefined;
}

/**
 * Why a disk of `sizeBytes` cannot be initialised for `query` (its filesystem,
 * inside LUKS when encrypted), as initialize-disk would refuse it: chosen,
 * it would fail the mount though a larger disk could serve.
 */
function tooSmallToInitialise(query: VolumeQuery, sizeBytes: number): string[] {
  const filesystem = query.filesystem ?? DEFAULT_FILESYSTEM;
  const encrypted = wantsEncryption(query);
  const minimum = Math.max(MIN_DISK_BYTES, minimumDiskBytes(filesystem, encrypted));
  if (sizeBytes >= minimum) return [];
  return [
    `${humanSize(sizeBytes)} is too small to initialise for ${filesystem}${encrypted ? ' inside LUKS' : ''}: ` +
      `it needs at least ${humanSize(minimum)}`,
  ];
}

/** Every reason `disk` cannot serve `query` ([] when it can). */
export function diskReasons(
  query: VolumeQuery,
  disk: DiskReport,
  host: Host,
  options: MatchOptions = {},
): string[] {
  if (disk.state === 'rejected') return [`not usable: it ${disk.reason}`];
  const reasons: string[] = [];
  const action = actionFor(query, disk);
  if (query.minSize > 0 && disk.sizeBytes < query.minSize) {
    reasons.push(`size ${humanSize(disk.sizeBytes)} is below min-size ${formatSize(query.minSize)}`);
  }
  if (query.maxSize > 0 && disk.sizeBytes > query.maxSize) {
    reasons.push(`size ${humanSize(disk.sizeBytes)} is above max-size ${formatSize(query.maxSize)}`);
  }
  if (disk.state === 'blank') {
    if (query.initialized) reasons.push('blank, and the query asks for initialized disks only');
    else reasons.push(...tooSmallToInitialise(query, disk.sizeBytes));
    return reasons;
  }
  if (action === undefined) reasons.push(`label is '${disk.label}', not '${query.label}'`);
  if (action === 'relabel' && query.initialized) {
    reasons.push(
      `label is '${UNTYPED_LABEL}'; claiming it would erase it, and the query asks for initialized disks`,
    );
  } else if (action === 'relabel') reasons.push(...tooSmallToInitialise(query, disk.sizeBytes));
  if (query.ownHostname && disk.hostname !== host.hostname) {
    reasons.push(`initialised by host '${disk.hostname}', not this host '${host.hostname}'`);
  }
  if (query.ownMachineId && disk.machineId !== host.machineId) {
    reasons.push(`machine-id is '${disk.machineId}', not this host's '${host.machineId}'`);
  }
  const assigned = disk.assignment?.volumes ?? [];
  const others = assigned.filter((v) => v !== options.volume);
  if (others.length > 0 && action === 'relabel') {
    // Sharing a disk never allows erasing it: initialize-disk would refuse it too.
    reasons.push(
      `label is '${UNTYPED_LABEL}', but claiming it would erase the disk of volume ${others.map(redactQuery).join(', ')}`,
    );
  } else if (others.length > 0 && (query.exclusive || disk.assignment?.exclusive)) {
    // Another volume's name may hold its passphrase.
    reasons.push(
      `assigned to volume ${others.map(redactQuery).join(', ')}${disk.assignment?.exclusive ? ' (exclusive)' : ''}`,
    );
  } else if (disk.inUse && (assigned.length === 0 || (!disk.mounted && disk.holders.length === 0))) {
    // A volume's own disks are mounted by it; held though mounted nowhere, a disk is nobody's to take.
    reasons.push(
      disk.mounted
        ? `in use: mounted at ${disk.mountPoints.join(', ')}`
        : disk.holders.length > 0
          ? `in use by ${disk.holders.join(', ')}`
          : (disk.usage ?? 'in use by another program'),
    );
  }
  if (action === 'use') {
    if (query.filesystem !== null && disk.filesystem !== query.filesystem) {
      reasons.push(
        disk.filesystem === null
          ? `filesystem unknown${disk.encrypted ? ' (encrypted, not recorded in metadata)' : ''}, the query asks for ${query.filesystem}`
          : `filesystem is ${disk.filesystem}, not ${query.filesystem}`,
      );
    } else if (disk.filesystem === null && !disk.encrypted) {
      // A half-initialised disk: promising it would only make the mount fail later.
      reasons.push('its data partition holds no filesystem (initialize-disk --force recreates it)');
    }
    if (wantsEncryption(query)) {
      if (!disk.encrypted) reasons.push('not encrypted, but the query gives a passphrase');
      else {
        const unlock = options.unlocks?.get(disk.device);
        if (unlock === false) reasons.push('the passphrase does not open it');
        else if (unlock === undefined) reasons.push('the passphrase was not tested');
        else if (typeof unlock === 'string') reasons.push(`its passphrase could not be tested: ${unlock}`);
      }
    } else if (disk.encrypted) {
      reasons.push('encrypted, but the query gives no passphrase');
    }
  }
  return reasons;
}

/** Whether initialised `disk`, in use now, would match `query` once free (RejectedMatch.busy). */
function onlyBusy(query: VolumeQuery, disk: DiskReport, host: Host, options: MatchOptions): boolean {
  if (disk.state !== 'initialised' || !disk.inUse) return false;
  const unlocks = new Map(options.unlocks);
  // Opening it may have failed for the same reason; only a passphrase that did not open it counts.
  if (unlocks.get(disk.device) !== false) unlocks.set(disk.device, true);
  return diskReasons(query, { ...disk, inUse: false }, host, { ...options, unlocks }).length === 0;
}

const ACTION_RANK: Record<DiskAction, number> = { use: 0, relabel: 1, initialise: 2 };

function numbering(disk: DiskReport): number {
  if (disk.state !== 'initialised' || !/^\d+$/.test(disk.numbering)) return Number.POSITIVE_INFINITY;
  return Number(disk.numbering);
}

export function matchDisks(
  query: VolumeQuery,
  disks: readonly DiskReport[],
  host: Host,
  options: MatchOptions = {},
): MatchResult {
  const candidates: ChosenDisk[] = [];
  const rejected: RejectedMatch[] = [];
  for (const disk of disks) {
    const reasons = diskReasons(query, disk, host, options);
    const action = actionFor(query, disk);
    if (reasons.length > 0 || action === undefined || disk.state === 'rejected')
      rejected.push({ disk, reasons, ...(onlyBusy(query, disk, host, options) ? { busy: true } : {}) });
    else candidates.push({ ...disk, action } as ChosenDisk);
  }
  const assignedHere = (d: ChosenDisk) =>
    options.volume !== undefined && (d.assignment?.volumes.includes(options.volume) ?? false) ? 0 : 1;
  candidates.sort(
    (a, b) =>
      assignedHere(a) - assignedHere(b) ||
      ACTION_RANK[a.action] - ACTION_RANK[b.action] ||
      (query.persistNumbering ? numbering(a) - numbering(b) : 0) ||
      naturalCompare(a.name, b.name),
  );
  const cap = query.maxDisks > 0 ? query.maxDisks : Number.POSITIVE_INFINITY;
  const chosen: ChosenDisk[] = [];
  const spare: ChosenDisk[] = [];
  for (const disk of candidates) {
    // Erasing or initialising a disk only happens to reach min-disks; disks
    // that already hold data of this label are all taken (up to max-disks).
    const wanted =
      disk.action === 'use' ? chosen.length < cap : chosen.length < Math.min(query.minDisks, cap);
    (wanted ? chosen : spare).push(disk);
  }
  return { chosen, spare, rejected, satisfied: chosen.length >= query.minDisks };
}
