/**
 * Block devices as the kernel lists them in /sys/class/block. No udev needed:
 * everything here is read from sysfs attributes.
 *
 * Exports: `SysBlockDevice`, `readSysBlock(name)`, `listSysBlock()`, `loopsBackedBy(devices)`, `slavesOf(name)`, `SYS_CLASS_BLOCK`.
 */
import { readdir, readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { naturalCompare } from '../core/names.js';

export const SYS_CLASS_BLOCK = '/sys/class/block';

export interface SysBlockDevice {
  /** Kernel name, e.g. "sdb", "loop5", "loop5p2". */
  name: string;
  /** /dev path the kernel name maps to. */
  device: string;
  /** "major:minor". */
  devNumber: string;
  isPartition: boolean;
  /** Kernel name of the whole disk, for partitions. */
  parent: string | null;
  /** Partition number, for partitions. */
  partitionNumber: number | null;
  /** `size` is always in 512-byte sectors, whatever the logical block size. */
  sizeBytes: number;
  readOnly: boolean;
  removable: boolean;
  /** Devices stacked on this one (dm-crypt mappings, md arrays), by kernel name. */
  holders: string[];
  /** Kernel names of this disk's partitions the kernel knows about. */
  partitions: string[];
  /** For loop devices: the file behind it. */
  loopBackingFile: string | null;
  /** Whether the kernel keeps partitions on it: not on device-mapper or zram devices (ext_range 1). */
  partitionable: boolean;
  model: string | null;
}

async function attr(dir: string, name: string): Promise<string | null> {
  try {
    return (await readFile(join(dir, name), 'utf8')).trim();
  } catch {
    return null;
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** One device's sysfs facts, or undefined when the kernel has no such block device. */
export async function readSysBlock(
  name: string,
  root = SYS_CLASS_BLOCK,
): Promise<SysBlockDevice | undefined> {
  const dir = join(root, name);
  const devNumber = await attr(dir, 'dev');
  if (devNumber === null) return undefined;
  const partitionText = await attr(dir, 'partition');
  const isPartition = partitionText !== null;
  let parent: string | null = null;
  if (isPartition) {
    // /sys/class/block/loop5p2 -> …/block/loop5/loop5p2
    parent = basename(dirname(await realpath(dir)));
  }
  const entries = await list(dir);
  const partitions: string[] = [];
  if (!isPartition) {
    for (const entry of entries) {
      if (entry.startsWith(name) && (await attr(join(dir, entry), 'partition')) !== null)
        partitions.push(entry);
    }
  }
  const backing = await attr(dir, 'loop/backing_file');
  const model = (await attr(dir, 'device/model')) ?? (await attr(dir, 'serial'));
  return {
    name,
    device: `/dev/${name}`,
    devNumber,
    isPartition,
    parent,
    partitionNumber: isPartition ? Number(partitionText) : null,
    sizeBytes: Number(await attr(dir, 'size')) * 512,
    readOnly: (await attr(dir, 'ro')) === '1',
    removable: (await attr(dir, 'removable')) === '1',
    holders: await list(join(dir, 'holders')),
    partitions: partitions.sort(naturalCompare),
    loopBackingFile: backing === null || backing === '' ? null : backing,
    partitionable: (await attr(dir, 'ext_range')) !== '1',
    // Some drivers (UML's ubd) report "(null)".
    model: model === '' || model === '(null)' ? null : model,
  };
}

/**
 * The kernel names of the devices a device-mapper device `name` (dm-N) sits
 * on; empty when it has none the kernel still lists, or is no such device.
 */
export async function slavesOf(name: string, root = SYS_CLASS_BLOCK): Promise<string[]> {
  return (await list(join(root, name, 'slaves'))).sort(naturalCompare);
}

/**
 * Loop devices (kernel names) whose backing file is one of `devices` (/dev
 * paths; links such as /dev/disk/by-id/… are followed). Such a loop device
 * uses the disk without showing as its holder or opening it exclusively: a
 * filesystem mounted from it lives on the disk.
 */
export async function loopsBackedBy(devices: ReadonlySet<string>, root = SYS_CLASS_BLOCK): Promise<string[]> {
  const found: string[] = [];
  for (const name of await list(root)) {
    if (!name.startsWith('loop')) continue;
    const backing = await attr(join(root, name), 'loop/backing_file');
    if (!backing) continue;
    const real = await realpath(backing).catch(() => backing);
    if (devices.has(real)) found.push(name);
  }
  return found.sort(naturalCompare);
}

/** Every block device the kernel knows (whole disks and partitions). */
export async function listSysBlock(root = SYS_CLASS_BLOCK): Promise<SysBlockDevice[]> {
  const names = (await list(root)).sort(naturalCompare);
  const devices = await Promise.all(names.map((name) => readSysBlock(name, root)));
  return devices.filter((d): d is SysBlockDevice => d !== undefined);
}
