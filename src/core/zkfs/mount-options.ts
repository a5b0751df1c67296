/**
 * The options of `zkfsctl mount`, checked and defaulted once at the door so
 * nothing further down tests for undefined. Every problem is a UsageError
 * that names the option and the bad value.
 */
import { UsageError } from '../errors.js';
import { cliOption, type OptionName } from '../option-name.js';
import { parseSize, SizeError } from '../units.js';
import { parseWholeNumberOption } from '../whole-number-option.js';
import { isZkfsMode, type ZkfsMode } from './modes.js';
import { normalizeZkPath } from './paths.js';
import { ZK_MAX_REQUEST_BYTES } from './zk-ops.js';

export interface ZkHost {
  host: string;
  port: number;
}

/** What the server counts against jute.maxbuffer by default; the default --max-file-size. */
export const DEFAULT_MAX_FILE_SIZE = ZK_MAX_REQUEST_BYTES;

/**
 * FUSE -o options zkfs understands (the rest are refused rather than ignored).
 * nosuid and nodev are accepted for scripts that pass them: they are always on.
 */
export const FUSE_OPTIONS = [
  'allow_other',
  'allow_root',
  'default_permissions',
  'ro',
  'nosuid',
  'nodev',
  'noexec',
] as const;
export type FuseOption = (typeof FUSE_OPTIONS)[number];

/**
 * Parses a connection string `h1:2181,h2:2181`. Ports are mandatory
 * (shared/reference.md §3); a chroot suffix is refused because the
 * ZooKeeper path is its own argument. An IPv6 address is refused: the
 * ZooKeeper client library splits each host at its first ':', so `[::1]`
 * would be tried as host '[' until the connect timeout, with no word of why.
 */
export function parseHosts(
  hosts: string,
  as: OptionName = cliOption('HOSTS'),
  pathOption = 'the PATH argument',
): ZkHost[] {
  const text = hosts.trim();
  if (text === '') throw new UsageError(`${as.name} is empty; expected host:port[,host:port...]`);
  if (text.includes('/')) {
    throw new UsageError(`${as.withValue(hosts)} contains a path; give the ZooKeeper path as ${pathOption}`);
  }
  return text.split(',').map((part) => {
    const item = part.trim();
    if (/^\[[0-9a-fA-F:.]*\]/.test(item)) {
      throw new UsageError(
        `'${item}' in ${as.name} is an IPv6 address, which the ZooKeeper client cannot connect to; ` +
          'give a host name that resolves to it',
      );
    }
    const m = /^([A-Za-z0-9._-]+):(\d+)$/.exec(item);
    if (!m) {
      throw new UsageError(
        `'${item}' in ${as.name} is not host:port (ports are required, e.g. zk1:2181,zk2:2181)`,
      );
    }
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new UsageError(`port ${m[2]} in ${as.name} is out of range`);
    return { host: m[1]!, port };
  });
}

/**
 * Digest credentials `user:password`; the password may itself contain ':'.
 * `source` names where they came from; the value, a secret, is never shown.
 */
export function parseAuth(auth: string, source = '--auth'): { user: string; password: string } {
  const value = auth.replace(/\r?\n$/, '');
  // The daemon reads its credentials as one line: a second one would be cut off unseen.
  if (/[\r\n]/.test(value)) throw new UsageError(`${source} must be one line`);
  const colon = value.indexOf(':');
  if (colon <= 0) throw new UsageError(`${source} must be user:password (digest scheme)`);
  return { user: value.slice(0, colon), password: value.slice(colon + 1) };
}

function parseId(name: string, value: string | number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > 0xfffffffe) {
    throw new UsageError(`--${name} '${value}' is not a numeric id`);
  }
  return n;
}

export function parseUmask(value: string | number): number {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value <= 0o777) return value;
  } else if (/^0?[0-7]{1,3}$/.test(value)) {
    return Number.parseInt(value, 8);
  }
  throw new UsageError(`--umask '${value}' is not an octal mask such as 022`);
}

export function parseMaxFileSize(value: string | number): number {
  let bytes: number;
  try {
    bytes = typeof value === 'number' ? value : parseSize(value);
  } catch (error) {
    if (error instanceof SizeError) throw new UsageError(`--max-file-size: ${error.message}`);
    throw error;
  }
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > ZK_MAX_REQUEST_BYTES) {
    throw new UsageError(
      `--max-file-size ${value} is out of range: ZooKeeper and its client take 1 to ${ZK_MAX_REQUEST_BYTES} bytes per node`,
    );
  }
  return bytes;
}

