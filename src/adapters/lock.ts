/**
 * An exclusive lock between processes (and between callers in one process):
 * a lock file created with O_EXCL that records its holder's pid and process
 * start time. A holder that died (crash, SIGKILL, reboot) leaves the file
 * behind; the next caller sees the holder is gone and breaks the lock. Breaking
 * is itself serialised by an atomic mkdir, and the file is re-read under it, so
 * two waiters never both delete a lock that a third has just taken.
 */
import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errorMessage, isOperationError, OperationError } from '../core/errors.js';
import { makeDirs } from './make-dirs.js';
import { isProcessAlive, processStartTime } from './processes.js';

export interface LockOptions {
  /** Give up after this long (default 120 s: initialising a large disk takes a while). */
  timeoutMs?: number;
  /** How often to look again while another holder has it (default 50 ms, with jitter). */
  pollMs?: number;
  /** Recorded in the lock file and named in "waiting for" errors, e.g. "mount label.fast". */
  purpose?: string;
  /** Told once, when it first finds a live holder (or one it may not read), who that is ("held by pid …"). */
  onWait?: (who: string) => void;
}

export interface LockHolder {
  pid: number;
  /** Makes each acquisition's file content unique, so release never removes a later holder's file. */
  nonce?: string;
  /** Field 22 of /proc/<pid>/stat: tells a live holder from a recycled pid. */
  startTime: string;
  purpose: string;
  since: string;
}

export interface LockHandle {
  readonly path: string;
  /** Removes the lock file if it is still ours (idempotent). */
  release(): Promise<void>;
}

/** A break directory older than this belongs to a breaker that died mid-way. */
const BREAK_STALE_MS = 10_000;

function parseHolder(text: string): LockHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    if (typeof value.pid !== 'number') return undefined;
    return {
      pid: value.pid,
      startTime: String(value.startTime ?? ''),
      purpose: String(value.purpose ?? ''),
      since: String(value.since ?? ''),
    };
  } catch {
    return undefined;
  }
}

/**
 * The text of the lock file at `path`. Anything but a regular file is refused
 * without reading it: reading a FIFO would wait for a writer that may never
 * come, opening a device may act on it, and a socket cannot be opened. It
 * is looked at before it is opened, and again once open, without blocking,
 * in case it was replaced between the two.
 */
