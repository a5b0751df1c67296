/**
 * Default places of a plugin server, derived from its plugin name (the socket
 * basename Docker knows it by, `-d NAME`).
 */
import { join } from 'node:path';
import { UsageError } from './errors.js';

/** Where dockerd looks for plugin sockets (it also reads /etc/docker/plugins and /usr/lib/docker/plugins). */
export const DOCKER_PLUGIN_DIR = '/run/docker/plugins';
export const DEFAULT_STATE_ROOT = '/var/lib/volkit/plugins';
export const STATE_FILE_NAME = 'plugin-state.json';

/** The drivers a plugin server can serve. */
export const PLUGIN_DRIVERS = ['simple', 'zookeeper'] as const;
export type PluginDriver = (typeof PLUGIN_DRIVERS)[number];

export interface PluginPaths {
  name: string;
  socket: string;
  stateDir: string;
  stateFile: string;
  mountRoot: string;
}

/** Checks a plugin name: it becomes a socket file name and the driver name users type. */
export function validatePluginName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) || name.includes('..') || name.length > 100) {
    throw new UsageError(
      `invalid plugin name ${JSON.stringify(name)}: use letters, digits, '_', '.' and '-' (it names the socket file)`,
    );
  }
  return name;
}

/** Fills in every path the options leave out. */
export function pluginPaths(options: {
  name: string;
  socket?: string;
  stateDir?: string;
  mountRoot?: string;
}): PluginPaths {
  const name = validatePluginName(options.name);
  const stateDir = options.stateDir ?? join(DEFAULT_STATE_ROOT, name);
  return {
    name,
    socket: options.socket ?? join(DOCKER_PLUGIN_DIR, `${name}.sock`),
    stateDir,
    stateFile: join(stateDir, STATE_FILE_NAME),
    mountRoot: options.mountRoot ?? join(stateDir, 'volumes'),
  };
}
