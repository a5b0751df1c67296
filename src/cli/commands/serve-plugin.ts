import { isAbsolute, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { buildPluginRootfs } from '../../commands/build-plugin-rootfs.js';
import { writeSystemdUnits } from '../../commands/write-systemd-units.js';
import { UsageError } from '../../core/errors.js';
import { managedPluginConfig } from '../../core/managed-plugin.js';
import { PLUGIN_DRIVERS, type PluginDriver, pluginPaths } from '../../core/plugin-paths.js';
import { DEFAULT_RELEASE_UNHELD_S, parseReleaseUnheld } from '../../core/refs.js';
import { systemdUnits } from '../../core/systemd-units.js';
import { servePlugin } from '../../plugin/serve.js';
import type { App } from '../app.js';
import { printResult, withSpinner } from '../output.js';
import { INCLUDE_HELP } from './shared-options.js';

export type DriverName = PluginDriver;

interface ServePluginFlags {
  driver?: PluginDriver;
  name?: string;
  socket?: string;
  stateDir?: string;
  mountRoot?: string;
  include?: string[];
  releaseUnheld?: string;
  printSystemdUnits?: boolean;
  writeSystemdUnits?: string;
  printPluginConfig?: boolean;
  buildRootfs?: string;
}

/**
 * These flags with every path made absolute: systemd runs the service from /
 * and takes a ListenStream= that is not absolute for an address, not a path.
 */
function absolutePaths(flags: ServePluginFlags): ServePluginFlags {
  const absolute = { ...flags };
  for (const key of ['socket', 'stateDir', 'mountRoot'] as const) {
    const path = flags[key];
    if (path !== undefined) absolute[key] = resolve(path);
  }
  return absolute;
}

/** The serve-plugin arguments that reproduce these flags (absolute paths), for ExecStart=. */
function serveArgs(tool: App['tool'], driver: PluginDriver, flags: ServePluginFlags): string[] {
  const paths = pluginPaths({ ...flags, name: flags.name ?? driver });
  const args = ['--log-level', 'info', 'serve-plugin'];
  if (tool === 'simplectl') args.push('--driver', driver);
  args.push('--name', paths.name, '--socket', paths.socket);
  if (flags.stateDir) args.push('--state-dir', flags.stateDir);
  if (flags.mountRoot) args.push('--mount-root', flags.mountRoot);
  if (flags.include?.length) args.push('--include', ...flags.include);
  if (flags.releaseUnheld !== undefined) {
    args.push('--release-unheld', String(parseReleaseUnheld(flags.releaseUnheld)));
  }
  return args;
}

/**
 * Variables that choose where the server finds its disk assignments, keys and
 * mount records. Set when the units are made, they go into the units: a
 * service that read another assignment file than the CLI could give a disk
 * to two volumes.
 */
const SERVER_ENVIRONMENT: Readonly<Record<PluginDriver, readonly string[]>> = {
  simple: ['SIMPLECTL_STATE_DIR', 'SIMPLECTL_KEY_DIR'],
  zookeeper: ['ZKFSCTL_RUN_DIR'],
};

function serverEnvironment(driver: PluginDriver, env: NodeJS.ProcessEnv): Record<string, string> {
  const chosen: Record<string, string> = {};
  for (const name of SERVER_ENVIRONMENT[driver]) {
    const value = env[name];
    if (value) chosen[name] = resolve(value);
  }
  return chosen;
}

/** The options that print, write or build something and exit: at most one per run. */
const ACTIONS = ['printSystemdUnits', 'writeSystemdUnits', 'printPluginConfig', 'buildRootfs'] as const;

function actionOption(flags: string, description: string, name: (typeof ACTIONS)[number]): Option {
  return new Option(flags, description).conflicts(ACTIONS.filter((a) => a !== name));
}

/** Server options the managed plugin cannot take: its name comes from `docker plugin create`, its paths are fixed. */
const SERVER_ONLY = [
  ['name', '--name'],
  ['socket', '--socket'],
  ['stateDir', '--state-dir'],
  ['mountRoot', '--mount-root'],
] as const;

/** Refuses options that would be silently ignored. */
function checkFlags(driver: PluginDriver, flags: ServePluginFlags): void {
  if (driver !== 'simple' && flags.include?.length) {
    throw new UsageError('--include applies to the simple driver only');
  }
  if (flags.releaseUnheld !== undefined) parseReleaseUnheld(flags.releaseUnheld);
  if ((flags.printPluginConfig || flags.buildRootfs) && flags.releaseUnheld !== undefined) {
    throw new UsageError(
      '--release-unheld does not apply to the managed plugin: in a PID namespace of its own, it cannot see which containers hold its volumes',
    );
  }
  if (flags.printPluginConfig || flags.buildRootfs) {
    const given = SERVER_ONLY.filter(([key]) => flags[key] !== undefined).map(([, flag]) => flag);
    if (given.length > 0) {
      throw new UsageError(
        `${given.join(', ')} ${given.length === 1 ? 'does' : 'do'} not apply to the managed plugin: ` +
          '`docker plugin create NAME` names it, and its socket, state and mount root are fixed inside it',
      );
    }
  }
}

function selfPath(tool: App['tool']): string {
  const script = process.argv[1] ?? `/usr/bin/${tool}`;
  return isAbsolute(script) ? script : resolve(script);
}

export function servePluginCommand(getApp: () => App, defaultDriver: DriverName): Command {
  const cmd = new Command('serve-plugin').description(
    `serve the "${defaultDriver}" Docker volume plugin on /run/docker/plugins/NAME.sock (or the socket systemd passes)`,
  );
  if (defaultDriver === 'simple') {
    cmd
      .addOption(
        new Option('--driver <driver>', 'which driver to serve')
          .choices([...PLUGIN_DRIVERS])
          .default('simple'),
      )
      .option('--include <glob...>', `simple: ${INCLUDE_HELP}`);
  }
  return cmd
    .option(
      '--name <name>',
      'plugin name: the socket file name and `docker volume create -d NAME` (default: driver)',
    )
    .option(
      '--socket <path>',
      'socket to bind when systemd passes none (default /run/docker/plugins/NAME.sock)',
    )
    .option('--state-dir <dir>', 'where the plugin keeps its volumes (default /var/lib/volkit/plugins/NAME)')
    .option('--mount-root <dir>', 'where volumes are mounted (default STATE-DIR/volumes)')
    .option(
      '--release-unheld <seconds>',
      `release mount references of volumes nothing uses, once no Mount of any volume came for SECONDS (after the engine was killed; default ${DEFAULT_RELEASE_UNHELD_S}, 0 never)`,
    )
    .addOption(
      actionOption(
        '--print-systemd-units',
        'print the systemd socket and service units for these options, and exit',
        'printSystemdUnits',
      ),
    )
    .addOption(
      actionOption(
        '--write-systemd-units <dir>',
        'write those units into DIR (e.g. /etc/systemd/system), and exit',
        'writeSystemdUnits',
      ),
    )
    .addOption(
      actionOption(
        '--print-plugin-config',
        defaultDriver === 'simple'
          ? 'print config.json of the managed (docker plugin) form (with --include), and exit'
          : 'print config.json of the managed (docker plugin) form, and exit',
        'printPluginConfig',
      ),
    )
    .addOption(
      actionOption(
        '--build-rootfs <dir>',
        'build DIR/config.json and DIR/rootfs for `docker plugin create`, and exit',
        'buildRootfs',
      ),
    )
    .action(async (flags: ServePluginFlags) => {
      const app = getApp();
      const driver = flags.driver ?? defaultDriver;
      checkFlags(driver, flags);
      const unitOptions = () => {
        const unitFlags = absolutePaths(flags);
        const paths = pluginPaths({ ...unitFlags, name: flags.name ?? driver });
        return systemdUnits({
          name: paths.name,
          execPath: selfPath(app.tool),
          args: serveArgs(app.tool, driver, unitFlags),
          socket: paths.socket,
          manPage: `${app.tool}(1)`,
          environment: serverEnvironment(driver, process.env),
        });
      };
      if (flags.printSystemdUnits) {
        const units = unitOptions();
        printResult(app.out, { units }, (r) => r.units.map((u) => `# ${u.fileName}\n${u.text}`).join('\n'));
        return;
      }
      if (flags.writeSystemdUnits) {
        const result = await writeSystemdUnits(
          { dir: flags.writeSystemdUnits, units: unitOptions() },
          app.context(),
        );
        printResult(app.out, result, (r) =>
          [...r.files.map((f) => `wrote ${f}`), `next: ${r.enableCommand}`].join('\n'),
        );
        return;
      }
      if (flags.printPluginConfig) {
        const config = managedPluginConfig({
          tool: app.tool,
          driver,
          ...(flags.include ? { include: flags.include } : {}),
        });
        app.out.stdout(`${JSON.stringify(config, null, 2)}\n`);
        return;
      }
      if (flags.buildRootfs) {
        const dir = resolve(flags.buildRootfs);
        const result = await withSpinner(app.out, `building the plugin in ${dir}`, (progress) =>
          buildPluginRootfs(
            { tool: app.tool, driver, dir, ...(flags.include ? { include: flags.include } : {}) },
            app.context({ progress }),
          ),
        );
        printResult(app.out, result, (r) =>
          [
            `built ${r.configFile} and ${r.rootfs} (${r.packages.length} npm packages, ${r.hostFiles.length} host files)`,
            ...(r.missingTools.length > 0 ? [`tools not on this host: ${r.missingTools.join(', ')}`] : []),
            `next: ${r.createCommand}`,
          ].join('\n'),
        );
        return;
      }
      const result = await servePlugin(
        {
          driver,
          name: flags.name,
          socket: flags.socket,
          stateDir: flags.stateDir,
          mountRoot: flags.mountRoot,
          include: flags.include ?? [],
          ...(flags.releaseUnheld !== undefined
            ? { releaseUnheldS: parseReleaseUnheld(flags.releaseUnheld) }
            : {}),
        },
        app.context(),
      );
      printResult(app.out, result, (r) => `${r.name}: stopped on ${r.stoppedBy}`);
    });
}
