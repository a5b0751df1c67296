/**
 * Gathers the facts about whole disks that core/disk-state.ts classifies:
 * sysfs for the device list and sizes, `blkid -p` and `partx` for what is on
 * the disk (read from the disk itself, so no udev and no kernel partition
 * nodes are needed), the mount table and /proc/swaps for what uses it.
 *
 * Exports: `listBlockDevices({ include })`, `resolveBlockDevice(device)`, `resolveDisk(device)`,
 * `inspectDisk(device, { logger })`,
 * `readDevice(device, offset, length)`, `writeDevice(device, offset, data)`, `assertNotBusy(device)`,
 * `layoutFingerprint(device, sizeBytes)`.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, realpath } from 'node:fs/promises';
import type { DiskFacts } from '../core/disk-state.js';
import { errorMessage, OperationError, UsageError } from '../core/errors.js';
import { decodeMetadata, METADATA_PARTITION_BYTES, MetadataError } from '../core/metadata.js';
import { globMatches, kernelName, METADATA_PARTITION_NAME, VIRTUAL_DEVICE_GLOBS } from '../core/names.js';
import { type Probe, ProbeReadError, probe } from './blkid.js';
import { diskLockedBy } from './disk-lock.js';
import type { Logger } from './logger.js';
import { readMountTable } from './mountinfo.js';
import { PartitionTableReadError, readPartitionTable } from './partx.js';
import { listSysBlock, loopsBackedBy, readSysBlock, SYS_CLASS_BLOCK, type SysBlockDevice } from './sysfs.js';

export interface ListOptions {
  /**
   * Globs of kernel names ("loop5", "sd*", "/dev/vdb"). When given, exactly the
   * whole devices matching one of them are listed, virtual ones included;
   * otherwise every whole disk except virtual devices (loop, ram, zram, dm, …).
   */
  include?: readonly string[];
}

/** Whole disks with a medium (size > 0), filtered as `include` says, in natural name order. */
export async function listBlockDevices(options: ListOptions = {}): Promise<SysBlockDevice[]> {
  const include = (options.include ?? []).map(kernelName);
  const all = await listSysBlock();
  const hidden = await Promise.all(
    all.map(
      async (d) =>
        (await readFile(`${SYS_CLASS_BLOCK}/${d.name}/hidden`, 'utf8').catch(() => '0')).trim() === '1',
    ),
  );
  return all.filter((d, i) => {
    if (d.isPartition || d.sizeBytes === 0 || hidden[i]) return false;
    if (include.length > 0) return include.some((g) => globMatches(g, d.name));
    return !VIRTUAL_DEVICE_GLOBS.some((g) => globMatches(g, d.name));
  });
}

/**
 * The block device (whole disk or partition) named by a path or a kernel
 * name; symlinks such as /dev/disk/by-id/… are followed. Anything else (a
 * regular file, a name with a '/' in it) is no block device.
 */
export async function resolveBlockDevice(device: string): Promise<SysBlockDevice> {
  const none = () => new OperationError(`${device}: no such block device`);
  let name = kernelName(device);
  if (device.startsWith('/')) {
    const real = await realpath(device).catch(() => {
      throw none();
    });
    if (!real.startsWith('/dev/')) throw none();
    name = kernelName(real);
  }
  if (name === '' || name.includes('/') || name === '.' || name === '..') throw none();
  const sys = await readSysBlock(name);
  if (!sys) throw none();
  return sys;
}

/** The whole disk named by a path or kernel name (symlinks such as /dev/disk/by-id/… are followed). */
export async function resolveDisk(device: string): Promise<SysBlockDevice> {
  const sys = await resolveBlockDevice(device);
  if (sys.isPartition) {
    throw new UsageError(`${device} is a partition; give the whole disk (/dev/${sys.parent})`);
  }
  if (sys.sizeBytes === 0) throw new OperationError(`${device} has no medium (size 0)`);
  return sys;
}

