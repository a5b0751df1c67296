import { Command } from 'commander';
import { initializeDisk } from '../../commands/initialize-disk.js';
import type { App } from '../app.js';
import { printResult, withSpinner } from '../output.js';

export function initializeDiskCommand(getApp: () => App): Command {
  return new Command('initialize-disk')
    .description('write the simple GPT layout and metadata to a disk, then LUKS and a filesystem')
    .argument('<device>', 'whole block device, e.g. /dev/sdb')
    .argument('<query>', 'settings for the disk, e.g. label.fast_filesystem.xfs')
    .option('-y, --yes', 'do not ask for confirmation before destroying data')
    .option('--force', 'initialise even a disk that is not blank')
    .action(async (device: string, query: string, options: { yes?: boolean; force?: boolean }) => {
      const app = getApp();
      const result = await withSpinner(app.out, `initialising ${device}`, (progress) =>
        initializeDisk(
          { device, query, force: options.force ?? false },
          app.context({ yes: options.yes ?? false, progress }),
        ),
      );
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}
