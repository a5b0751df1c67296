/**
 * The volume root: a 4 KiB tmpfs holding one directory per disk (and
 * persist-numbering placeholders), read-only once assembled so a container
 * cannot write beside its disks. Adding or removing a directory later means a
 * brief read-write window (remount rw, mkdir/rmdir, remount ro); the disks
 * mounted below are not affected by remounting their parent.
 */
import { mkdir, readdir, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirs } from '../adapters/make-dirs.js';
import { isVolumeRoot, mountTmpfs, remount, unmount } from '../adapters/mount.js';
import { mountAt, readMountTable } from '../adapters/mountinfo.js';
import { OperationError, UsageError } from '../core/errors.js';
import type { LayoutChanges } from '../core/volume-layout.js';
import type { CommandContext } from './context.js';
import type { Undo } from './undo.js';

/**
 * Refuses, before anything changes, a DIR that cannot take a volume root: a
 * file, another filesystem's mount point, or a directory with something in it
 * (the root would hide it). A missing DIR is fine (it is created); a volume
 * root already mounted there is left to the caller, which knows whose it is.
 * Asks the mount table before touching the path (a dead FUSE mount hangs a stat).
 */
export async function checkVolumeDir(dir: string): Promise<void> {
  const mounted = mountAt(await readMountTable(), dir);
  if (isVolumeRoot(mounted)) return;
  if (mounted) {
    throw new OperationError(`${dir} is already a mount point (${mounted.fsType} from ${mounted.source})`);
  }
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(dir)).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new UsageError(`${dir} cannot be a directory: part of its path is a file`);
    throw error;
  }
  if (!isDirectory) throw new UsageError(`${dir} is not a directory`);
  const entries = await readdir(dir);
  if (entries.length > 0) {
    const some = entries.sort().slice(0, 3).join(', ') + (entries.length > 3 ? ', …' : '');
    throw new OperationError(
      `${dir} is not empty (${some}): a volume mounted there would hide what it holds; give an empty or new directory`,
    );
  }
}

/**
 * Creates `dir` if needed and mounts an empty read-write root there; registers
 * the undo steps. Refuses a directory something is already mounted on.
 */
export async function createVolumeRoot(dir: string, ctx: CommandContext, undo: Undo): Promise<void> {
  const existing = mountAt(await readMountTable(), dir);
  if (existing) {
    throw new OperationError(`${dir} is already a mount point (${existing.fsType} from ${existing.source})`);
  }
  const made = await makeDirs(dir, 0o755);
  if (made !== undefined) {
    ctx.log.info(`created ${dir}`);
    undo.push(`remove ${made}`, () => removeCreated(made, dir));
  }
  ctx.progress(`mounting the volume root at ${dir}`);
  await mountTmpfs(dir, { logger: ctx.log });
  undo.push(`unmount the volume root ${dir}`, () => unmount(dir, { logger: ctx.log }));
}

/** Removes the directories mkdir -p created for `dir` (deepest first), stopping at the first one not empty. */
async function removeCreated(top: string, dir: string): Promise<void> {
  let current = dir;
  for (;;) {
    try {
      await rmdir(current);
    } catch {
      return;
    }
    if (current === top) return;
    current = join(current, '..');
  }
}

/** Applies directory changes under the root while it is read-write. */
export async function applyLayout(dir: string, changes: LayoutChanges, ctx: CommandContext): Promise<void> {
  for (const name of changes.remove) {
    await rmdir(join(dir, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
  for (const name of changes.create) {
    await mkdir(join(dir, name), { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
  if (changes.create.length + changes.remove.length > 0) {
    ctx.log.debug(
      `volume ${dir}: created [${changes.create.join(' ')}], removed [${changes.remove.join(' ')}]`,
    );
  }
}

/** Makes the root read-only (the final step of assembling it). */
export async function sealVolumeRoot(dir: string, ctx: CommandContext): Promise<void> {
  await remount(dir, true, ctx.log);
}

/**
 * Changes directories of a mounted, read-only root: remount rw, apply, remount
 * ro. The root is writable only for the few milliseconds in between.
 */
export async function changeSealedLayout(
  dir: string,
  changes: LayoutChanges,
  ctx: CommandContext,
): Promise<void> {
  if (changes.create.length === 0 && changes.remove.length === 0) return;
  await remount(dir, false, ctx.log);
  try {
    await applyLayout(dir, changes, ctx);
  } finally {
    await remount(dir, true, ctx.log);
  }
}
