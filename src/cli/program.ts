/**
 * One command tree, two binaries: `simplectl` carries every operation and
 * `zkfsctl` the ZooKeeper ones under short names. Each call builds a fresh
 * Command so tests can parse many argv in one process.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { LOG_LEVELS } from '../adapters/logger.js';
import { type App, type AppIO, createApp, type GlobalOptions, type Tool } from './app.js';
import { initializeDiskCommand } from './commands/initialize-disk.js';
import { luksCloseCommand, luksOpenCommand } from './commands/luks.js';
import { matchQueryCommand } from './commands/match-query.js';
import { scanDisksCommand } from './commands/scan-disks.js';
import { servePluginCommand } from './commands/serve-plugin.js';
import {
  volumeMountCommand,
  volumeReleaseCommand,
  volumeStatusCommand,
  volumeUmountCommand,
} from './commands/volume.js';
import { mountZkCommand, umountZkCommand } from './commands/zk.js';
import { zkStatusCommand } from './commands/zk-status.js';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

const DESCRIPTIONS: Record<Tool, string> = {
  simplectl: 'hand whole local disks to containers, and mount ZooKeeper trees as filesystems',
  zkfsctl: 'mount an Apache ZooKeeper tree as an ordinary filesystem',
};

/** The subcommands of each binary, in the order `--help` lists them. */
function subcommands(tool: Tool, getApp: () => App): Command[] {
  if (tool === 'zkfsctl') {
    return [
      mountZkCommand(getApp, 'mount'),
      umountZkCommand(getApp, 'umount'),
      zkStatusCommand(getApp, 'status'),
      servePluginCommand(getApp, 'zookeeper'),
    ];
  }
  return [
    scanDisksCommand(getApp),
    matchQueryCommand(getApp),
    initializeDiskCommand(getApp),
    luksOpenCommand(getApp),
    luksCloseCommand(getApp),
    volumeMountCommand(getApp),
    volumeUmountCommand(getApp),
    volumeReleaseCommand(getApp),
    volumeStatusCommand(getApp),
    mountZkCommand(getApp, 'mount-zk'),
    umountZkCommand(getApp, 'umount-zk'),
    zkStatusCommand(getApp, 'status-zk'),
    servePluginCommand(getApp, 'simple'),
  ];
}

export function buildProgram(tool: Tool, io: AppIO = {}): Command {
  const program = new Command(tool);
  let app: App | undefined;
  const getApp = (): App => {
    if (!app) app = createApp(tool, program.opts<GlobalOptions>(), io);
    return app;
  };
  program
    .description(DESCRIPTIONS[tool])
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .addOption(
      new Option('--log-level <level>', 'how much to log on stderr').choices([...LOG_LEVELS]).default('warn'),
    )
    .option('--json', 'print machine-readable JSON on stdout (logs stay on stderr)', false)
    .option('--no-color', 'never colour output (also honoured: NO_COLOR)')
    .option('--debug', 'log everything and show stack traces of internal errors', false)
    .showHelpAfterError('(run with --help for usage)')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => (io.stdout ?? ((t: string) => process.stdout.write(t)))(s),
      writeErr: (s) => (io.stderr ?? ((t: string) => process.stderr.write(t)))(s),
    });
  for (const cmd of subcommands(tool, getApp)) {
    cmd.exitOverride();
    cmd.configureOutput(program.configureOutput());
    cmd.showHelpAfterError('(run with --help for usage)');
    program.addCommand(cmd);
  }
  return program;
}
