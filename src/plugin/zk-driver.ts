/**
 * The `zookeeper` driver: a volume is a ZooKeeper subtree mounted with the
 * same handler as `zkfsctl mount`. Options are those of the old
 * zookeeper-volume plugin (shared/reference.md §3): `hosts` (or `host`, which
 * it documented but had stopped reading), `path`, `mode` and `auth`; the auth
 * string stays in the 0600 state file and never reaches a reply or a log.
 */
import type { CommandContext } from '../commands/context.js';
import { mountZk } from '../commands/mount-zk.js';
import { umountZk } from '../commands/umount-zk.js';
import { UsageError } from '../core/errors.js';
import type { VolumeRecord } from '../core/plugin-state.js';
import type { VolumeBackend } from './volume-driver.js';

export const ZK_DRIVER = 'zookeeper';
const OPTION_KEYS = ['hosts', 'host', 'path', 'mode', 'auth'] as const;
const MODES = ['HYBRID', 'DIR', 'FILE'] as const;
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$/;

function checkHosts(hosts: string): string {
  const members = hosts.split(',');
  for (const member of members) {
    const m = HOST_PORT.exec(member.trim());
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) {
      throw new UsageError(
        `option hosts: ${JSON.stringify(member)} is not host:port (ports are required, e.g. zk1:2181,zk2:2181)`,
      );
    }
  }
  return members.map((m) => m.trim()).join(',');
}

/** Checks `-o` options of `docker volume create -d zookeeper` and fills in the defaults. */
export function normalizeZkOptions(options: Readonly<Record<string, string>>): Record<string, string> {
  const unknown = Object.keys(options).filter((k) => !(OPTION_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} for the zookeeper driver (expected hosts, path, mode, auth)`,
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
  const path = options.path ?? '/';
  if (!path.startsWith('/') || path.includes('\0') || (path.length > 1 && path.endsWith('/'))) {
    throw new UsageError(
      `option path: ${JSON.stringify(path)} is not an absolute ZooKeeper path such as /app`,
    );
  }
  const mode = (options.mode ?? 'HYBRID').toUpperCase();
  if (!(MODES as readonly string[]).includes(mode)) {
    throw new UsageError(`option mode: ${JSON.stringify(options.mode)} is not one of HYBRID, DIR, FILE`);
  }
  const normalized: Record<string, string> = { hosts: checkHosts(hosts), path, mode };
  if (options.auth !== undefined) {
    // Digest credentials; the old plugin dropped the scheme and so never authenticated.
    if (!/^[^:]+:.*$/.test(options.auth)) throw new UsageError('option auth: expected user:password');
    normalized.auth = options.auth;
  }
  return normalized;
}

export function zkBackend(): VolumeBackend {
  return {
    driver: ZK_DRIVER,
    secretOptions: ['auth'],
    secretsOf: (_name, options) => (options.auth ? [options.auth] : []),
    normalizeOptions: (_name, options) => normalizeZkOptions(options),
    mount: async (volume: VolumeRecord, dir: string, ctx: CommandContext) => {
      const { hosts, path, mode, auth } = volume.options;
      await mountZk({ hosts, path, dir, mode, ...(auth ? { auth } : {}) }, ctx);
    },
    unmount: async (_volume: VolumeRecord, dir: string, ctx: CommandContext) => {
      await umountZk({ dir }, ctx);
    },
    status: (volume) => ({
      hosts: volume.options.hosts,
      path: volume.options.path,
      mode: volume.options.mode,
      auth: volume.options.auth ? 'digest (hidden)' : 'none',
    }),
  };
}
