/**
 * `zkfsctl mount HOSTS PATH DIR`: checks every option, then either serves
 * the mount in this process (`foreground`, until `signal` aborts or someone
 * unmounts DIR) or starts a detached daemon doing so and returns once the
 * mount is live. Safe to call from a long-running server: no process state
 * is touched, and credentials travel as values (to a daemon on its standard
 * input), never on a command line or in the environment.
 *
 * PATH is created in ZooKeeper when missing (as the old Docker plugin did)
 * unless `create` is false.
 */
import { stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { readSecretFile } from '../adapters/keys.js';
import { type LockHandle, lockNowOr } from '../adapters/lock.js';
import type { Logger } from '../adapters/logger.js';
import { mountAt, readMountTable } from '../adapters/mountinfo.js';
import { canonicalDir, realMountPoint } from '../adapters/real-path.js';
import { DAEMON_ENV, fileLogger, notifyParent, spawnDaemon } from '../adapters/zkfs/daemon.js';
import { mountPointFileName, runDir } from '../adapters/zkfs/run-state.js';
import { serveZkfs } from '../adapters/zkfs/serve.js';
import { errorMessage, isOperationError, OperationError, UsageError } from '../core/errors.js';
import { type CoherenceOptions, resolveCoherenceOptions } from '../core/zkfs/coherence-options.js';
import {
  parseAuth,
  parseConnectTimeout,
  type ResolvedMountOptions,
  resolveMountOptions,
} from '../core/zkfs/mount-options.js';
import { isWithin } from '../core/zkfs/paths.js';
import type { CommandContext } from './context.js';

export interface MountZkOptions {
  /** Connection string `h1:2181,h2:2181` (ports required). */
  hosts: string;
  /** ZooKeeper path to mount. */
  path: string;
  /** Mount point (must exist and not be mounted). */
  dir: string;
  /** hybrid (default), dir or file; case-insensitive. */
  mode?: string | undefined;
  /** Digest credentials `user:password`. */
  auth?: string | undefined;
  /** A file holding `user:password`, or `-` for standard input. */
  authFile?: string | undefined;
  /** How messages name authFile's option: `--auth-file` (default), `-o auth-file` through Docker. */
  authFileOption?: string | undefined;
  readOnly?: boolean | undefined;
  /** Bytes (units accepted: 512K); default 1048575. */
  maxFileSize?: string | number | undefined;
  /** Microseconds the daemon polls for the next request before sleeping (default 100, 0 off). */
  busyPoll?: string | number | undefined;
  /** Take FUSE requests over io_uring where the kernel offers them (default true). */
  ioUring?: boolean | undefined;
  uid?: string | number | undefined;
  gid?: string | number | undefined;
  /** Octal, e.g. "022". */
  umask?: string | number | undefined;
  /** FUSE -o options: allow_other, allow_root, default_permissions, ro, noexec, nosuid, nodev. */
  options?: readonly string[] | undefined;
  foreground?: boolean | undefined;
  /** Where the daemon logs (default /var/log/zkfsctl/<mount point>.log); foreground: optional. */
  logFile?: string | undefined;
  /** Create PATH in ZooKeeper when missing (default true). */
  create?: boolean | undefined;
  /** Seconds to wait for a ZooKeeper session (default 10). */
  connectTimeout?: string | number | undefined;
  /** How long cached metadata stays fresh, in ms (default 1000), when the servers cannot watch. */
  cacheTtlMs?: number | undefined;
  /** Memory for the watch-driven cache (bytes, units accepted: 64M); 0 caches nothing. */
  cacheSize?: string | number | undefined;
  /** Milliseconds the kernel may reuse attributes and names (default 10000, kept exact by the watch). */
  attrTimeout?: string | number | undefined;
  /** Seconds an operation waits for a lost ZooKeeper connection to come back (default 30). */
  reconnectTimeout?: string | number | undefined;
  /** ZooKeeper session timeout in seconds (default 30; servers clamp it). */
  sessionTimeout?: string | number | undefined;
  /**
   * Foreground: aborting it unmounts and makes mountZk resolve. Otherwise:
   * aborting it before the daemon reports the mount live stops the daemon,
   * and mountZk fails (the command was interrupted: nothing is to be mounted).
   */
  signal?: AbortSignal | undefined;
  /** Foreground only: aborting it stops serving files still open after `signal` (serve.ts). */
  signalNow?: AbortSignal | undefined;
}

export interface MountZkResult {
  dir: string;
  hosts: string;
  path: string;
  mode: string;
  readOnly: boolean;
  /** The process serving the mount. */
  pid: number;
  logFile?: string | undefined;
  foreground: boolean;
  /** Foreground only: how the mount ended. */
  ended?: 'stopped' | 'unmounted' | undefined;
}

const DEFAULT_CONNECT_TIMEOUT_S = 10;

export function defaultLogFile(dir: string): string {
  return `/var/log/zkfsctl/${mountPointFileName(dir, '.log')}`;
}

/**
 * Credentials from --auth, or the first line of --auth-file ("-": standard
 * input). A file that group or others can read is used, with a warning.
 */
async function readAuth(
  options: MountZkOptions,
  log: Logger,
): Promise<{ user: string; password: string } | undefined> {
  if (options.auth !== undefined && options.authFile !== undefined) {
    throw new UsageError('give either --auth or --auth-file, not both');
  }
  if (options.auth !== undefined) return parseAuth(options.auth);
  if (options.authFile === undefined) return undefined;
  const label = options.authFileOption ?? '--auth-file';
  const text = await readSecretFile(options.authFile, {
    label,
    othersAccess: 'warn',
    log,
    dashIsStdin: true,
  });
  const file = options.authFile === '-' ? 'standard input' : options.authFile;
  // A file written on Windows ends its lines with \r\n; the \r is no part of the password.
  return parseAuth(text.split(/\r?\n/)[0] ?? '', `the first line of ${label} ${file}`);
}

/** `dir` is the real path (the mount table's), `shown` what the user gave (realMountPoint). */
async function checkMountPoint(dir: string, shown: string): Promise<void> {
  const existing = mountAt(await readMountTable(), dir);
  if (existing) {
    throw new OperationError(
      `${shown} is already a mount point (${existing.fsType} from ${existing.source})`,
      {
        detail:
          existing.fsType === 'fuse.zkfs'
            ? `unmount it first: zkfsctl umount ${dir} (add --lazy if programs still use it)`
            : undefined,
      },
    );
  }
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(dir);
  } catch {
    throw new UsageError(`mount point ${shown} does not exist`);
  }
  if (!info.isDirectory()) throw new UsageError(`mount point ${shown} is not a directory`);
}

