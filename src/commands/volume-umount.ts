import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface VolumeUmountOptions {
  [key: string]: unknown;
}

export interface VolumeUmountResult {
  [key: string]: unknown;
}

export async function volumeUmount(
  _options: VolumeUmountOptions,
  _ctx: CommandContext,
): Promise<VolumeUmountResult> {
  throw new NotImplementedError('umount');
}
