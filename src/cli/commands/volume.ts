import { Command } from 'commander';
import { volumeMount } from '../../commands/volume-mount.js';
import { volumeStatus } from '../../commands/volume-status.js';
import { volumeUmount } from '../../commands/volume-umount.js';
import type { App } from '../app.js';
import { printResult, withSpinner } from '../output.js';

export function volumeMountCommand(getApp: () => App): Command {
  return new Command('mount')
    .description('assemble a volume from the disks matching QUERY and mount it at DIR')
    .argument('<query>', 'volume query, e.g. label.fast_min-disks.2')
    .argument('<dir>', 'where the volume root (a read-only tmpfs) is mounted')
    .action(async (query: string, dir: string) => {
      const app = getApp();
      const result = await withSpinner(app.out, `mounting ${query}`, (progress) =>
        volumeMount({ query, dir }, app.context({ progress })),
      );
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}

export function volumeUmountCommand(getApp: () => App): Command {
  return new Command('umount')
    .description('unmount a volume and release its disks')
    .argument('<dir>', 'the volume root given to mount')
    .action(async (dir: string) => {
      const app = getApp();
      const result = await volumeUmount({ dir }, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}

export function volumeStatusCommand(getApp: () => App): Command {
  return new Command('status')
    .description('list volumes, their disks and numbers, and disk assignments')
    .action(async () => {
      const app = getApp();
      const result = await volumeStatus({}, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}
