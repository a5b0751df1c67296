import { NotImplementedError } from '../core/errors.js';
import type { CommandContext } from './context.js';

export interface MatchQueryOptions {
  [key: string]: unknown;
}

export interface MatchQueryResult {
  [key: string]: unknown;
}

export async function matchQuery(
  _options: MatchQueryOptions,
  _ctx: CommandContext,
): Promise<MatchQueryResult> {
  throw new NotImplementedError('match-query');
}