/**
 * Microseconds the daemon keeps polling for the next FUSE request after an
 * answer before it sleeps: a program walking the mount sends its next
 * request within microseconds, and waking a sleeping daemon costs tens of
 * microseconds (adapters/fuse/busy-poll.ts).
 */
export const DEFAULT_BUSY_POLL_US = 100;
const MAX_BUSY_POLL_US = 10_000;

export function parseBusyPoll(value: string | number): number {
  return parseWholeNumberOption('--busy-poll', value, {
    unit: 'microseconds',
    max: MAX_BUSY_POLL_US,
    zero: 'off',
  });
}

const MAX_CONNECT_TIMEOUT_S = 86_400;

/** Seconds `zkfsctl mount` waits for a ZooKeeper session: a positive number, up to a day. */
export function parseConnectTimeout(value: string | number): number {
  const n = typeof value === 'number' ? value : value.trim() === '' ? Number.NaN : Number(value);
  // Longer than a day is a typo, and past 24.8 days Node's timers fire at once.
  if (!Number.isFinite(n) || n <= 0 || n > MAX_CONNECT_TIMEOUT_S) {
    throw new UsageError(
      `--connect-timeout '${value}' is not a positive number of seconds up to ${MAX_CONNECT_TIMEOUT_S}`,
    );
  }
  return n;
}

export function parseMode(value: string, as: OptionName = cliOption('--mode')): ZkfsMode {
  const lower = value.toLowerCase();
  if (!isZkfsMode(lower)) throw new UsageError(`${as.withValue(value)} is not one of hybrid, dir, file`);
  return lower;
}

/** Splits `-o a,b -o c` into known options; anything else is a usage error. */
export function parseFuseOptions(values: readonly string[]): FuseOption[] {
  const out: FuseOption[] = [];
  for (const value of values) {
    for (const item of value.split(',')) {
      const name = item.trim();
      if (name === '') continue;
      if (!(FUSE_OPTIONS as readonly string[]).includes(name)) {
        throw new UsageError(`-o ${name} is not supported (supported: ${FUSE_OPTIONS.join(', ')})`);
      }
      if (!out.includes(name as FuseOption)) out.push(name as FuseOption);
    }
  }
  return out;
}

export interface RawMountOptions {
  hosts: string;
  path: string;
  mode?: string | undefined;
  uid?: string | number | undefined;
  gid?: string | number | undefined;
  umask?: string | number | undefined;
  maxFileSize?: string | number | undefined;
  busyPoll?: string | number | undefined;
  options?: readonly string[] | undefined;
  readOnly?: boolean | undefined;
  /** Take requests over io_uring where the kernel offers them (default true). */
  ioUring?: boolean | undefined;
}

export interface ResolvedMountOptions {
  hosts: ZkHost[];
  /** The connection string as the client takes it. */
  connectString: string;
  path: string;
  mode: ZkfsMode;
  uid: number;
  gid: number;
  umask: number;
  maxFileSize: number;
  /** Microseconds to keep polling for the next request after each answer (0: sleep at once). */
  busyPollUs: number;
  fuseOptions: FuseOption[];
  readOnly: boolean;
  /** Take requests over io_uring where the kernel offers them (adapters/fuse/request-reader.ts). */
  ioUring: boolean;
}

/** Checks every option and fills in the defaults (uid/gid default to `owner`, the mounting user). */
export function resolveMountOptions(
  raw: RawMountOptions,
  owner: { uid: number; gid: number },
): ResolvedMountOptions {
  const hosts = parseHosts(raw.hosts);
  const fuseOptions = parseFuseOptions(raw.options ?? []);
  return {
    hosts,
    connectString: hosts.map((h) => `${h.host}:${h.port}`).join(','),
    path: normalizeZkPath(raw.path),
    mode: raw.mode === undefined ? 'hybrid' : parseMode(raw.mode),
    uid: raw.uid === undefined ? owner.uid : parseId('uid', raw.uid),
    gid: raw.gid === undefined ? owner.gid : parseId('gid', raw.gid),
    umask: raw.umask === undefined ? 0o022 : parseUmask(raw.umask),
    maxFileSize: raw.maxFileSize === undefined ? DEFAULT_MAX_FILE_SIZE : parseMaxFileSize(raw.maxFileSize),
    busyPollUs: raw.busyPoll === undefined ? DEFAULT_BUSY_POLL_US : parseBusyPoll(raw.busyPoll),
    fuseOptions: fuseOptions.filter((o) => o !== 'ro'),
    readOnly: Boolean(raw.readOnly) || fuseOptions.includes('ro'),
    ioUring: raw.ioUring !== false,
  };
}
