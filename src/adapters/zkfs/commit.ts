/**
 * Writing shared documents safely. A directory's metadata document and the
 * symlink table may be rewritten by any host at any time, so every write is
 * a multi that checks the version read; when another host got there first
 * the documents are read again and the change is reapplied (the old tool
 * rewrote `__symlinks__` blindly, so two hosts lost each other's links).
 */
import { FsError, fsCodeForZk, isFsError } from '../../core/zkfs/errors.js';
import { isSharedDoc, META_NODE, parentPath, SYMLINKS_NODE } from '../../core/zkfs/paths.js';
import { RACE_BUDGET_MS, raceWaitMs } from '../../core/zkfs/race-backoff.js';
import type { ZkOp } from '../../core/zkfs/zk-ops.js';
import { isZkError, type MultiStats, ZkError } from '../zookeeper.js';
import type { ZkTree } from './tree.js';

/**
 * Races lost on something other than a shared document (`retryAlso`: a
 * rename's target made or removed meanwhile) that a write takes before it
 * fails. Counted apart from races lost on the documents, which any busy
 * directory brings and the time budget bounds: counted together, a rename
 * that lost the document eight times failed on its first lost race for the
 * target, with EEXIST or ENOENT, which rename(2) over a file never answers.
 */
const MAX_OTHER_RACES = 8;

/** Any thrown value as the FsError a tool should see; `what` names the operation for the log. */
export function asFsError(error: unknown, what: string): FsError {
  if (isFsError(error)) return error;
  if (error instanceof ZkError) {
    return new FsError(fsCodeForZk(error.zkName), `${what}: ${error.message}`, { cause: error });
  }
  return new FsError('EIO', `${what}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}

export interface CommitOptions {
  /** Other failures to take as lost races (a rename re-reads its whole source tree). */
  retryAlso?: (error: ZkError) => boolean;
  /** How long to keep trying after races lost on a shared document (ms; core/zkfs/race-backoff.ts). */
  budgetMs?: number;
  /** Run before a multi is sent again after the connection was lost under it (SetDataOptions). */
  beforeResend?: () => Promise<void>;
}

/**
 * Builds and commits a multi, rebuilding it from fresh reads when it lost a
 * race on a shared document. `build(attempt)` returns the ops (attempt > 0:
 * read documents fresh) or null when there is nothing to write. Resolves to
 * the stats of the multi that landed (ZkClient.multi), none when nothing was written.
 */
export async function commitWithRetry(
  tree: ZkTree,
  build: (attempt: number) => Promise<ZkOp[] | null>,
  options: CommitOptions = {},
): Promise<MultiStats> {
  const started = Date.now();
  const budgetMs = options.budgetMs ?? RACE_BUDGET_MS;
  let otherRaces = 0;
  for (let attempt = 0; ; attempt++) {
    const ops = await build(attempt);
    if (!ops || ops.length === 0) return [];
    try {
      return await tree.client.multi(ops, { beforeResend: options.beforeResend });
    } catch (error) {
      if (!(error instanceof ZkError)) throw error;
      const lostRace =
        isZkError(error, 'BAD_VERSION', 'NODE_EXISTS', 'NO_NODE') &&
        error.path !== undefined &&
        isSharedDoc(error.path);
      if (lostRace) {
        const elapsedMs = Date.now() - started;
        if (elapsedMs >= budgetMs) throw gaveUp(error, attempt + 1, elapsedMs);
      } else if (
        options.retryAlso?.(error) !== true ||
        ++otherRaces >= MAX_OTHER_RACES ||
        Date.now() - started >= budgetMs
      ) {
        throw error;
      }
      if (error.path) {
        if (error.path.endsWith(`/${SYMLINKS_NODE}`)) tree.forgetSymlinks();
        else if (error.path.endsWith(`/${META_NODE}`)) tree.metas.invalidate(parentPath(error.path));
      }
      await new Promise((r) => setTimeout(r, raceWaitMs(attempt)));
    }
  }
}

/** The failure of a write that lost the race for `error.path` on every attempt. */
function gaveUp(error: ZkError, attempts: number, elapsedMs: number): FsError {
  return new FsError(
    'EIO',
    `other clients changed ${error.path} before each of ${attempts} attempts in ${(elapsedMs / 1000).toFixed(1)} s; gave up`,
    { cause: error },
  );
}
