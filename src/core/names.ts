/**
 * Names derived from other names, in one place so every caller agrees
 * (partition nodes, LUKS mapping names, device globs).
 *
 * Exports: `naturalCompare`, `kernelName`, `partitionName`, `mapperName`, `mapperOfSource`, `isMapperName`,
 * `globMatches`, `fitFileName`, `VIRTUAL_DEVICE_GLOBS`, `METADATA_PARTITION_NAME`, `METADATA_PARTITION_TYPE`,
 * `DATA_PARTITION_TYPE`.
 */
import { createHash } from 'node:crypto';

/** GPT name and type GUID of partition 1 (shared/reference.md §1: keep for compatibility). */
export const METADATA_PARTITION_NAME = 'simple-metadata';
export const METADATA_PARTITION_TYPE = '903b0d2d-812e-4029-89fa-a905b9cd80c1';
/** Partition 2: "Linux filesystem data". */
export const DATA_PARTITION_TYPE = '0fc63daf-8483-4772-8e79-3d69d8477de4';

/**
 * Kernel devices scan-disks leaves out unless `--include` names them: they are
 * views of other devices or memory, not disks one hands to a container.
 */
export const VIRTUAL_DEVICE_GLOBS = [
  'loop*',
  'ram*',
  'zram*',
  'dm-*',
  'md*',
  'sr*',
  'fd*',
  'nbd*',
  'ubd*',
] as const;

/** "loop10" after "loop9": digits compare as numbers. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** "/dev/sdb" or "sdb" → "sdb". */
export function kernelName(device: string): string {
  return device.replace(/^\/dev\//, '');
}

/** The kernel's name for partition `n` of `disk`: sdb → sdb2, loop5 → loop5p2, nvme0n1 → nvme0n1p2. */
export function partitionName(disk: string, n: number): string {
  const name = kernelName(disk);
  return /\d$/.test(name) ? `${name}p${n}` : `${name}${n}`;
}

/**
 * Whether `name` is a device-mapper name luks-open may create or luks-close may close:
 * not `control`, which /dev/mapper holds for device-mapper itself.
 */
export function isMapperName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && name !== 'control';
}

/** The device-mapper name an opened data partition gets: stable across reboots and hosts. */
export function mapperName(dataPartitionUuid: string): string {
  return `simple-${dataPartitionUuid.toLowerCase()}`;
}

/** The mapping a mount's source (`/dev/mapper/simple-…`) is, when it is one mapperName gives. */
export function mapperOfSource(source: string): string | undefined {
  const name = source.startsWith('/dev/mapper/') ? source.slice('/dev/mapper/'.length) : '';
  return name.startsWith('simple-') && isMapperName(name) ? name : undefined;
}

/** Shell-style glob (`*`, `?`, `[abc]`, `[!a]`) against a whole name. */
export function globMatches(pattern: string, name: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let set = pattern.slice(i + 1, end);
        if (set.startsWith('!')) set = `^${set.slice(1)}`;
        re += `[${set.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`).test(name);
}

/** Longest file name (one path component) Linux filesystems accept, in bytes. */
export const NAME_MAX = 255;

/**
 * `stem + suffix` when it fits in one path component; otherwise the start of
 * `stem`, a hash of the whole of it and `suffix`, so that names derived from a
 * long volume name or a deep mount point still differ and can still be created
 * (open and rename fail with ENAMETOOLONG past NAME_MAX bytes).
 */
export function fitFileName(stem: string, suffix = ''): string {
  const whole = `${stem}${suffix}`;
  if (Buffer.byteLength(whole) <= NAME_MAX) return whole;
  const hash = `-${createHash('sha256').update(stem).digest('hex').slice(0, 16)}`;
  const room = NAME_MAX - Buffer.byteLength(hash) - Buffer.byteLength(suffix);
  let head = '';
  for (const c of stem) {
    if (Buffer.byteLength(head + c) > room) break;
    head += c;
  }
  return `${head}${hash}${suffix}`;
}
