/**
 * Names deleted by another client while the mount's watch was not in place
 * (the connection lost, the session expired): the watch never reports
 * them, and memory is emptied in between, so orphans.ts would have nothing
 * to answer a program holding such a file open with, and the kernel's node
 * would go on standing for the name, for whatever is made under it next.
 *
 * So when the watch goes, what memory holds of every name the kernel holds
 * is taken (as a deletion seen through the watch takes it); when it is
 * back, each directory holding such a name is listed afresh, and a name no
 * longer in it was deleted in between. Only the first gap's picture counts
 * until the watch is back: memory is empty after it.
 *
 * A name deleted and made again within the gap is taken for the same file.
 */
import type { NodeTable } from '../../core/fuse/node-table.js';
import { isFsError } from '../../core/zkfs/errors.js';
import { baseName, parentPath } from '../../core/zkfs/paths.js';
import type { Logger } from '../logger.js';
import type { ZkVfs } from '../zkfs/vfs.js';
import type { Leaving, Orphans } from './orphans.js';

export class GapDeletions {
  private taken: Leaving[] | undefined;

  constructor(
    private readonly nodes: NodeTable,
    private readonly orphans: Orphans,
    private readonly vfs: Pick<ZkVfs, 'readdir'>,
    /** A name found deleted: as for a deletion the watch reports (fuse.ts). */
    private readonly gone: (leaving: Leaving) => void,
    private readonly log: Logger,
  ) {}

  /** The watch is gone; memory still holds what it held. */
  watchLost(): void {
    if (this.taken) return;
    const taken: Leaving[] = [];
    for (const path of this.nodes.paths()) {
      const leaving = this.orphans.leaving(path);
      if (leaving) taken.push(leaving);
    }
    this.taken = taken;
  }

  /** The watch is back: finds the names deleted meanwhile. */
  async watchBack(): Promise<void> {
    const taken = this.taken;
    this.taken = undefined;
    if (!taken || taken.length === 0) return;
    const byDir = new Map<string, Leaving[]>();
    for (const leaving of taken) {
      const dir = parentPath(leaving.path);
      const list = byDir.get(dir);
      if (list) list.push(leaving);
      else byDir.set(dir, [leaving]);
    }
    let found = 0;
    await Promise.all(
      [...byDir].map(async ([dir, leavings]) => {
        const names = await this.namesIn(dir);
        if (!names) return;
        for (const leaving of leavings) {
          if (names.has(baseName(leaving.path))) continue;
          found++;
          this.gone(leaving);
        }
      }),
    );
    if (found > 0)
      this.log.info(`zkfs: ${found} names the kernel held were deleted while the watch was down`);
  }

  /** The names in `dir` now: none if it is gone; undefined if that cannot be told. */
  private async namesIn(dir: string): Promise<Set<string> | undefined> {
    try {
      // Not a program's listing: reading its files ahead would reload all the kernel held at once.
      return new Set(await this.vfs.readdir(dir, false));
    } catch (error) {
      if (isFsError(error) && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) return new Set();
      this.log.debug(
        `zkfs: cannot tell what was deleted from ${dir} while the watch was down: ${String(error)}`,
      );
      return undefined;
    }
  }
}
