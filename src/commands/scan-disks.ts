import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface ScanDisksOptions {
  [key: string]: unknown;
}

export interface ScanDisksResult {
  [key: string]: unknown;
}

export async function scanDisks(_options: ScanDisksOptions, _ctx: CommandContext): Promise<ScanDisksResult> {
  throw new NotImplementedError('scan-disks');
}
