/**
 * One disk in and out of a volume: make its data partition visible to the
 * kernel, open it when encrypted, mount it on its directory; and the reverse.
 * Each step that creates something registers its undo.
 */
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { probe } from '../adapters/blkid.js';
import * as cryptsetup from '../adapters/cryptsetup.js';
import { blockDeviceFacts } from '../adapters/disk-watch.js';
import { isBusyError, mountFilesystem, unmount } from '../adapters/mount.js';
import { mountAt, readMountTable } from '../adapters/mountinfo.js';
import { rereadPartitions } from '../adapters/partx.js';
import { readSysBlock, slavesOf } from '../adapters/sysfs.js';
import type { MountedDisk } from '../core/assignments.js';
import { diskId, type InitialisedDisk } from '../core/disk-state.js';
import { errorMessage, OperationError } from '../core/errors.js';
import { kernelName, mapperName } from '../core/names.js';
import type { CommandContext } from './context.js';
import type { Undo } from './undo.js';

/** The device's diskseq now (null when the kernel does not report one). */
export async function currentDiskseq(device: string): Promise<number | null> {
  return (await blockDeviceFacts(kernelName(device)))?.diskseq ?? null;
}

export interface MountDiskRequest {
  disk: InitialisedDisk;
  /** Volume root and the disk's directory name under it. */
  root: string;
  dirName: string;
  /** For encrypted disks. */
  passphrase: string | null;
  /**
   * Whether a mount the state records reads through LUKS mapping `name`.
   * An open mapping of the disk that none does (a mount that died after
   * opening it, or `luks-open`) becomes this disk's to close.
   */
  mapperInUse: (name: string) => boolean;
}

/** Mounts one initialised disk at root/dirName (the directory exists). */
export async function mountDisk(
  req: MountDiskRequest,
  ctx: CommandContext,
  undo: Undo,
): Promise<MountedDisk> {
  const { disk } = req;
  const mountPoint = join(req.root, req.dirName);
  const partition = disk.dataPartition.device;
  if (!disk.dataPartition.present) {
    // Hosts without udev (and loop devices attached without -P) learn partitions only when told.
    ctx.progress(`reading the partition table of ${disk.device}`);
    await rereadPartitions(disk.device, ctx.log);
  }
  let source = partition;
  let mapper: string | null = null;
  let fsType = disk.filesystem;
  if (disk.encrypted) {
    if (req.passphrase === null)
      throw new OperationError(`${disk.device} is encrypted and the query gives no passphrase`);
    if (!(await cryptsetup.deviceMapperAvailable(ctx.log))) {
      throw new OperationError(
        `cannot open the encrypted disk ${disk.device}: this kernel has no device-mapper`,
      );
    }
    mapper = mapperName(disk.dataPartition.uuid);
    const existing = `/dev/mapper/${mapper}`;
    ctx.progress(`opening ${partition}`);
    try {
      source = await cryptsetup.open(partition, mapper, req.passphrase, ctx.log);
      const name = mapper;
      undo.push(`close ${name}`, () => cryptsetup.close(name, ctx.log));
    } catch (error) {
      const text = `${errorMessage(error)}\n${(error as { detail?: string }).detail ?? ''}`;
      if (/cannot initialize device-mapper/i.test(text)) {
        throw new OperationError(
          `cannot open the encrypted disk ${disk.device}: this kernel has no device-mapper`,
          {
            cause: error,
          },
        );
      }
      // Shared by a non-exclusive volume: the mapping is already there and ours to reuse.
      if (!existsSync(existing)) throw error;
      await assertMapsPartition(existing, partition, mapper, ctx);
      source = existing;
      // The volume that opened it closes it; one nobody reads through is this volume's now,
      // or nothing would ever close it.
      if (req.mapperInUse(mapper)) mapper = null;
      else ctx.log.info(`${existing} was open already, and no volume reads through it: taking it over`);
    }
    fsType = (await probe(source, { logger: ctx.log })).values.TYPE ?? fsType;
  }
  ctx.progress(`mounting ${source} at ${mountPoint}`);
  await mountFilesystem(source, mountPoint, { ...(fsType ? { fsType } : {}), logger: ctx.log });
  undo.push(`unmount ${mountPoint}`, () => unmount(mountPoint, { logger: ctx.log }));
  const table = await readMountTable();
  return {
    id: diskId(disk),
    dirName: req.dirName,
    mountPoint,
    device: disk.device,
    source,
    fsType: fsType ?? mountAt(table, mountPoint)?.fsType ?? '',
    mapper,
  };
}

