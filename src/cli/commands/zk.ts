import { Command } from 'commander';
import { mountZk } from '../../commands/mount-zk.js';
import { umountZk } from '../../commands/umount-zk.js';
import { zkStatus } from '../../commands/zk-status.js';
import type { App } from '../app.js';
import { printResult } from '../output.js';

export function mountZkCommand(getApp: () => App, name: string): Command {
  return new Command(name)
    .description('mount the ZooKeeper subtree PATH of the ensemble HOSTS at DIR (FUSE)')
    .argument('<hosts>', 'connection string, e.g. zk1:2181,zk2:2181 (ports required)')
    .argument('<path>', 'ZooKeeper path to mount, e.g. /app')
    .argument('<dir>', 'mount point')
    .action(async (hosts: string, path: string, dir: string) => {
      const app = getApp();
      const result = await mountZk({ hosts, path, dir }, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}

export function umountZkCommand(getApp: () => App, name: string): Command {
  return new Command(name)
    .description('unmount a ZooKeeper filesystem and stop its daemon')
    .argument('<dir>', 'mount point')
    .action(async (dir: string) => {
      const app = getApp();
      const result = await umountZk({ dir }, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}

export function zkStatusCommand(getApp: () => App, name: string): Command {
  return new Command(name)
    .description("show a ZooKeeper mount's session, server, cache and counters")
    .argument('<dir>', 'mount point')
    .action(async (dir: string) => {
      const app = getApp();
      const result = await zkStatus({ dir }, app.context());
      printResult(app.out, result, (r) => JSON.stringify(r));
    });
}
