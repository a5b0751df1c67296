import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface VolumeMountOptions {
  [key: string]: unknown;
}

export interface VolumeMountResult {
  [key: string]: unknown;
}

export async function volumeMount(
  _options: VolumeMountOptions,
  _ctx: CommandContext,
): Promise<VolumeMountResult> {
  throw new NotImplementedError('mount');
}
