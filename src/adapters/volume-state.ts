/**
 * Where volume state lives: a state directory (default /var/lib/simplectl,
 * or SIMPLECTL_STATE_DIR, or --state-dir) holding
 *   volumes.json   assignments and mounts (core/assignments.ts), written atomically, 0600
 *   assign.lock    the lock around every change to it (adapters/lock.ts)
 *   watchers/      logs of the detached watchers of dynamic volumes
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { emptyState, type VolumesState, validateState } from '../core/assignments.js';
import { errorMessage, isOperationError, OperationError, UsageError } from '../core/errors.js';
import { type LockOptions, withLock } from './lock.js';
import { readJson, writeJsonAtomic } from './state-file.js';

export const DEFAULT_STATE_DIR = '/var/lib/simplectl';

/** The state directory: the explicit option, else SIMPLECTL_STATE_DIR, else the default. Always absolute. */
export function resolveStateDir(option?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = option ?? (env.SIMPLECTL_STATE_DIR || undefined) ?? DEFAULT_STATE_DIR;
  if (chosen.trim() === '') throw new UsageError('the state directory must not be empty');
  return isAbsolute(chosen) ? chosen : resolve(chosen);
}

export function statePath(stateDir: string): string {
  return join(stateDir, 'volumes.json');
}

export function lockPath(stateDir: string): string {
  return join(stateDir, 'assign.lock');
}

export function watcherLogDir(stateDir: string): string {
  return join(stateDir, 'watchers');
}

/**
 * Creates the state directory (0700) and any missing parent, one level at a
 * time: Node's recursive mkdir spins forever where mkdir says ENOENT under a
 * parent that exists (/proc, /sys). Every failure names the directory.
 */
export async function ensureStateDir(stateDir: string): Promise<void> {
  const missing: string[] = [];
  for (let dir = stateDir; ; dir = dirname(dir)) {
    const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw new OperationError(`cannot use the state directory ${stateDir}: ${errorMessage(error)}`);
    });
    if (info?.isDirectory()) break;
    if (info)
      throw new OperationError(`cannot use the state directory ${stateDir}: ${dir} is not a directory`);
    missing.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of missing) {
    await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') {
        throw new OperationError(`cannot create the state directory ${stateDir}: ${errorMessage(error)}`);
      }
    });
  }
}

/** Reads the state (empty when the file does not exist yet). */
export async function loadState(stateDir: string): Promise<VolumesState> {
  const path = statePath(stateDir);
  const raw = await readJson<unknown>(path, emptyState()).catch((error: unknown) => {
    if (isOperationError(error)) throw error;
    throw new OperationError(`cannot read the state file ${path}: ${errorMessage(error)}`, { cause: error });
  });
  const checked = validateState(raw);
  if (typeof checked === 'string') {
    throw new OperationError(`state file ${path} is not usable: ${checked}; fix or move it aside`);
  }
  return checked;
}

/** Writes the state atomically (a crash leaves the old or the new file, never a torn one). */
export async function saveState(stateDir: string, state: VolumesState): Promise<void> {
  await ensureStateDir(stateDir);
  await writeJsonAtomic(statePath(stateDir), state);
}

/** The state as read under the lock, and a way to persist each step before taking the next. */
export interface StateSession {
  readonly stateDir: string;
  /** The latest committed state. */
  state: VolumesState;
  /** Saves `next` atomically and makes it `state`. */
  commit(next: VolumesState): Promise<void>;
}

/**
 * Runs `work` holding the state directory's lock (so concurrent mounts never
 * hand out the same disk), with the state read after the lock was taken.
 */
export async function withStateLock<T>(
  stateDir: string,
  options: LockOptions,
  work: (session: StateSession) => Promise<T>,
): Promise<T> {
  await ensureStateDir(stateDir);
  return withLock(lockPath(stateDir), options, async () => {
    const session: StateSession = {
      stateDir,
      state: await loadState(stateDir),
      commit: async (next) => {
        await saveState(stateDir, next);
        session.state = next;
      },
    };
    return work(session);
  });
}
