import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface LuksOpenOptions {
  [key: string]: unknown;
}

export interface LuksOpenResult {
  [key: string]: unknown;
}

export async function luksOpen(_options: LuksOpenOptions, _ctx: CommandContext): Promise<LuksOpenResult> {
  throw new NotImplementedError('luks-open');
}