/**
 * Refuses a mapping by this disk's name that does not sit on its data
 * partition: one left open on the old device when the disk went away with
 * its filesystem in use (its close failed), or anyone else's. Mounted as
 * the disk, it would hand a container another device's filesystem, or a
 * dead one. Where the kernel lists what a mapping sits on (User-Mode Linux
 * does not), a mapping left on a disk that went away is not among the
 * holders of the disk that came back, even under the same name and number.
 */
async function assertMapsPartition(
  existing: string,
  partition: string,
  name: string,
  ctx: CommandContext,
): Promise<void> {
  const part = await realpath(partition);
  const on = await cryptsetup.mappedDevice(name, ctx.log);
  const onPart = on !== null && (await realpath(on).catch(() => on)) === part;
  const dm = kernelName(await realpath(existing));
  const listed = (await slavesOf(dm)).length > 0;
  const held = (await readSysBlock(kernelName(part)))?.holders.includes(dm) ?? false;
  if (onPart && (held || !listed)) return;
  const close = `close it (simplectl luks-close ${name}) and mount again`;
  if (onPart) {
    throw new OperationError(
      `${existing} is already open on the ${partition} that went away, not on the one there now: it is stale; ${close}`,
    );
  }
  throw new OperationError(
    `${existing} is already open, but not on ${partition}${on === null ? '' : ` (it maps ${on})`}: ` +
      `it is not this disk's mapping; if it is stale, ${close}`,
  );
}

export interface UnmountDiskOptions {
  /** Detach even if busy (the disk is gone, or the operator asked). */
  lazy?: boolean;
  /** True when another mount still uses the mapper (a non-exclusive volume shares it). */
  mapperInUse?: (mapper: string) => boolean;
}

/** Unmounts one disk of a volume and closes its LUKS mapping; a mount point already gone is fine. */
export async function unmountDisk(
  disk: MountedDisk,
  options: UnmountDiskOptions,
  ctx: CommandContext,
): Promise<void> {
  await detachDisk(disk, options, ctx);
  await closeDiskMapper(disk, options, ctx);
}

/** Unmounts one disk of a volume, leaving its LUKS mapping open (so it can be mounted back at once). */
export async function detachDisk(
  disk: MountedDisk,
  options: Pick<UnmountDiskOptions, 'lazy'>,
  ctx: CommandContext,
): Promise<void> {
  if (!mountAt(await readMountTable(), disk.mountPoint)) return;
  try {
    await unmount(disk.mountPoint, { lazy: options.lazy ?? false, logger: ctx.log });
  } catch (error) {
    if (isBusyError(error)) {
      throw new OperationError(
        `${disk.mountPoint} is busy (a process still uses the disk); stop it, or unmount with --lazy`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** Mounts a disk detachDisk took off back where it was (undoing a umount that could not finish). */
export async function reattachDisk(disk: MountedDisk, ctx: CommandContext): Promise<void> {
  await mountFilesystem(disk.source, disk.mountPoint, {
    ...(disk.fsType ? { fsType: disk.fsType } : {}),
    logger: ctx.log,
  });
}

/** Closes the LUKS mapping of a disk detachDisk unmounted, unless another mount still uses it. */
async function closeDiskMapper(
  disk: MountedDisk,
  options: Pick<UnmountDiskOptions, 'mapperInUse'>,
  ctx: CommandContext,
): Promise<void> {
  if (disk.mapper && !options.mapperInUse?.(disk.mapper)) await closeMapper(disk.mapper, ctx);
}

/** Closes LUKS mapping `name`; a failure is logged. */
export async function closeMapper(name: string, ctx: CommandContext): Promise<void> {
  try {
    await cryptsetup.close(name, ctx.log);
  } catch (error) {
    // After a lazy unmount the mapping may still be held; it cannot be closed yet.
    ctx.log.warn(`could not close ${name}: ${errorMessage(error)}`);
  }
}
