/**
 * The `zookeeper` driver: a volume is a ZooKeeper subtree mounted with the
 * same handler as `zkfsctl mount`. Options are those of the old
 * zookeeper-volume plugin (shared/reference.md §3): `hosts` (or `host`, which
 * it documented but had stopped reading), `path`, `mode` and `auth`; the auth
 * string stays in the 0600 state file and never reaches a reply or a log.
 */
import { statfs } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { isDaemonAlive, readMountRecord } from '../adapters/zkfs/run-state.js';
import type { CommandContext } from '../commands/context.js';
import { mountZk } from '../commands/mount-zk.js';
import { umountZk } from '../commands/umount-zk.js';
import { UsageError } from '../core/errors.js';
import { fitFileName } from '../core/names.js';
import { dockerOption } from '../core/option-name.js';
import type { VolumeRecord } from '../core/plugin-state.js';
import { parseAuth, parseHosts, parseMode } from '../core/zkfs/mount-options.js';
import { normalizeZkPath } from '../core/zkfs/paths.js';
import type { VolumeBackend } from './volume-driver.js';

export const ZK_DRIVER = 'zookeeper';
const OPTION_KEYS = ['hosts', 'host', 'path', 'mode', 'auth', 'auth-file'] as const;

/** What statfs of a FUSE mount answers once its daemon has died (see alive below). */
const GONE = new Set(['ENOTCONN', 'ECONNABORTED', 'ECANCELED']);

/** Checks `-o` options of `docker volume create -d zookeeper` and fills in the defaults. */
export function normalizeZkOptions(options: Readonly<Record<string, string>>): Record<string, string> {
  const unknown = Object.keys(options).filter((k) => !(OPTION_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} for the zookeeper driver (expected hosts, path, mode, auth, auth-file)`,
    );
  }
  if (options.hosts !== undefined && options.host !== undefined && options.hosts !== options.host) {
    throw new UsageError('options hosts and host disagree; give one of them');
  }
  const hosts = options.hosts ?? options.host;
  if (hosts === undefined || hosts.trim() === '') {
    throw new UsageError(
      'missing option hosts: the ZooKeeper connection string, e.g. -o hosts=zk1:2181,zk2:2181',
    );
  }
  const hostsKey = options.hosts !== undefined ? 'hosts' : 'host';
  const normalized: Record<string, string> = {
    hosts: parseHosts(hosts, dockerOption(hostsKey), dockerOption('path').name)
      .map((h) => `${h.host}:${h.port}`)
      .join(','),
    path: normalizeZkPath(options.path ?? '/', dockerOption('path')),
    mode: parseMode(options.mode ?? 'hybrid', dockerOption('mode')).toUpperCase(),
  };
  if (options.auth !== undefined && options['auth-file'] !== undefined) {
    throw new UsageError('give option auth or auth-file, not both');
  }
  if (options.auth !== undefined) {
    // Digest credentials; the old plugin dropped the scheme and so never authenticated.
    parseAuth(options.auth, dockerOption('auth').name);
    normalized.auth = options.auth;
  }
  const authFile = options['auth-file'];
  if (authFile !== undefined) {
    // Read at each mount: the credentials then stay out of the engine's own volume records too.
    if (!isAbsolute(authFile))
      throw new UsageError(`${dockerOption('auth-file').withValue(authFile)} is not an absolute path`);
    normalized['auth-file'] = authFile;
  }
  return normalized;
}

export interface ZkBackendOptions {
  /** Where each volume's FUSE daemon logs (`<name>.log`). */
  logDir: string;
}

export function zkBackend(options: ZkBackendOptions): VolumeBackend {
  return {
    driver: ZK_DRIVER,
    secretOptions: ['auth'],
    plainOptions: OPTION_KEYS.filter((k) => k !== 'auth'),
    secretsOf: (_name, options) => (options.auth ? [options.auth] : []),
    normalizeOptions: (_name, options) => normalizeZkOptions(options),
    mount: async (volume: VolumeRecord, dir: string, ctx: CommandContext) => {
      const o = volume.options;
      await mountZk(
        {
          hosts: o.hosts ?? '',
          path: o.path ?? '/',
          dir,
          mode: o.mode,
          auth: o.auth,
          authFile: o['auth-file'],
          // Read here, at each Mount: its errors reach `docker run`, naming the option given to docker.
          authFileOption: dockerOption('auth-file').name,
          // Containers run processes under any uid; the daemon runs as root, so this needs no fuse.conf.
          options: ['allow_other'],
          // A volume name may be 255 characters long: with ".log" added it would not be a file name.
          logFile: join(options.logDir, fitFileName(volume.name, '.log')),
        },
        ctx,
      );
    },
    unmount: async (_volume: VolumeRecord, dir: string, ctx: CommandContext) => {
      await umountZk({ dir }, ctx);
    },
    alive: async (dir: string) => {
      const record = await readMountRecord(dir).catch(() => undefined);
      if (record !== undefined) return isDaemonAlive(record);
      // No record (another ZKFSCTL_RUN_DIR, /run cleaned): ask the mount itself. A FUSE mount whose
      // daemon died answers ENOTCONN at once (ECONNABORTED in the moment it dies, measured: the
      // request was queued as the connection went; ECANCELED where requests came over io_uring and
      // one went to a queue whose thread had died); taking a live one for dead would pull it from
      // under the containers using it. zkfs itself answers none of these.
      return statfs(dir).then(
        () => true,
        (error: NodeJS.ErrnoException) => !GONE.has(error.code ?? ''),
      );
    },
    discard: async (_volume: VolumeRecord, dir: string, ctx: CommandContext) => {
      await umountZk({ dir, lazy: true }, ctx);
    },
    status: (volume) => ({
      hosts: volume.options.hosts,
      path: volume.options.path,
      mode: volume.options.mode,
      auth: volume.options.auth
        ? 'digest (hidden)'
        : volume.options['auth-file']
          ? `digest from ${volume.options['auth-file']}`
          : 'none',
    }),
  };
}
