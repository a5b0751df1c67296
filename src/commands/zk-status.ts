import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface ZkStatusOptions {
  [key: string]: unknown;
}

export interface ZkStatusResult {
  [key: string]: unknown;
}

export async function zkStatus(_options: ZkStatusOptions, _ctx: CommandContext): Promise<ZkStatusResult> {
  throw new NotImplementedError('zk-status');
}
