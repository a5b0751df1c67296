/**
 * `simplectl luks-close NAME`: closes a mapping opened by luks-open (or
 * initialize-disk), refusing while it is mounted. It holds the volume state's
 * lock while it looks and closes, so that a volume mount under way, which
 * opens mappings before it mounts them, is never left with its mapping
 * closed between the two: the close waits for it, then finds it mounted.
 *
 * Exports: `luksClose(options, ctx)` → `LuksCloseResult`.
 */
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import * as cryptsetup from '../adapters/cryptsetup.js';
import { withLock } from '../adapters/lock.js';
import { readMountTable } from '../adapters/mountinfo.js';
import { lockPath, resolveStateDir } from '../adapters/volume-state.js';
import { OperationError, UsageError } from '../core/errors.js';
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
  // The state itself is not read: a close needs none of it, and must work beside a damaged file.
  // Where no state directory exists, no mount has begun there to wait for (a mount makes it
  // first), and none is made (it may be on a read-only filesystem).
  const stateDir = resolveStateDir(options.stateDir);
  const closeUnmounted = async () => {
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
  };
  if (existsSync(stateDir))
    await withLock(
      lockPath(stateDir),
      {
        purpose: `luks-close ${name}`,
        onWait: (who) => ctx.log.warn(`waiting for the lock ${lockPath(stateDir)}, ${who}`),
      },
      closeUnmounted,
    );
  else await closeUnmounted();
  return { name };
}
