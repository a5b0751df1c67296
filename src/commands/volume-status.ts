import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface VolumeStatusOptions {
  [key: string]: unknown;
}

export interface VolumeStatusResult {
  [key: string]: unknown;
}

export async function volumeStatus(
  _options: VolumeStatusOptions,
  _ctx: CommandContext,
): Promise<VolumeStatusResult> {
  throw new NotImplementedError('status');
}