function daemonArgs(
  resolved: ResolvedMountOptions,
  coherence: CoherenceOptions,
  dir: string,
  options: MountZkOptions,
  logFile: string,
  hasAuth: boolean,
  level: string,
): string[] {
  const args = [
    '--log-level',
    level === 'debug' ? 'debug' : 'info',
    'mount',
    '--foreground',
    '--log-file',
    logFile,
    '--mode',
    resolved.mode,
    '--max-file-size',
    String(resolved.maxFileSize),
    '--busy-poll',
    String(resolved.busyPollUs),
    '--uid',
    String(resolved.uid),
    '--gid',
    String(resolved.gid),
    '--umask',
    resolved.umask.toString(8).padStart(3, '0'),
    '--connect-timeout',
    String(options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_S),
    '--cache-size',
    String(coherence.cacheBytes),
    '--attr-timeout',
    String(coherence.attrTimeoutMs),
    '--reconnect-timeout',
    String(coherence.reconnectTimeoutMs / 1000),
    '--session-timeout',
    String(coherence.sessionTimeoutMs / 1000),
  ];
  for (const o of resolved.fuseOptions) args.push('-o', o);
  if (resolved.readOnly) args.push('--read-only');
  if (!resolved.ioUring) args.push('--no-io-uring');
  if (options.create === false) args.push('--no-create');
  if (hasAuth) args.push('--auth-file', '-');
  args.push(resolved.connectString, resolved.path, dir);
  return args;
}

