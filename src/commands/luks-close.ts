/**
 * `simplectl luks-close NAME`: closes a mapping opened by luks-open (or
 * initialize-disk), refusing while it is mounted. Where a volume state
 * directory keeps state, it holds its lock while it looks and closes, so
 * that a volume mount under way there, which opens mappings before it
 * mounts them, is never left with its mapping closed between the two: the
 * close waits for it, then finds it mounted.
 *
 * Exports: `luksClose(options, ctx)` → `LuksCloseResult`.
 */
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import * as cryptsetup from '../adapters/cryptsetup.js';
import { acquireLock, type LockHandle } from '../adapters/lock.js';
import { readMountTable } from '../adapters/mountinfo.js';
import { lockPath, resolveStateDir, statePath } from '../adapters/volume-state.js';
import { errorMessage, OperationError, UsageError } from '../core/errors.js';
import { isMapperName } from '../core/names.js';
import type { CommandContext } from './context.js';

export interface LuksCloseOptions {
  /** Mapping name or /dev/mapper/NAME. */
  name: string;
  /** The volume state directory whose mounts it waits for (default: resolveStateDir's). */
  stateDir?: string;
}

export interface LuksCloseResult {
  name: string;
}

export async function luksClose(options: LuksCloseOptions, ctx: CommandContext): Promise<LuksCloseResult> {
  const name = options.name.replace(/^\/dev\/mapper\//, '');
  if (!isMapperName(name)) throw new UsageError(`'${options.name}' is not a mapping name`);
  const path = `/dev/mapper/${name}`;
  const lock = await mountsLock(options.stateDir, name, ctx);
  try {
    if (!existsSync(path)) throw new OperationError(`${name} is not open (no ${path})`);
    const node = await realpath(path).catch(() => path);
    const mounts = (await readMountTable()).filter((e) => e.source === path || e.source === node);
    if (mounts.length > 0) {
      throw new OperationError(
        `${name} is mounted at ${mounts.map((m) => m.mountPoint).join(', ')}; unmount it first`,
      );
    }
    ctx.progress(`closing ${name}`);
    await cryptsetup.close(name, ctx.log);
  } finally {
    await lock?.release();
  }
  return { name };
}

/** Errors making a lock file that mean no mount could take the lock there either. */
const UNWRITABLE = new Set(['EROFS', 'EACCES', 'EPERM']);

/**
 * The state directory's lock, waited for, where volume mounts keep state
 * there (its state file or lock exists). The state itself is not read: a
 * close needs none of it, and must work beside a damaged file. Where the
 * directory holds neither, or cannot be written (a mount could take no lock
 * there either), none is taken or made.
 */
async function mountsLock(
  option: string | undefined,
  name: string,
  ctx: CommandContext,
): Promise<LockHandle | undefined> {
  const stateDir = resolveStateDir(option);
  const path = lockPath(stateDir);
  if (!existsSync(statePath(stateDir)) && !existsSync(path)) {
    if (option !== undefined) {
      const what = existsSync(stateDir) ? 'holds no volume state' : 'does not exist';
      ctx.log.warn(`${stateDir} ${what}: waiting for no mount there`);
    }
    return undefined;
  }
  const onWait = (who: string) => ctx.log.warn(`waiting for the lock ${path}, ${who}`);
  return acquireLock(path, { purpose: `luks-close ${name}`, onWait }).catch((error: unknown) => {
    const code = (error as { cause?: NodeJS.ErrnoException }).cause?.code;
    if (!code || !UNWRITABLE.has(code)) throw error;
    ctx.log.warn(`${errorMessage(error)}; closing without it`);
    return undefined;
  });
}
