/**
 * initialize-disk as data: the ordered steps (with their argv) that turn a
 * disk into the simple layout, so `--dry-run`, `--json` and tests see exactly
 * what would run, and a failure can say what state the disk was left in.
 *
 * Exports: `planInitialisation(input)` → `InitPlan`, `InitStep`, `dataPartitionBytes(size)`,
 * `minimumDiskBytes(filesystem, encrypted)`, `sgdiskLayoutArgs`, `mkfsArgs`, `DEFAULT_FILESYSTEM`.
 */
import { type DiskMetadata, encodeMetadata, METADATA_PARTITION_BYTES, newMetadata } from './metadata.js';
import {
  DATA_PARTITION_TYPE,
  METADATA_PARTITION_NAME,
  METADATA_PARTITION_TYPE,
  mapperName,
  partitionName,
} from './names.js';
import type { Filesystem, VolumeQuery } from './query.js';

export const DEFAULT_FILESYSTEM: Filesystem = 'ext4';

/** Bytes before the data partition (it starts at sector 6144, aligned after the metadata partition). */
const DATA_OFFSET_BYTES = 6144 * 512;
/** The backup GPT at the end of the disk: 33 sectors. */
const GPT_BACKUP_BYTES = 33 * 512;
/** A LUKS2 header with its default 16 MiB keyslot area, plus room to spare. */
const LUKS_OVERHEAD_BYTES = 17 * 1024 * 1024;
/** What mkfs of each filesystem refuses to go below (measured with Debian 12's tools). */
const FILESYSTEM_MIN_BYTES: Record<Filesystem, number> = {
  ext2: 4 * 1024 * 1024,
  ext3: 4 * 1024 * 1024,
  ext4: 4 * 1024 * 1024,
  btrfs: 110 * 1024 * 1024,
  xfs: 300 * 1024 * 1024,
};

/** Size of the data partition that the layout leaves on a disk of `diskBytes`. */
export function dataPartitionBytes(diskBytes: number): number {
  return Math.max(0, diskBytes - DATA_OFFSET_BYTES - GPT_BACKUP_BYTES);
}

/** The smallest disk that can hold the layout with this filesystem (inside LUKS when `encrypted`). */
export function minimumDiskBytes(filesystem: Filesystem, encrypted: boolean): number {
  return (
    DATA_OFFSET_BYTES +
    GPT_BACKUP_BYTES +
    FILESYSTEM_MIN_BYTES[filesystem] +
    (encrypted ? LUKS_OVERHEAD_BYTES : 0)
  );
}

/**
 * The original tool's partitioning (shared/reference.md §1), plus the data
 * partition's type spelled out: partition 1 of 1 MiB at 1 MiB for metadata,
 * partition 2 the rest of the disk, named after the label.
 */
export function sgdiskLayoutArgs(
  label: string,
  device: string,
  uuids?: { metadata: string; data: string },
): string[] {
  const fixed = uuids ? ['-u', `1:${uuids.metadata}`, '-u', `2:${uuids.data}`] : [];
  return [
    '-o',
    '-n',
    '1:1M:2M',
    '-t',
    `1:${METADATA_PARTITION_TYPE}`,
    '-c',
    `1:${METADATA_PARTITION_NAME}`,
    '-n',
    '2:0:0',
    '-t',
    `2:${DATA_PARTITION_TYPE}`,
    '-c',
    `2:${label}`,
    ...fixed,
    device,
  ];
}

interface StepBase {
  /** What the step does, for progress and results. */
  description: string;
  /** The disk's state if this step fails (so far everything before it succeeded). */
  ifFails: string;
}

export type InitStep = StepBase &
  (
    | { kind: 'run'; command: string; args: string[]; okExitCodes?: number[]; optional?: boolean }
    | { kind: 'forget-partitions'; device: string }
    | { kind: 'reread-partitions'; device: string }
    | { kind: 'write-metadata'; device: string; bytes: Buffer; padTo: number }
    | { kind: 'luks-format'; device: string }
    | { kind: 'luks-open'; device: string; name: string }
    | { kind: 'mkfs'; filesystem: Filesystem; device: string }
    | { kind: 'luks-close'; name: string }
  );

export interface InitPlanInput {
  device: string;
  sizeBytes: number;
  query: VolumeQuery;
  host: { hostname: string; machineId: string };
  /** The disk holds something (a table, a signature, an earlier initialisation): wipe it first. */
  wipe: boolean;
  /** Metadata of an earlier initialisation, whose unknown keys are kept. */
  previous?: DiskMetadata;
  /** PARTUUIDs to give the partitions (the LUKS mapping is named after the data one). */
  partitionUuids: { metadata: string; data: string };
}