export async function mountZk(options: MountZkOptions, ctx: CommandContext): Promise<MountZkResult> {
  const resolved = resolveMountOptions(options, {
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
  });
  const coherence = resolveCoherenceOptions(options);
  if (options.dir === '') throw new UsageError('DIR is empty');
  // The kernel mounts at the real path: the daemon watching the mount table for its own unmount,
  // the refusal of a second mount, the run record and the default log name all need that spelling.
  const { dir, shown } = await realMountPoint(options.dir);
  const connectTimeout = parseConnectTimeout(options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_S);
  const logFile =
    options.logFile !== undefined
      ? resolve(options.logFile)
      : options.foreground
        ? undefined
        : defaultLogFile(dir);
  if (logFile && (!isAbsolute(logFile) || isWithin(await canonicalDir(logFile), dir))) {
    throw new UsageError(`the log file ${logFile} cannot be inside the mount point ${shown}`);
  }
  const base = {
    dir,
    hosts: resolved.connectString,
    path: resolved.path,
    mode: resolved.mode,
    readOnly: resolved.readOnly,
    logFile,
  };

  if (!options.foreground) {
    const auth = await readAuth(options, ctx.log);
    const lock = await lockMountPoint(dir, shown);
    let pid: number;
    try {
      await checkMountPoint(dir, shown);
      ctx.progress(`mounting ${resolved.connectString}${resolved.path} at ${shown}`);
      ({ pid } = await spawnDaemon({
        args: daemonArgs(resolved, coherence, dir, options, logFile!, auth !== undefined, ctx.log.level),
        input: auth ? `${auth.user}:${auth.password}\n` : undefined,
        logFile: logFile!,
        timeoutMs: connectTimeout * 1000 + 30_000,
        signal: options.signal,
      }));
    } finally {
      await lock.release();
    }
    ctx.log.info(
      `mounted ${resolved.connectString}${resolved.path} at ${dir} (daemon pid ${pid}, log ${logFile})`,
    );
    return { ...base, pid, foreground: false };
  }

  const fileLog = logFile ? fileLogger(logFile, ctx.log.level === 'debug' ? 'debug' : 'info') : undefined;
  const log = fileLog ?? ctx.log;
  let ready = false;
  // A daemon's parent holds the mount point's lock for it, until the daemon reports the mount live.
  let lock: LockHandle | undefined;
  try {
    const auth = await readAuth(options, ctx.log);
    if (auth) log.addSecret(auth.password);
    if (process.env[DAEMON_ENV] !== '1') lock = await lockMountPoint(dir, shown);
    await checkMountPoint(dir, shown);
    const result = await serveZkfs({
      resolved,
      dir,
      auth,
      createPath: options.create !== false,
      connectTimeoutMs: connectTimeout * 1000,
      cacheTtlMs: options.cacheTtlMs,
      coherence,
      logFile,
      log,
      stop: options.signal ?? new AbortController().signal,
      stopNow: options.signalNow,
      onReady: (pid) => {
        ready = true;
        void lock?.release();
        notifyParent({ type: 'ready', pid });
      },
    });
    return { ...base, pid: process.pid, foreground: true, ended: result.reason };
  } catch (error) {
    log.error(`${ready ? 'serving the mount' : 'mount'} failed: ${errorMessage(error)}`);
    notifyParent({
      type: 'failed',
      message: errorMessage(error),
      detail: isOperationError(error) ? error.detail : undefined,
    });
    throw error;
  } finally {
    await lock?.release();
    fileLog?.close();
  }
}

/**
 * Takes the lock of mount point `dir` at once, from the check that nothing
 * is mounted there to the mount being live: two mounts started together
 * both passed the check, and the second was stacked on the first, with
 * one run record for the two.
 */
function lockMountPoint(dir: string, shown: string): Promise<LockHandle> {
  return lockNowOr(
    join(runDir(), mountPointFileName(dir, '.lock')),
    `zkfsctl mount at ${dir}`,
    (holder) =>
      new OperationError(
        `${shown} is being mounted by another zkfsctl (pid ${holder.pid}, since ${holder.since}); ` +
          'wait for it, or unmount what it mounts first',
      ),
  );
}
