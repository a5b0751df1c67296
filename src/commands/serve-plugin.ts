import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface ServePluginOptions {
  [key: string]: unknown;
}

export interface ServePluginResult {
  [key: string]: unknown;
}

export async function servePlugin(
  _options: ServePluginOptions,
  _ctx: CommandContext,
): Promise<ServePluginResult> {
  throw new NotImplementedError('serve-plugin');
}
