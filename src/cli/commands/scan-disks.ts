import { Command } from 'commander';
import { scanDisks } from '../../commands/scan-disks.js';
import type { App } from '../app.js';
import { printResult } from '../output.js';

export function scanDisksCommand(getApp: () => App): Command {
  return new Command('scan-disks')
    .description('list block devices and classify each as blank, initialised or rejected')
    .option('--include <glob...>', 'also consider devices matching these names (e.g. "loop*")')
    .action(async (options: { include?: string[] }) => {
      const app = getApp();
      const result = await scanDisks({ include: options.include ?? [] }, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}
