import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface MountZkOptions {
  [key: string]: unknown;
}

export interface MountZkResult {
  [key: string]: unknown;
}

export async function mountZk(_options: MountZkOptions, _ctx: CommandContext): Promise<MountZkResult> {
  throw new NotImplementedError('mount-zk');
}
