/**
 * Which volumes hold each disk, as the saved volume state says, for the
 * commands that only look (scan-disks, match-query): read without taking the
 * lock and without reconciling (the next mount or umount does that).
 *
 * Exports: `VolumeStateScope`, `savedAssignments(scope, log)`.
 */
import type { Logger } from '../adapters/logger.js';
import { loadState, resolveStateDir } from '../adapters/volume-state.js';
import { assignmentOf, emptyState, type VolumesState } from '../core/assignments.js';
import { type DiskAssignment, type DiskReport, diskId } from '../core/disk-state.js';
import { errorMessage } from '../core/errors.js';

/** Where the volume state is: `dir`, else SIMPLECTL_STATE_DIR, else the default. */
export interface VolumeStateScope {
  dir?: string;
}

/**
 * The assignment of each initialised disk (volume names as saved: they may
 * hold a passphrase, so callers mask them before showing them). A state this
 * process may not read (not root) counts as assigning nothing, with a note in
 * the debug log.
 */
export async function savedAssignments(
  scope: VolumeStateScope,
  log: Logger,
): Promise<(disk: DiskReport) => DiskAssignment | null> {
  const dir = resolveStateDir(scope.dir);
  let state: VolumesState;
  try {
    state = await loadState(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EACCES') throw error;
    log.debug(`volume state in ${dir} not readable (${errorMessage(error)}); assignments not shown`);
    state = emptyState();
  }
  return (disk) => (disk.state === 'initialised' ? assignmentOf(state, diskId(disk)) : null);
}
