/**
 * The volume root: a 4 KiB tmpfs holding one directory per disk (and
 * persist-numbering placeholders), read-only once assembled so a container
 * cannot write beside its disks. Adding or removing a directory later means a
 * brief read-write window (remount rw, mkdir/rmdir, remount ro); the disks
 * mounted below are not affected by remounting their parent.
 */
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { mountTmpfs, remount, unmount, VOLUME_ROOT_SOURCE } from '../adapters/mount.js';
import { mountAt, readMountTable } from '../adapters/mountinfo.js';
import { OperationError } from '../core/errors.js';
import type { LayoutChanges } from '../core/volume-layout.js';
import type { CommandContext } from './context.js';
import type { Undo } from './undo.js';

/** True when a volume root of ours is mounted at exactly `dir`. */
export async function isVolumeRootMounted(dir: string): Promise<boolean> {
  const entry = mountAt(await readMountTable(), dir);
  return entry !== undefined && entry.fsType === 'tmpfs' && entry.source === VOLUME_ROOT_SOURCE;
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
  const made = await mkdir(dir, { recursive: true, mode: 0o755 });
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
