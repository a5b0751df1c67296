/**
 * What a disk is, decided from facts read elsewhere (sysfs, blkid, partx, the
 * mount table): blank (a candidate), initialised (ours: label, owner, …) or
 * rejected (with the reason). Rules: shared/reference.md §1 "Disk layout".
 *
 * Exports: `DiskFacts` (input), `DiskReport` = `BlankDisk | InitialisedDisk | RejectedDisk`
 * (output), `classifyDisk(facts, host)`, `withShownAssignment(report, show)`, `MIN_DISK_BYTES`,
 * `DiskAssignment`, `PartitionReport`, `diskId(disk)`, `rejectSharedIds(reports)`, `NO_PARTITIONS`.
 */
import type { DiskMetadata } from './metadata.js';
import { METADATA_PARTITION_NAME, METADATA_PARTITION_TYPE, partitionName } from './names.js';
import { humanSize } from './units.js';

/** Smallest disk we initialise: 2 MiB of layout plus room for a filesystem. */
export const MIN_DISK_BYTES = 16 * 1024 * 1024;

/** One partition table entry, as read from the disk (adapters/partx.ts). */
export interface PartitionFact {
  number: number;
  /** First sector (512 bytes). */
  start: number;
  sectors: number;
  /** Type GUID, lower case (GPT) or hex code (dos). */
  type: string;
  /** GPT partition name ("" for dos). */
  name: string;
  /** PARTUUID, lower case. */
  uuid: string;
}

/** Everything the adapters found out about one whole disk. */
export interface DiskFacts {
  /** Kernel name ("loop5"). */
  name: string;
  /** "/dev/loop5". */
  device: string;
  sizeBytes: number;
  readOnly: boolean;
  /** Whether the kernel keeps partitions on it (not on device-mapper or zram devices). */
  partitionable: boolean;
  /** `blkid -p` of the whole disk: PTTYPE for a partition table, TYPE/USAGE for a filesystem or other signature. */
  signature: Record<string, string>;
  /** blkid saw conflicting signatures. */
  ambiguous: boolean;
  /**
   * Why the disk could not be read ("blkid: Input/output error"), when probing
   * or reading it failed. Such a disk is never blank: what is on it is unknown.
   */
  readError?: string;
  /** Partition table entries (partx), [] when there are none. */
  partitions: PartitionFact[];
  /** Partition kernel names the kernel currently has nodes for. */
  kernelPartitions: string[];
  /** Decoded metadata of partition 1, or why it could not be read (only probed for our layout). */
  metadata?: { ok: true; value: DiskMetadata } | { ok: false; error: string; empty?: boolean };
  /** `blkid -p` of the data partition (only probed for our layout). */
  dataSignature?: Record<string, string>;
  /** Mount points of the disk, its partitions, or devices stacked on them. */
  mountPoints: string[];
  /** Devices stacked on the disk or its partitions (dm-crypt, md), kernel names. */
  holders: string[];
  /**
   * The kernel or another program holds the device (or a partition) open
   * exclusively, though nothing shows it mounted: a filesystem unmounted with
   * `umount --lazy` while still busy, a RAID member, a program using O_EXCL.
   */
  busy: boolean;
  /** Another simplectl is working on the disk (initialize-disk holds its lock): who, in words. */
  lockedBy?: string;
}

export interface PartitionReport {
  number: number;
  /** The node the partition has or will have once the kernel re-reads the table ("/dev/loop5p2"). */
  device: string;
  /** Whether the kernel has that node now (it does not before `partx -u` on hosts without udev). */
  present: boolean;
  /** PARTUUID. */
  uuid: string;
  name: string;
  offsetBytes: number;
  sizeBytes: number;
}

/** Volumes that hold a disk; filled in by the volume layer from its state (null from a plain scan). */
export interface DiskAssignment {
  volumes: string[];
  exclusive: boolean;
}

interface DiskCommon {
  device: string;
  name: string;
  sizeBytes: number;
  model?: string | null;
  mounted: boolean;
  mountPoints: string[];
  /** Mounted, held by a stacked device, or opened exclusively by something. */
  inUse: boolean;
  /** Why the disk is in use, one phrase for a user ("mounted at /srv/a"); null when it is not. */
  usage: string | null;
  holders: string[];
  assignment: DiskAssignment | null;
}

export interface BlankDisk extends DiskCommon {
  state: 'blank';
}

export interface RejectedDisk extends DiskCommon {
  state: 'rejected';
  /** One sentence: why the disk is neither blank nor ours. */
  reason: string;
  /** Set when the disk could not be read at all: nothing may write to it, not even with --force. */
  readError?: string;
  /**
   * The data partition UUID it shares with another disk (see rejectSharedIds): the
   * volume layer knows a disk by it, so a mounted one is still known to be there.
   */
  sharedId?: string;
}

