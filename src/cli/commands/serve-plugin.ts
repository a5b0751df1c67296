import { Command } from 'commander';
import { servePlugin } from '../../commands/serve-plugin.js';
import type { App } from '../app.js';
import { printResult } from '../output.js';

export type DriverName = 'simple' | 'zookeeper';

export function servePluginCommand(getApp: () => App, driver: DriverName): Command {
  return new Command('serve-plugin')
    .description(`serve the "${driver}" Docker volume plugin`)
    .action(async () => {
      const app = getApp();
      const result = await servePlugin({ driver }, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}