export interface InitPlan {
  device: string;
  label: string;
  filesystem: Filesystem;
  encrypted: boolean;
  metadata: DiskMetadata;
  metadataPartition: string;
  dataPartition: string;
  partitionUuids: { metadata: string; data: string };
  steps: InitStep[];
}

export function planInitialisation(input: InitPlanInput): InitPlan {
  const { device, query } = input;
  const filesystem = query.filesystem ?? DEFAULT_FILESYSTEM;
  const encrypted = query.encryptionPassphrase !== null || query.encryptionKey !== null;
  const metaDevice = `/dev/${partitionName(device, 1)}`;
  const dataDevice = `/dev/${partitionName(device, 2)}`;
  const metadata = newMetadata({
    hostname: input.host.hostname,
    machineId: input.host.machineId,
    label: query.label,
    encrypted,
    metadata: { filesystem },
    extra: input.previous?.extra ?? [],
  });
  const bytes = encodeMetadata(metadata);
  const fsState = `partitioned, metadata written (label '${query.label}')`;
  const steps: InitStep[] = [];
  if (input.wipe) {
    steps.push(
      {
        kind: 'forget-partitions',
        device,
        description: `removing the old partitions of ${device} from the kernel`,
        ifFails: 'unchanged',
      },
      {
        kind: 'run',
        command: 'wipefs',
        args: ['--all', device],
        description: `erasing signatures on ${device}`,
        ifFails: 'partly wiped: some of its old signatures may be erased, its data is otherwise unchanged',
      },
      {
        kind: 'run',
        command: 'sgdisk',
        args: ['--zap-all', device],
        description: `destroying the old partition table of ${device}`,
        ifFails: 'wiped of signatures; the old partition table may be partly destroyed',
      },
    );
  }
  steps.push(
    {
      kind: 'run',
      command: 'sgdisk',
      args: sgdiskLayoutArgs(query.label, device, input.partitionUuids),
      description: `writing the GPT layout to ${device}`,
      ifFails: input.wipe
        ? 'wiped, with no usable partition table'
        : 'possibly with a partial partition table',
    },
    {
      kind: 'reread-partitions',
      device,
      description: `telling the kernel about the new partitions of ${device}`,
      ifFails: 'partitioned, but without metadata (scan-disks shows it as rejected)',
    },
    {
      kind: 'write-metadata',
      device: metaDevice,
      bytes,
      padTo: METADATA_PARTITION_BYTES,
      description: `writing the metadata to ${metaDevice}`,
      ifFails: 'partitioned, with missing or partial metadata (scan-disks shows it as rejected)',
    },
    {
      kind: 'run',
      command: 'wipefs',
      args: ['--all', dataDevice],
      description: `erasing old signatures in ${dataDevice}`,
      ifFails: `${fsState}, but its data partition may still show old contents`,
    },
  );
  if (input.wipe) {
    steps.push({
      kind: 'run',
      command: 'blkdiscard',
      args: [dataDevice],
      optional: true,
      description: `discarding the old contents of ${dataDevice}`,
      ifFails: `${fsState}, old contents not discarded`,
    });
  }
  let target = dataDevice;
  if (encrypted) {
    const name = mapperName(input.partitionUuids.data);
    steps.push(
      {
        kind: 'luks-format',
        device: dataDevice,
        description: `formatting ${dataDevice} as LUKS`,
        ifFails: `${fsState}, without LUKS or filesystem`,
      },
      {
        kind: 'luks-open',
        device: dataDevice,
        name,
        description: `opening ${dataDevice}`,
        ifFails: `${fsState}, LUKS-formatted, without a filesystem`,
      },
    );
    target = `/dev/mapper/${name}`;
  }
  steps.push({
    kind: 'mkfs',
    filesystem,
    device: target,
    description: `creating ${filesystem} on ${target}`,
    ifFails: `${fsState}${encrypted ? ', LUKS-formatted' : ''}, without a complete filesystem`,
  });
  if (encrypted) {
    const name = mapperName(input.partitionUuids.data);
    steps.push({
      kind: 'luks-close',
      name,
      description: `closing ${name}`,
      ifFails: `initialised; the LUKS mapping ${name} is still open`,
    });
  }
  return {
    device,
    label: query.label,
    filesystem,
    encrypted,
    metadata,
    metadataPartition: metaDevice,
    dataPartition: dataDevice,
    partitionUuids: input.partitionUuids,
    steps,
  };
}

/** The argv of a mkfs step: `mkfs -t FS -q DEV` (reference §1, quiet). */
export function mkfsArgs(filesystem: Filesystem, device: string): string[] {
  return ['-t', filesystem, '-q', device];
}
