/**
 * `simplectl luks-close NAME`: closes a mapping opened by luks-open (or
 * initialize-disk), refusing while it is mounted.
 *
 * Exports: `luksClose(options, ctx)` → `LuksCloseResult`.
 */
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import * as cryptsetup from '../adapters/cryptsetup.js';
import { readMountTable } from '../adapters/mountinfo.js';
import { OperationError, UsageError } from '../core/errors.js';
import { isMapperName } from '../core/names.js';
import type { CommandContext } from './context.js';

export interface LuksCloseOptions {
  /** Mapping name or /dev/mapper/NAME. */
  name: string;
}

export interface LuksCloseResult {
  name: string;
}

export async function luksClose(options: LuksCloseOptions, ctx: CommandContext): Promise<LuksCloseResult> {
  const name = options.name.replace(/^\/dev\/mapper\//, '');
  if (!isMapperName(name)) throw new UsageError(`'${options.name}' is not a mapping name`);
  const path = `/dev/mapper/${name}`;
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
  return { name };
}