/** Reads `length` bytes at `offset` of a device (short at the end of the device). */
export async function readDevice(device: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(device, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Writes `data` at `offset` of a device and flushes it to the medium. */
export async function writeDevice(device: string, offset: number, data: Uint8Array): Promise<void> {
  const handle = await open(device, constants.O_WRONLY | constants.O_EXCL);
  try {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await handle.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The start of a disk that holds its partition table, signatures and our metadata partition. */
const FINGERPRINT_HEAD_BYTES = 3 * 1024 * 1024;
/** The end of a disk: the backup GPT and the signatures kept there (md, some RAID). */
const FINGERPRINT_TAIL_BYTES = 1024 * 1024;

/**
 * A digest of the regions of `device` that initialize-disk changes first: the
 * first 3 MiB (protective MBR, GPT, filesystem and LUKS signatures, the
 * simple-metadata partition) and the last 1 MiB (backup GPT). Equal digests
 * before and after a failed run mean that run left its layout as it was.
 */
export async function layoutFingerprint(device: string, sizeBytes: number): Promise<string> {
  const hash = createHash('sha256');
  hash.update(await readDevice(device, 0, Math.min(FINGERPRINT_HEAD_BYTES, sizeBytes)));
  const tail = Math.min(FINGERPRINT_TAIL_BYTES, sizeBytes);
  hash.update(await readDevice(device, sizeBytes - tail, tail));
  return hash.digest('hex');
}

/**
 * True when the kernel or another program holds `device` (or one of its
 * partitions) exclusively: an O_EXCL open of a block device fails with EBUSY
 * then. This is how a filesystem unmounted with `umount --lazy` while still
 * busy shows: in no mount table, yet the disk is not free. The handle is
 * closed at once; a mount starting in that instant could see EBUSY, so the
 * scan asks only about disks nothing else shows in use.
 */
export async function isHeldExclusively(device: string, logger?: Logger): Promise<boolean> {
  try {
    const handle = await open(device, constants.O_RDONLY | constants.O_EXCL);
    await handle.close();
    return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EBUSY') return true;
    logger?.debug(`exclusive open of ${device} to see whether it is in use: ${errorMessage(error)}`);
    return false;
  }
}

/**
 * Throws when another program holds `device` exclusively (a mount, swap,
 * dm-crypt, md …): an O_EXCL open of a block device fails with EBUSY then.
 * Used right before writing.
 */
export async function assertNotBusy(device: string): Promise<void> {
  try {
    const handle = await open(device, constants.O_RDONLY | constants.O_EXCL);
    await handle.close();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EBUSY') {
      throw new OperationError(`${device} is in use by another program (it cannot be opened exclusively)`);
    }
    throw error;
  }
}

async function dmName(holder: string): Promise<string | null> {
  return (await readFile(`${SYS_CLASS_BLOCK}/${holder}/dm/name`, 'utf8').catch(() => '')).trim() || null;
}

async function swapDevices(): Promise<string[]> {
  const text = await readFile('/proc/swaps', 'utf8').catch(() => '');
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

/** Reads everything classifyDisk needs about one whole disk. Never writes. */
export async function inspectDisk(
  disk: SysBlockDevice | string,
  options: { logger?: Logger } = {},
): Promise<DiskFacts & { model: string | null }> {
  const sys = typeof disk === 'string' ? await resolveDisk(disk) : disk;
  const logger = options.logger;
  let readError: string | undefined;
  // A disk blkid cannot read is recorded as unreadable (never as blank), and the scan goes on.
  const probeOrNote = async (device: string, range: { offset?: number; size?: number } = {}) => {
    try {
      return await probe(device, { ...range, ...(logger ? { logger } : {}) });
    } catch (error) {
      if (!(error instanceof ProbeReadError)) throw error;
      logger?.debug(error.message);
      readError ??= error.reason;
      return undefined;
    }
  };
  const whole: Probe = (await probeOrNote(sys.device)) ?? { values: {}, ambivalent: false };
  if (readError === undefined && Object.keys(whole.values).length === 0) {
    // blkid -p finds nothing, exit 2 and not a word, when every read fails (util-linux 2.38):
    // what would be blank must show that the regions initialisation writes can be read.
    await layoutFingerprint(sys.device, sys.sizeBytes).catch((error: NodeJS.ErrnoException) => {
      readError = `reading the disk: ${error.message}`;
    });
  }
  const facts: DiskFacts & { model: string | null } = {
    name: sys.name,
    device: sys.device,
    model: sys.model,
    sizeBytes: sys.sizeBytes,
    readOnly: sys.readOnly,
    partitionable: sys.partitionable,
    signature: whole.values,
    ambiguous: whole.ambivalent,
    partitions: [],
    kernelPartitions: sys.partitions,
    mountPoints: [],
    holders: [],
    busy: false,
  };
  if (whole.values.PTTYPE !== undefined) {
    // A table partx cannot read makes the disk unreadable too, and the scan goes on.
    facts.partitions =
      (await readPartitionTable(sys.device, logger).catch((error: unknown) => {
        if (!(error instanceof PartitionTableReadError)) throw error;
        logger?.debug(error.message);
        readError ??= error.reason;
        return null;
      })) ?? [];
    const meta = facts.partitions.filter((p) => p.name === METADATA_PARTITION_NAME);
    const data = facts.partitions.filter((p) => p.name !== METADATA_PARTITION_NAME);
    if (meta.length === 1 && data.length === 1) {
      const m = meta[0]!;
      const d = data[0]!;
      const bytes = await readDevice(
        sys.device,
        m.start * 512,
        Math.min(m.sectors * 512, METADATA_PARTITION_BYTES),
      ).catch((error: NodeJS.ErrnoException) => {
        readError ??= `reading the ${METADATA_PARTITION_NAME} partition: ${error.message}`;
        return undefined;
      });
      if (bytes) {
        try {
          facts.metadata = { ok: true, value: decodeMetadata(bytes) };
        } catch (error) {
          const empty = error instanceof MetadataError && error.empty;
          facts.metadata = { ok: false, error: (error as Error).message, ...(empty ? { empty } : {}) };
        }
      }
      const dataProbe = await probeOrNote(sys.device, { offset: d.start * 512, size: d.sectors * 512 });
      facts.dataSignature = dataProbe?.values ?? {};
    }
  }
  if (readError !== undefined) facts.readError = readError;

  // What uses the disk: its own node, its partitions, and anything stacked on them.
  const parts = await Promise.all(sys.partitions.map((p) => readSysBlock(p)));
  const members = [sys, ...parts.filter((p): p is SysBlockDevice => p !== undefined)];
  const backing = await loopsBackedBy(new Set(members.map((m) => m.device)));
  const holders = [...new Set([...members.flatMap((m) => m.holders), ...backing])];
  const stacked = await Promise.all(holders.map((h) => readSysBlock(h)));
  const sources = new Set(members.map((m) => m.device));
  const numbers = new Set(members.map((m) => m.devNumber));
  for (const h of stacked) {
    if (!h) continue;
    sources.add(h.device);
    numbers.add(h.devNumber);
    const name = await dmName(h.name);
    if (name) sources.add(`/dev/mapper/${name}`);
  }
  const table = await readMountTable();
  facts.mountPoints = table
    .filter((e) => sources.has(e.source) || numbers.has(e.device))
    .map((e) => e.mountPoint);
  const swaps = await swapDevices();
  for (const s of swaps) if (sources.has(s)) facts.mountPoints.push(`[swap ${s}]`);
  facts.holders = holders;
  if (facts.mountPoints.length === 0 && holders.length === 0) {
    facts.busy = await isHeldExclusively(sys.device, logger);
  }
  const lockedBy = await diskLockedBy(sys.name);
  if (lockedBy !== undefined) facts.lockedBy = lockedBy;
  return facts;
}
