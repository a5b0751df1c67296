import { Command } from 'commander';
import { luksClose } from '../../commands/luks-close.js';
import { luksOpen } from '../../commands/luks-open.js';
import type { App } from '../app.js';
import { printResult } from '../output.js';

export function luksOpenCommand(getApp: () => App): Command {
  return new Command('luks-open')
    .description('open the LUKS data partition of an initialised disk')
    .argument('<device>', 'initialised disk or its data partition')
    .option('--key-file <path>', 'read the passphrase from this file instead of a prompt or stdin')
    .action(async (device: string, options: { keyFile?: string }) => {
      const app = getApp();
      const result = await luksOpen({ device, keyFile: options.keyFile }, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}

export function luksCloseCommand(getApp: () => App): Command {
  return new Command('luks-close')
    .description('close an opened LUKS mapping')
    .argument('<name>', 'mapping name under /dev/mapper')
    .action(async (name: string) => {
      const app = getApp();
      const result = await luksClose({ name }, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}
