import { Command } from 'commander';
import { type MatchQueryResult, matchQuery } from '../../commands/match-query.js';
import { OperationError } from '../../core/errors.js';
import { parseOptionPairs } from '../../core/query.js';
import { humanSize } from '../../core/units.js';
import type { App } from '../app.js';
import { type Output, printResult, table, withSpinner } from '../output.js';
import { INCLUDE_HELP, STATE_DIR_HELP } from './shared-options.js';

const ACTION_TEXT = { use: 'use', relabel: 'relabel (erases it)', initialise: 'initialise' } as const;

function render(r: MatchQueryResult, out: Output): string {
  const lines: string[] = [];
  const need = r.maxDisks > 0 ? `${r.minDisks} to ${r.maxDisks}` : `at least ${r.minDisks}`;
  lines.push(
    r.satisfied
      ? out.color.green(`${r.name}: ${r.chosen.length} disk(s) chosen (needs ${need})`)
      : out.color.red(`${r.name}: only ${r.chosen.length} disk(s) match, needs ${need}`),
  );
  const rows = [
    ...r.chosen.map((d, i) => [String(i), d.device, humanSize(d.sizeBytes), ACTION_TEXT[d.action]]),
    ...r.spare.map((d) => ['-', d.device, humanSize(d.sizeBytes), `spare (would ${ACTION_TEXT[d.action]})`]),
  ];
  if (rows.length > 0) lines.push('', table(out, ['ORDER', 'DEVICE', 'SIZE', 'ACTION'], rows));
  if (r.rejected.length > 0) {
    lines.push(
      '',
      table(
        out,
        ['NOT MATCHING', 'WHY'],
        r.rejected.map(({ disk, reasons }) => [disk.device, reasons.join('; ')]),
      ),
    );
  }
  return lines.join('\n');
}

export function matchQueryCommand(getApp: () => App): Command {
  return new Command('match-query')
    .description('show which disks a volume query would pick, in what order, and why others do not match')
    .argument('<query>', 'volume query, e.g. label.fast_min-disks.2')
    .option('--include <glob...>', INCLUDE_HELP)
    .option('-o, --opt <key=value...>', 'extra query settings, as the plugin receives them with -o')
    .option('--state-dir <dir>', `${STATE_DIR_HELP}: disks other volumes hold do not match`)
    .action(async (query: string, options: { include?: string[]; opt?: string[]; stateDir?: string }) => {
      const app = getApp();
      const result = await withSpinner(app.out, 'matching disks', (progress) =>
        matchQuery(
          {
            query,
            include: options.include ?? [],
            options: parseOptionPairs(options.opt ?? []),
            volumeState: options.stateDir ? { dir: options.stateDir } : {},
          },
          app.context({ progress }),
        ),
      );
      printResult(app.out, result, render);
      if (!result.satisfied) {
        throw new OperationError(
          `${result.name} needs ${result.minDisks} disk(s); ${result.chosen.length} can be had`,
        );
      }
    });
}
