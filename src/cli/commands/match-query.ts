import { Command } from 'commander';
import { matchQuery } from '../../commands/match-query.js';
import type { App } from '../app.js';
import { printResult } from '../output.js';

export function matchQueryCommand(getApp: () => App): Command {
  return new Command('match-query')
    .description('show which disks a volume query would pick, in what order, and why others do not match')
    .argument('<query>', 'volume query, e.g. label.fast_min-disks.2')
    .option('--include <glob...>', 'also consider devices matching these names (e.g. "loop*")')
    .action(async (query: string, options: { include?: string[] }) => {
      const app = getApp();
      const result = await matchQuery({ query, include: options.include ?? [] }, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}