export interface InitialisedDisk extends DiskCommon {
  state: 'initialised';
  /** Name of the data partition (the disk's type). */
  label: string;
  hostname: string;
  machineId: string;
  numbering: string;
  /** Initialised by this host (hostname and machine-id both match). */
  thisHost: boolean;
  encrypted: boolean;
  /** Filesystem of the data partition; for encrypted disks as recorded in metadata, else null. */
  filesystem: string | null;
  metadata: DiskMetadata;
  metadataPartition: PartitionReport;
  dataPartition: PartitionReport;
  /** Inconsistencies worth showing (label in metadata differs from the partition name, …). */
  warnings: string[];
}

export type DiskReport = BlankDisk | InitialisedDisk | RejectedDisk;

/** The disk id the volume layer uses: its data partition's UUID, lowercase. */
export function diskId(disk: InitialisedDisk): string {
  return disk.dataPartition.uuid.toLowerCase();
}

/**
 * A copy of `report` whose assignment names its volumes as `show` writes
 * them: a volume's name may hold its passphrase, so what is shown is masked.
 */
export function withShownAssignment<T extends DiskReport>(report: T, show: (name: string) => string): T {
  if (!report.assignment) return report;
  return { ...report, assignment: { ...report.assignment, volumes: report.assignment.volumes.map(show) } };
}

function partitionReport(facts: DiskFacts, p: PartitionFact): PartitionReport {
  const name = partitionName(facts.name, p.number);
  return {
    number: p.number,
    device: `/dev/${name}`,
    present: facts.kernelPartitions.includes(name),
    uuid: p.uuid,
    name: p.name,
    offsetBytes: p.start * 512,
    sizeBytes: p.sectors * 512,
  };
}

function describeSignature(sig: Record<string, string>): string {
  const type = sig.TYPE ?? 'unknown';
  if (sig.USAGE === 'filesystem') return `has a filesystem (${type}) and no partition table`;
  if (type === 'crypto_LUKS') return 'is a LUKS container without a partition table';
  return `has a ${type} signature${sig.USAGE ? ` (${sig.USAGE})` : ''} and no partition table`;
}

/** Why a partition table is not ours, or undefined when it is our layout. */
function layoutProblem(facts: DiskFacts): string | undefined {
  const pttype = facts.signature.PTTYPE;
  if (pttype !== 'gpt') return `has a foreign partition table (${pttype})`;
  const parts = facts.partitions;
  if (parts.length === 0) return 'has an empty GPT partition table';
  const meta = parts.filter((p) => p.name === METADATA_PARTITION_NAME && p.type === METADATA_PARTITION_TYPE);
  if (meta.length === 0) {
    return `has a GPT partition table without a ${METADATA_PARTITION_NAME} partition (${parts.length} partition${parts.length === 1 ? '' : 's'})`;
  }
  if (meta.length > 1) return `has ${meta.length} ${METADATA_PARTITION_NAME} partitions`;
  if (parts.length === 1) return `has a ${METADATA_PARTITION_NAME} partition but no data partition`;
  if (parts.length > 2)
    return `has ${parts.length - 1} partitions besides ${METADATA_PARTITION_NAME} (expected one)`;
  return undefined;
}

/** Why a disk that is neither mounted nor held by a stacked device is in use (DiskFacts.busy). */
export const BUSY_USAGE =
  'in use though not mounted (it cannot be opened exclusively): a filesystem on it was unmounted with umount --lazy and is still busy, or another program holds it';

/**
 * `reports` with each initialised disk whose data partition UUID another one
 * also has turned into a rejected one. The volume layer knows a disk by that
 * UUID, so it cannot tell such disks apart: a copy of a disk (dd, a cloned VM
 * image) or a second path to the same one (multipath without multipathd).
 * Taking both would mount them on one directory, and two paths to one disk
 * would mount its filesystem twice, which corrupts it; taking either could
 * swap one for the other between mounts.
 */
export function rejectSharedIds(reports: readonly DiskReport[]): DiskReport[] {
  const devices = new Map<string, string[]>();
  for (const r of reports) {
    if (r.state !== 'initialised') continue;
    const id = diskId(r);
    devices.set(id, [...(devices.get(id) ?? []), r.device]);
  }
  return reports.map((r) => {
    if (r.state !== 'initialised') return r;
    const id = diskId(r);
    const others = (devices.get(id) ?? []).filter((d) => d !== r.device);
    if (others.length === 0) return r;
    const { device, name, sizeBytes, model, mounted, mountPoints, inUse, usage, holders, assignment } = r;
    const reason = `shares its data partition's UUID ${id} with ${others.join(', ')}: a copy of one disk (dd, a cloned image) or a second path to it; detach all but one, or give a copy new UUIDs with simplectl initialize-disk --force (which erases it)`;
    return {
      ...{ device, name, sizeBytes, model, mounted, mountPoints, inUse, usage, holders, assignment },
      state: 'rejected',
      reason: [reason, ...(usage ? [usage] : [])].join('; '),
      sharedId: id,
    } satisfies RejectedDisk;
  });
}

