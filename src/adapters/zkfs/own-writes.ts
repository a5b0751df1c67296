/**
 * Telling the mount's own writes apart from everyone else's. ZooKeeper
 * sends a write's change notice before its reply, so while a write is out
 * every notice about a path it writes is counted: exactly one by the time
 * the reply is in means the notice was ours and nobody else touched the
 * node, and the cache may take what we wrote (write-through); more means
 * someone else wrote too, and their notice already dropped what we knew.
 * A notice about a child counts for its parent, so a node we created with
 * no children is known to have none; but not for a node the write deletes,
 * whose children it deletes too (rm -r): their notices are ours, and
 * counting them made the write look shared, so the kernel was told to drop
 * names it had seen change itself, the parent directory's among them (and a
 * program working in that directory found getcwd() failing).
 *
 * The kernel needs no telling about writes made through it, so stale
 * kernel entries a notice names are held back with the write and only
 * passed on when it turns out not to have been ours alone. So is what the
 * mount does of another client's deletion (the node the kernel holds under
 * the name goes), where a write out deletes the name: a deletion counted
 * for writes that all failed, or beyond the deletions they made, was
 * someone else's; with none out that deletes it, it is, at once. Without
 * that, a rename here that lost the race for its directory to another
 * host's rename over its source, and was made again, moved the other
 * host's file under the kernel's node of the old one, whose cached pages
 * programs then read under the new name (and, before the rename landed,
 * whose size cut reads of the new file short).
 */
import { parentPath } from '../../core/zkfs/paths.js';
import type { ZkOp } from '../../core/zkfs/zk-ops.js';
import type { Stale, StaleEntry } from './kernel-notify.js';

export interface OwnWrite {
  ops: readonly ZkOp[];
  /** The cache's epoch when the write was sent (a watch re-armed since voids what we know). */
  epoch: number;
  /** Notices seen per written path (about it or a direct child) while the write was out. */
  seen: Map<string, number>;
  /** Paths the write deletes: notices about their children are not counted for them. */
  deletes: Set<string>;
  /** Deletion notices seen per written path while the write was out. */
  deletions: Map<string, number>;
  held: StaleEntry[];
  /** Whether a notice held with it named every name at the mount's top ('prune'). */
  pruned: boolean;
  /** Deletions of paths the write deletes, held until it is known whose they were (holdDeletion). */
  heldDeletions: HeldDeletion[];
}

/** Another client's deletion of `path`, maybe: shared by the writes that delete the path. */
interface HeldDeletion {
  path: string;
  act: () => void;
  /** Acted on, or taken by a write as its own. */
  settled: boolean;
}

/** What finish() makes of a write. */
export interface FinishedWrite {
  /** Ops whose notice was ours alone (to write through). */
  alone: ZkOp[];
  /** Kernel entries to drop after all (someone else wrote too). */
  stale: Stale[];
  /**
   * Names the write made of which more deletions were heard than it made.
   * Such a deletion was counted as the write's own, and may have come after
   * it: another host's rename over the name just made, say, whose notices
   * come before this write's reply is acted on.
   */
  doubted: string[];
  /** Held deletions (holdDeletion) that were another client's, to act on now. */
  deletedElsewhere: (() => void)[];
}

export class OwnWrites {
  private readonly open = new Set<OwnWrite>();

  begin(ops: readonly ZkOp[], epoch: number): OwnWrite {
    const write: OwnWrite = {
      ops,
      epoch,
      seen: new Map(writesOf(ops).map((op) => [op.path, 0])),
      deletes: new Set(ops.filter((op) => op.op === 'delete').map((op) => op.path)),
      deletions: new Map(),
      held: [],
      pruned: false,
      heldDeletions: [],
    };
    this.open.add(write);
    return write;
  }

  /**
   * Counts a notice about `path` (`deleted`: a deletion) against the writes
   * in flight. Returns whether one of them wrote `path` (then `stale` is
   * held with it).
   */
  observe(path: string, stale: Stale | undefined, deleted = false): boolean {
    if (this.open.size === 0) return false;
    const parent = parentPath(path);
    let own = false;
    for (const write of this.open) {
      if (deleted && write.seen.has(path)) write.deletions.set(path, (write.deletions.get(path) ?? 0) + 1);
      for (const at of [path, parent]) {
        const n = write.seen.get(at);
        if (n === undefined || (at !== path && write.deletes.has(at))) continue;
        write.seen.set(at, n + 1);
        if (at !== path || own) continue;
        own = true;
        if (Array.isArray(stale)) write.held.push(...stale);
        // Another host's change to the top directory's document, counted here while ours was out.
        else if (stale === 'prune') write.pruned = true;
      }
    }
    return own;
  }

  /**
   * A deletion notice of `path` that observe() counted as a write's own.
   * `act` is what the mount does of another client's deletion (taken now,
   * while memory still holds the node the notice is about). With no write
   * out that deletes the path, it is another client's: `act` runs at once.
   * Otherwise the writes that delete it hold it, and finish() runs it should
   * none of them turn out to have made it (the first to end having made it
   * takes it: replies come in the order ZooKeeper applied the writes).
   */
  holdDeletion(path: string, act: () => void): void {
    const deleters = [...this.open].filter((write) => write.deletes.has(path));
    if (deleters.length === 0) {
      act();
      return;
    }
    const held: HeldDeletion = { path, act, settled: false };
    for (const write of deleters) write.heldDeletions.push(held);
  }

  /** Ends a write, `ok` when ZooKeeper applied it. */
  finish(write: OwnWrite, ok: boolean): FinishedWrite {
    this.open.delete(write);
    const writes = writesOf(write.ops);
    const alone = ok ? writes.filter((op) => write.seen.get(op.path) === 1) : [];
    // Deletions of a path beyond the write's own: none are its own if it failed.
    const othersDeletions = (path: string): number => {
      const own = ok ? write.ops.filter((op) => op.op === 'delete' && op.path === path).length : 0;
      return (write.deletions.get(path) ?? 0) - own;
    };
    const made = new Set(ok ? write.ops.filter((op) => op.op === 'create').map((op) => op.path) : []);
    const doubted = [...made].filter((path) => othersDeletions(path) > 0);
    const deletedElsewhere: (() => void)[] = [];
    const extra = new Map<string, number>();
    for (const held of write.heldDeletions) {
      if (held.settled) continue;
      const left = extra.get(held.path) ?? othersDeletions(held.path);
      // A name the write made again is doubted instead: the deletion may have been of its node.
      if (made.has(held.path) || left <= 0) {
        if (ok) held.settled = true;
        continue;
      }
      extra.set(held.path, left - 1);
      held.settled = true;
      deletedElsewhere.push(held.act);
    }
    const shared = alone.length !== writes.length;
    const stale: Stale[] = shared ? [write.held, ...(write.pruned ? (['prune'] as const) : [])] : [];
    return { alone, stale, doubted, deletedElsewhere };
  }
}

/**
 * The ops that change a node. A check writes nothing, so no notice comes of
 * it: counted, it made every write holding one look shared with another client.
 */
function writesOf(ops: readonly ZkOp[]): ZkOp[] {
  return ops.filter((op) => op.op !== 'check');
}
