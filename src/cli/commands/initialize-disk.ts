import { Command } from 'commander';
import type { Ora } from 'ora';
import { type InitializeDiskResult, initializeDisk } from '../../commands/initialize-disk.js';
import { parseOptionPairs } from '../../core/query.js';
import type { App } from '../app.js';
import { type Output, printResult, startSpinner } from '../output.js';
import { STATE_DIR_HELP } from './shared-options.js';

function render(r: InitializeDiskResult, out: Output): string {
  const what = `'${r.label}' with ${r.filesystem}${r.encrypted ? ' inside LUKS' : ''}`;
  const volumes = r.assignedTo.map((v) => `volume ${v}`).join(', ');
  if (r.dryRun) {
    return [
      `would initialise ${r.device} as ${what}${r.relabelled ? ' (relabelling an untyped disk: its data is erased)' : ''}` +
        `${volumes ? ` and release it from ${volumes}` : ''}:`,
      ...r.steps.map((s, i) =>
        [`  ${i + 1}. ${s.description}`, ...s.commands.map((c) => out.color.dim(`     ${c}`))].join('\n'),
      ),
    ].join('\n');
  }
  return out.color.green(
    `${r.device} initialised as ${what}: metadata ${r.metadataPartition.device}, data ${r.dataPartition.device} (PARTUUID ${r.dataPartition.uuid})` +
      `${r.released ? `; released from ${volumes}` : ''}`,
  );
}

export function initializeDiskCommand(getApp: () => App): Command {
  return new Command('initialize-disk')
    .description('write the simple GPT layout and metadata to a disk, then LUKS and a filesystem')
    .argument('<device>', 'whole block device, e.g. /dev/sdb')
    .argument('<query>', 'settings for the disk, e.g. label.fast_filesystem.xfs (label defaults to untyped)')
    .option('-y, --yes', 'do not ask for confirmation before destroying data')
    .option(
      '--force',
      'initialise even a disk that is not blank (never one that is mounted, in use, unreadable, read-only or too small)',
    )
    .option('--dry-run', 'make every check of a real run and print the exact command lines, change nothing')
    .option(
      '-o, --opt <key=value...>',
      'extra settings merged over QUERY (a passphrase, cipher or hash may hold what QUERY cannot)',
    )
    .option(
      '--state-dir <dir>',
      `${STATE_DIR_HELP}: a disk assigned to a volume is refused without --force, and released when erased`,
    )
    .action(
      async (
        device: string,
        query: string,
        options: { yes?: boolean; force?: boolean; dryRun?: boolean; opt?: string[]; stateDir?: string },
      ) => {
        const app = getApp();
        // The spinner starts with the first slow step, after the confirmation prompt.
        let spinner: Ora | undefined;
        const progress = (step: string) => {
          if (!app.out.interactive) return;
          spinner ??= startSpinner(app.out);
          spinner.text = step;
        };
        try {
          const result = await initializeDisk(
            {
              device,
              query,
              options: parseOptionPairs(options.opt ?? []),
              force: options.force ?? false,
              dryRun: options.dryRun ?? false,
              volumeState: options.stateDir ? { dir: options.stateDir } : {},
            },
            app.context({ yes: options.yes ?? false, progress }),
          );
          spinner?.stop();
          printResult(app.out, result, render);
        } finally {
          spinner?.stop();
        }
      },
    );
}
