import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface InitializeDiskOptions {
  [key: string]: unknown;
}

export interface InitializeDiskResult {
  [key: string]: unknown;
}

export async function initializeDisk(
  _options: InitializeDiskOptions,
  _ctx: CommandContext,
): Promise<InitializeDiskResult> {
  throw new NotImplementedError('initialize-disk');
}
