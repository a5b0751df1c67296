import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface LuksCloseOptions {
  [key: string]: unknown;
}

export interface LuksCloseResult {
  [key: string]: unknown;
}

export async function luksClose(_options: LuksCloseOptions, _ctx: CommandContext): Promise<LuksCloseResult> {
  throw new NotImplementedError('luks-close');
}