/** Why a device the kernel keeps no partitions on is no disk for the simple layout. */
export const NO_PARTITIONS =
  'cannot hold partitions (the kernel keeps none on it, as on device-mapper and zram devices)';

/** Classifies one disk. `host` decides `thisHost`. */
export function classifyDisk(facts: DiskFacts, host: { hostname: string; machineId: string }): DiskReport {
  const mounted = facts.mountPoints.length > 0;
  const usage: string[] = [];
  if (mounted) usage.push(`mounted at ${facts.mountPoints.join(', ')}`);
  else if (facts.holders.length > 0) usage.push(`held by ${facts.holders.join(', ')}`);
  else if (facts.busy) usage.push(BUSY_USAGE);
  else if (facts.lockedBy) usage.push(facts.lockedBy);
  const common: DiskCommon = {
    device: facts.device,
    name: facts.name,
    sizeBytes: facts.sizeBytes,
    mounted,
    mountPoints: facts.mountPoints,
    inUse: usage.length > 0,
    usage: usage[0] ?? null,
    holders: facts.holders,
    assignment: null,
  };
  const reject = (reason: string): RejectedDisk => ({
    ...common,
    state: 'rejected',
    reason: [reason, ...usage].join('; '),
  });

  if (facts.readError !== undefined) {
    return { ...reject(`cannot be read: ${facts.readError}`), readError: facts.readError };
  }
  if (facts.ambiguous) return reject('has conflicting signatures (blkid -p cannot tell what it is)');
  if (facts.signature.PTTYPE !== undefined) {
    const problem = layoutProblem(facts);
    if (problem) return reject(problem);
    return initialised(facts, common, host, reject);
  }
  if (facts.signature.TYPE !== undefined) return reject(describeSignature(facts.signature));
  if (facts.partitions.length > 0) return reject('has partitions but no recognised partition table');
  if (facts.sizeBytes < MIN_DISK_BYTES) {
    return reject(
      `is too small (${humanSize(facts.sizeBytes)}; at least ${humanSize(MIN_DISK_BYTES)} needed)`,
    );
  }
  if (facts.readOnly) return reject('is read-only');
  if (!facts.partitionable) return reject(NO_PARTITIONS);
  if (usage.length > 0) return reject('holds no signature blkid recognises, but is in use');
  return { ...common, state: 'blank' };
}

function initialised(
  facts: DiskFacts,
  common: DiskCommon,
  host: { hostname: string; machineId: string },
  reject: (reason: string) => RejectedDisk,
): DiskReport {
  const metaPart = facts.partitions.find((p) => p.name === METADATA_PARTITION_NAME)!;
  const dataPart = facts.partitions.find((p) => p !== metaPart)!;
  if (!facts.metadata) return reject('metadata partition was not read');
  if (!facts.metadata.ok && facts.metadata.empty) {
    return reject(
      `has an empty ${METADATA_PARTITION_NAME} partition: its initialisation did not finish (simplectl initialize-disk --force ${facts.device} starts it again)`,
    );
  }
  if (!facts.metadata.ok)
    return reject(`has an unreadable ${METADATA_PARTITION_NAME} partition: ${facts.metadata.error}`);
  const m = facts.metadata.value;
  const warnings: string[] = [];
  const data = facts.dataSignature ?? {};
  const luks = data.TYPE === 'crypto_LUKS';
  if (m.label !== dataPart.name) {
    warnings.push(`metadata says label '${m.label}' but the data partition is named '${dataPart.name}'`);
  }
  if (m.encrypted !== luks) {
    warnings.push(
      m.encrypted
        ? 'metadata says encrypted but the data partition holds no LUKS header'
        : 'data partition is LUKS but metadata says not encrypted',
    );
  }
  if (facts.readOnly) warnings.push('the disk is read-only');
  const filesystem = luks
    ? (m.metadata.filesystem ?? null)
    : data.USAGE === 'filesystem'
      ? (data.TYPE ?? null)
      : null;
  return {
    ...common,
    state: 'initialised',
    label: dataPart.name,
    hostname: m.hostname,
    machineId: m.machineId,
    numbering: m.numbering,
    thisHost: m.hostname === host.hostname && m.machineId === host.machineId,
    encrypted: luks || m.encrypted,
    filesystem,
    metadata: m,
    metadataPartition: partitionReport(facts, metaPart),
    dataPartition: partitionReport(facts, dataPart),
    warnings,
  };
}
