/**
 * What a managed (v2) plugin needs, for `docker plugin create NAME DIR`:
 * `DIR/config.json` (shared/reference.md §2) and a root filesystem in which
 * the same package runs `serve-plugin` with its volumes under the propagated
 * mount, so the engine sees them on the host.
 */
import type { PluginDriver } from './plugin-paths.js';

/** Where the package is installed inside the plugin's root filesystem. */
export const MANAGED_INSTALL_DIR = '/opt/volkit';
/** Mount points returned to the engine live here, propagated to the host. */
export const MANAGED_PROPAGATED_MOUNT = '/mnt/volumes';
export const MANAGED_STATE_DIR = '/var/lib/volkit';
/** The node binary inside the root filesystem. */
export const MANAGED_NODE_PATH = '/usr/local/bin/node';
export const MANAGED_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ManagedConfigOptions {
  tool: 'simplectl' | 'zkfsctl';
  driver: PluginDriver;
  /** simple: the devices the plugin may consider (`serve-plugin --include`); default every whole disk. */
  include?: readonly string[];
}

/** The socket file name, relative to /run/docker/plugins inside the plugin. */
export function managedSocketName(driver: PluginDriver): string {
  return `${driver}.sock`;
}

/** config.json of the managed plugin. */
export function managedPluginConfig(options: ManagedConfigOptions): Record<string, unknown> {
  const { tool, driver } = options;
  const mounts: Record<string, unknown>[] = [];
  const devices: Record<string, unknown>[] = [];
  if (driver === 'zookeeper') {
    devices.push({ path: '/dev/fuse' });
  } else {
    // Whole disks: the host's devices and its machine id (disk ownership). The disk assignments
    // stay in the plugin's own state, apart from those of a simplectl run on the host.
    mounts.push(
      {
        name: 'dev',
        description: 'host block devices',
        source: '/dev',
        destination: '/dev',
        type: 'bind',
        options: ['rbind'],
      },
      {
        name: 'machine-id',
        description: 'disk ownership',
        source: '/etc/machine-id',
        destination: '/etc/machine-id',
        type: 'bind',
        options: ['bind', 'ro'],
      },
    );
  }
  return {
    description: `volkit "${driver}" volume plugin (${tool} serve-plugin)`,
    documentation: `man:${tool}(1)`,
    entrypoint: [
      MANAGED_NODE_PATH,
      `${MANAGED_INSTALL_DIR}/dist/cli/${tool}.js`,
      '--log-level',
      'info',
      'serve-plugin',
      ...(tool === 'simplectl' ? ['--driver', driver] : []),
      '--name',
      driver,
      '--socket',
      `/run/docker/plugins/${managedSocketName(driver)}`,
      '--state-dir',
      MANAGED_STATE_DIR,
      '--mount-root',
      MANAGED_PROPAGATED_MOUNT,
      // In its own PID namespace it cannot see which containers hold a volume.
      '--release-unheld',
      '0',
      ...(options.include?.length ? ['--include', ...options.include] : []),
    ],
    workdir: '/',
    env: [{ name: 'PATH', description: 'search path of the tools', settable: [], value: MANAGED_PATH }],
    interface: { types: ['docker.volumedriver/1.0'], socket: managedSocketName(driver) },
    network: { type: 'host' },
    propagatedMount: MANAGED_PROPAGATED_MOUNT,
    mounts,
    linux: {
      capabilities: ['CAP_SYS_ADMIN'],
      allowAllDevices: driver === 'simple',
      devices,
    },
  };
}