async function readLockText(path: string): Promise<string> {
  refuseNonFile(await stat(path));
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    refuseNonFile(await handle.stat());
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

function refuseNonFile(s: Stats): void {
  if (s.isFile()) return;
  const kind = s.isDirectory()
    ? 'a directory'
    : s.isFIFO()
      ? 'a FIFO'
      : s.isSocket()
        ? 'a socket'
        : 'a device';
  throw new Error(`it is ${kind}, not a regular file`);
}

/** Who holds the lock at `path`, if anyone (a torn or foreign file reads as undefined). */
export async function readLockHolder(path: string): Promise<LockHolder | undefined> {
  try {
    return parseHolder(await readLockText(path));
  } catch {
    return undefined;
  }
}

async function tryCreate(path: string, content: string): Promise<boolean> {
  try {
    const handle = await open(path, 'wx', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Removes the lock file if it still holds exactly `seen` and its holder is dead.
 * A file whose content cannot be parsed is given BREAK_STALE_MS to be completed
 * (its writer may be between create and write) before it is treated as stale.
 */
async function breakIfStale(path: string, seen: string): Promise<void> {
  const breaker = `${path}.break`;
  try {
    await mkdir(breaker, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotLock(path, error);
    const age = await stat(breaker).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > BREAK_STALE_MS) await rmdir(breaker).catch(() => {});
    return;
  }
  try {
    const now = await readLockText(path).catch(() => undefined);
    if (now === undefined || now !== seen) return;
    const holder = parseHolder(now);
    if (holder && isProcessAlive(holder.pid, holder.startTime)) return;
    if (!holder) {
      const age = await stat(path).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age <= BREAK_STALE_MS) return;
    }
    await unlink(path).catch(() => {});
  } finally {
    await rmdir(breaker).catch(() => {});
  }
}

const GONE = Symbol('gone');
const UNREADABLE = Symbol('unreadable');

/**
 * The lock file's text; GONE when it was released meanwhile; UNREADABLE when
 * this process may not read it, or not now (another process's lease): it is
 * waited on like a file it cannot judge.
 * Anything else (a directory, a FIFO or a link to nothing in its place)
 * would only come back every turn, and is an error.
 */
async function readHolderFile(path: string): Promise<string | typeof GONE | typeof UNREADABLE> {
  try {
    return await readLockText(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EAGAIN') return UNREADABLE;
    if (code !== 'ENOENT' && code !== 'ESTALE') throw cannotLock(path, error);
    // Exclusive create fails on a symbolic link to nothing, which reads as missing.
    const link = await lstat(path).then(
      (s) => s.isSymbolicLink(),
      (lstatError: NodeJS.ErrnoException) => {
        if (lstatError.code === 'ENOENT' || lstatError.code === 'ESTALE') return false;
        throw cannotLock(path, lstatError);
      },
    );
    if (link) throw cannotLock(path, new Error('it is a symbolic link to nothing'));
    return GONE;
  }
}

/** Waits for and takes the lock at `path`. */
export async function acquireLock(path: string, options: LockOptions = {}): Promise<LockHandle> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const pollMs = options.pollMs ?? 50;
  await makeDirs(dirname(path), 0o700).catch((error: unknown) => {
    throw cannotLock(path, error);
  });
  const me: LockHolder = {
    pid: process.pid,
    startTime: processStartTime(process.pid) ?? '',
    purpose: options.purpose ?? '',
    since: new Date().toISOString(),
    nonce: randomBytes(6).toString('hex'),
  };
  const content = `${JSON.stringify(me)}\n`;
  const deadline = Date.now() + timeoutMs;
  let told = false;
  /**
   * Tries made again at once since the last pause: after a release between
   * our create and read, or a break. Not for ever at full speed: where the
   * create and the reads keep disagreeing (a network filesystem's cached
   * lookups), or the file keeps changing, it is waited on like a holder.
   */
  let quick = 0;
  for (;;) {
    const created = await tryCreate(path, content).catch((error: unknown) => {
      throw cannotLock(path, error);
    });
    if (created) break;
    const seen = await readHolderFile(path);
    if (seen === GONE && quick++ < 2) continue;
    const holder = typeof seen === 'string' ? parseHolder(seen) : undefined;
    const alive = holder !== undefined && isProcessAlive(holder.pid, holder.startTime);
    if (!alive && typeof seen === 'string') {
      await breakIfStale(path, seen);
      const after = await readLockText(path).catch(() => undefined);
      if (after !== seen && quick++ < 2) continue;
    }
    const who = holder
      ? `held by pid ${holder.pid}${holder.purpose ? ` (${holder.purpose})` : ''} since ${holder.since}${alive ? '' : ', not running'}`
      : seen === GONE
        ? "whose lock file is reported both there and missing (a network filesystem's stale cache?); remove it if no simplectl is running"
        : 'whose lock file is unreadable (remove it if no simplectl is running)';
    // Named: a live holder, and a file this process cannot read or find; not a
    // file not yet parsed, which may be one between its holder's create and write.
    if ((alive || typeof seen !== 'string') && !told) {
      told = true;
      options.onWait?.(who);
    }
    if (Date.now() >= deadline) {
      throw new OperationError(
        `timed out after ${(timeoutMs / 1000).toFixed(1)} s waiting for the lock ${path}, ${who}`,
      );
    }
    quick = 0;
    await new Promise((r) => setTimeout(r, pollMs / 2 + Math.random() * pollMs));
  }
  let released = false;
  return {
    path,
    release: async () => {
      if (released) return;
      released = true;
      // Only remove the file if it is still ours: never delete a lock someone else took.
      const now = await readLockText(path).catch(() => undefined);
      if (now === content) await unlink(path).catch(() => {});
    },
  };
}

/** Why the lock could not be taken (its directory or file could not be made, read or broken), naming it. */
function cannotLock(path: string, error: unknown): Error {
  if (isOperationError(error)) return error;
  return new OperationError(`cannot take the lock ${path}: ${errorMessage(error)}`, { cause: error });
}

/**
 * Takes the lock at `path` at once (a dead holder's is broken, as
 * acquireLock does), or throws what `refusal` says of the one holding it;
 * acquireLock's own error when the holder cannot be read.
 */
export async function lockNowOr(
  path: string,
  purpose: string,
  refusal: (holder: LockHolder) => Error,
): Promise<LockHandle> {
  try {
    return await acquireLock(path, { timeoutMs: 0, purpose });
  } catch (error) {
    const holder = await readLockHolder(path);
    if (!holder) throw error;
    throw refusal(holder);
  }
}

/** Runs `work` while holding the lock at `path`; releases it however `work` ends. */
export async function withLock<T>(path: string, options: LockOptions, work: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}
