/**
 * Running a mount in the background. The caller starts
 * `node …/zkfsctl.js mount --foreground …` as a detached child whose output
 * goes to the log file, hands it the credentials on standard input (never
 * argv or the environment), and waits on an IPC channel until the child says
 * the mount is live or why it is not. Only then does `mount` return, so a
 * script can use the mount point on the next line; an unreachable ensemble
 * fails within the connect timeout and the child is gone.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage, OperationError } from '../../core/errors.js';
import { createLogger, type Logger, type LogLevel } from '../logger.js';
import { makeDirsSync } from '../make-dirs.js';

/** Set in the daemon's environment so it reports readiness over IPC (it holds no secret). */
export const DAEMON_ENV = 'ZKFSCTL_DAEMON';

export type DaemonMessage =
  | { type: 'ready'; pid: number }
  | { type: 'failed'; message: string; detail?: string | undefined };

export interface SpawnDaemonOptions {
  /** Arguments after the script: `mount --foreground …`. */
  args: readonly string[];
  /** Written to the child's standard input, then closed. */
  input?: string | undefined;
  logFile: string;
  /** How long to wait for the child to report. */
  timeoutMs: number;
  /** Aborted before the child reports (the command interrupted): the child is stopped. */
  signal?: AbortSignal | undefined;
}

/**
 * The size of V8's pool of background threads in the daemon: one per four
 * CPUs, at least one, at most four (Node's default, whatever the CPUs).
 * V8 compiles hot code and helps its garbage collector on that pool. On a
 * new mount's first walk it compiles the daemon's hot paths while the
 * programs walking the mount wait on the same CPUs: on 2 CPUs, four threads
 * spent about 390 ms of CPU in a 900 ms walk, one spent about 310 ms, and
 * the walk took about 100 ms less; the running mount's walks were
 * unchanged. A daemon's hot code is small and one thread compiles it soon
 * enough; where CPUs are many, compiling competes less, and the pool's
 * share of a large cache's collection pauses counts more.
 */
export function daemonV8PoolSize(cpus: number): number {
  return Math.min(4, Math.max(1, Math.floor(cpus / 4)));
}

/**
 * V8's cap on each half of its young generation, in MiB (Node's default
 * lets it grow to 16). On a new mount's first walk most of what the daemon
 * allocates survives (the cache filling), so V8 grows the young generation
 * to its largest at once, and every page it grows onto is a page the
 * kernel must fault in. Capped at 4 MiB, on a walk of 10,000 files (2 CPUs,
 * 8 rounds each, alternating) the daemon took 8,200 page faults instead of
 * 13,700 and 900 ms of CPU instead of 1,070, and the walk 1,600 ms instead
 * of 1,709 (medians); `cp -r` of 1,000 files and the warm walk were
 * unchanged. On the machine measured a page fault cost about 16 us.
 */
export const DAEMON_SEMI_SPACE_MIB = 4;

/**
 * Node's options for the daemon on this machine. --no-turbo-inlining: V8
 * compiles each hot function on its own, not with the functions it calls
 * copied in, which makes compiling cheaper. On a new mount's first walk of
 * 10,000 files (2 CPUs, 12 rounds each, alternating) the compiling thread
 * used about 110–145 ms less CPU, the event loop no more than before, and
 * the walk took 650 ms against 664 (read-write) and 602 against 647
 * (read-only), medians; `cp -r` of 1,000 files was unchanged.
 */
export function daemonNodeOptions(cpus = availableParallelism()): string[] {
  return [
    `--v8-pool-size=${daemonV8PoolSize(cpus)}`,
    '--no-turbo-inlining',
    `--max-semi-space-size=${DAEMON_SEMI_SPACE_MIB}`,
  ];
}

/** The built CLI entry point the daemon runs (dist/cli/zkfsctl.js). */
export function cliScript(): string {
  const beside = fileURLToPath(new URL('../../cli/zkfsctl.js', import.meta.url));
  if (existsSync(beside)) return beside;
  // Running from sources (tests): the build output sits in dist/.
  return fileURLToPath(new URL('../../../dist/cli/zkfsctl.js', import.meta.url));
}

function logTail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Opens the daemon's log for appending, making its directory; a failure says which file, and what to do. */
function openLogFile(file: string): number {
  try {
    makeDirsSync(dirname(file), 0o755);
    return openSync(file, 'a', 0o640);
  } catch (error) {
    throw new OperationError(
      `cannot write the log file ${file} (${errorMessage(error)}); give --log-file a file you can write`,
    );
  }
}

/** Starts the daemon and resolves with its pid once it reports the mount live; rejects with its reason. */
export async function spawnDaemon(options: SpawnDaemonOptions): Promise<{ pid: number }> {
  const logFd = openLogFile(options.logFile);
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(process.execPath, [...daemonNodeOptions(), cliScript(), ...options.args], {
      detached: true,
      // Not the caller's directory, which the daemon would keep busy for as long as it lives (another
      // mount the operator stood in could not be unmounted). Every path it is given is absolute.
      cwd: '/',
      stdio: ['pipe', logFd, logFd, 'ipc'],
      env: { ...process.env, [DAEMON_ENV]: '1', NO_COLOR: '1' },
    });
  } finally {
    closeSync(logFd);
  }
  child.stdin?.on('error', () => {});
  child.stdin?.end(options.input ?? '');
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, pid?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.removeAllListeners('message');
      child.removeAllListeners('exit');
      if (child.connected) child.disconnect();
      if (error) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        reject(error);
      } else {
        child.unref();
        resolve({ pid: pid ?? child.pid ?? 0 });
      }
    };
    const timer = setTimeout(
      () =>
        finish(
          new OperationError(`the mount did not come up within ${Math.round(options.timeoutMs / 1000)} s`, {
            detail: `log ${options.logFile}:\n${logTail(options.logFile)}`,
          }),
        ),
      options.timeoutMs,
    );
    child.on('message', (message: DaemonMessage) => {
      if (message.type === 'ready') finish(undefined, message.pid);
      else if (message.type === 'failed') {
        finish(new OperationError(message.message, message.detail ? { detail: message.detail } : {}));
      }
    });
    child.on('exit', (code, signal) => {
      finish(
        new OperationError(
          `the mount daemon exited (${signal ?? `code ${code}`}) before the mount was live`,
          {
            detail: `log ${options.logFile}:\n${logTail(options.logFile)}`,
          },
        ),
      );
    });
    child.on('error', (error) =>
      finish(new OperationError(`could not start the mount daemon: ${error.message}`)),
    );
    const interrupted = () =>
      finish(new OperationError('interrupted before the mount was live; its daemon was stopped'));
    if (options.signal?.aborted) interrupted();
    else options.signal?.addEventListener('abort', interrupted, { once: true });
  });
}

/** In the daemon: tells the parent the outcome (no-op when not started by spawnDaemon). */
export function notifyParent(message: DaemonMessage): void {
  if (process.env[DAEMON_ENV] !== '1' || !process.send) return;
  process.send(message, () => {
    if (process.connected) process.disconnect();
  });
}

/** A timestamped logger appending to `file` (the daemon's log); close() releases the file. */
export function fileLogger(file: string, level: LogLevel): Logger & { close(): void } {
  let fd: number | undefined = openLogFile(file);
  const logger = createLogger({
    level,
    timestamps: true,
    name: `zkfsctl[${process.pid}]`,
    write: (line) => {
      if (fd === undefined) return;
      try {
        writeSync(fd, `${line}\n`);
      } catch {
        // a full or vanished log must not take the mount down
      }
    },
  });
  return {
    ...logger,
    close: () => {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
