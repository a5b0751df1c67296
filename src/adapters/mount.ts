/**
 * mount(8) and umount(8) for volumes: the small tmpfs that holds a volume's
 * directories, and the disks mounted into it. Whether something is mounted is
 * asked of the mount table (adapters/mountinfo.ts), never by stat-ing a path.
 */

import { run } from './exec.js';
import type { Logger } from './logger.js';
import type { MountEntry } from './mountinfo.js';

/** The source name of every volume root tmpfs; lets a mount table alone show which roots are ours. */
export const VOLUME_ROOT_SOURCE = 'simplectl-volume';

/** True when `entry` (a mount table line) is a volume root simplectl mounted. */
export function isVolumeRoot(entry: MountEntry | undefined): boolean {
  return entry !== undefined && entry.fsType === 'tmpfs' && entry.source === VOLUME_ROOT_SOURCE;
}

export interface TmpfsOptions {
  /** Size limit in KiB (the volume root only holds directories: 4 KiB is plenty). */
  sizeKiB?: number;
  /** Octal mode of the root directory (default 0755). */
  mode?: string;
  source?: string;
  readOnly?: boolean;
  logger?: Logger;
}

/** Mounts a small tmpfs at `dir`. */
export async function mountTmpfs(dir: string, options: TmpfsOptions = {}): Promise<void> {
  const opts = [`size=${options.sizeKiB ?? 4}k`, `mode=${options.mode ?? '0755'}`];
  if (options.readOnly) opts.push('ro');
  await run('mount', ['-t', 'tmpfs', '-o', opts.join(','), options.source ?? VOLUME_ROOT_SOURCE, dir], {
    logger: options.logger,
    purpose: `mounting the volume root tmpfs at ${dir}`,
  });
}

/** Switches a mounted filesystem between read-only and read-write; submounts are not affected. */
export async function remount(dir: string, readOnly: boolean, logger?: Logger): Promise<void> {
  await run('mount', ['-o', readOnly ? 'remount,ro' : 'remount,rw', dir], {
    logger,
    purpose: `remounting ${dir} ${readOnly ? 'read-only' : 'read-write'}`,
  });
}

export interface MountFsOptions {
  /** Filesystem type (from blkid); mount(8) probes when absent. */
  fsType?: string;
  /** Extra mount options, e.g. ["noatime"]. */
  options?: readonly string[];
  readOnly?: boolean;
  logger?: Logger;
}

/** Mounts the filesystem on `source` (a partition or mapper device) at `target`. */
export async function mountFilesystem(
  source: string,
  target: string,
  options: MountFsOptions = {},
): Promise<void> {
  const args: string[] = [];
  if (options.fsType) args.push('-t', options.fsType);
  const opts = [...(options.options ?? []), ...(options.readOnly ? ['ro'] : [])];
  if (opts.length > 0) args.push('-o', opts.join(','));
  args.push(source, target);
  await run('mount', args, { logger: options.logger, purpose: `mounting ${source} at ${target}` });
}

export interface UnmountOptions {
  /** Detach now and clean up when no longer busy (umount -l). */
  lazy?: boolean;
  logger?: Logger;
}

/** Unmounts `target`. */
export async function unmount(target: string, options: UnmountOptions = {}): Promise<void> {
  await run('umount', options.lazy ? ['-l', target] : [target], {
    logger: options.logger,
    purpose: `unmounting ${target}`,
  });
}

/** True when an unmount failed because something still uses the filesystem. */
export function isBusyError(error: unknown): boolean {
  const text =
    error instanceof Error ? `${error.message}\n${(error as { stderr?: string }).stderr ?? ''}` : '';
  return /target is busy|device is busy|EBUSY/i.test(text);
}
