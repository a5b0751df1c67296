import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface UmountZkOptions {
  [key: string]: unknown;
}

export interface UmountZkResult {
  [key: string]: unknown;
}

export async function umountZk(_options: UmountZkOptions, _ctx: CommandContext): Promise<UmountZkResult> {
  throw new NotImplementedError('umount-zk');
}
