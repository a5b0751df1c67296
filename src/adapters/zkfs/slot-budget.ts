/**
 * One memory budget (core/zkfs/cache-policy.ts) over several cache slots:
 * each stored value is charged its estimated size under a key prefixed by
 * its slot, hits mark it used, and whatever the budget hands back is
 * dropped from its slot.
 */
import type { DirMeta } from '../../core/zkfs/attrs.js';
import { entryOverhead, LruBudget } from '../../core/zkfs/cache-policy.js';
import type { SymlinkMap } from '../../core/zkfs/symlinks.js';
import type { AclEntry } from '../../core/zkfs/zk-ops.js';
import type { CacheSlot } from './node-cache.js';
import type { DocSnapshot, NodeData } from './tree.js';

/** Rough in-memory cost of a stat object. */
const STAT_BYTES = 160;

/** Estimated bytes of each kind of cached value (key included). */
export const sizeOf = {
  stat: (key: string) => entryOverhead(key) + STAT_BYTES,
  children: (key: string, names: readonly string[]) =>
    names.reduce((n, name) => n + 48 + name.length * 2, entryOverhead(key) + 64),
  data: (key: string, node: NodeData) => entryOverhead(key) + STAT_BYTES + node.data.length,
  meta: (key: string, doc: DocSnapshot<DirMeta>) => entryOverhead(key) + 200 + doc.value.entries.size * 160,
  acl: (key: string, acl: readonly AclEntry[]) => entryOverhead(key) + 120 * acl.length,
  links: (key: string, doc: DocSnapshot<SymlinkMap>) => entryOverhead(key) + 200 + doc.value.size * 200,
};

export class SlotBudget {
  readonly budget: LruBudget;
  private readonly slots = new Map<string, CacheSlot<unknown>>();
  evictions = 0;

  constructor(limitBytes: number) {
    this.budget = new LruBudget(limitBytes);
  }

  /** Puts `slot` under the budget; `prefix` (one character) tells its keys apart. */
  attach<T>(prefix: string, slot: CacheSlot<T>, size: (key: string, value: T) => number): void {
    this.slots.set(prefix, slot as unknown as CacheSlot<unknown>);
    slot.hooks = {
      stored: (key, value) => {
        for (const id of this.budget.add(prefix + key, size(key, value))) {
          this.evictions++;
          this.slots.get(id[0] as string)?.invalidate(id.slice(1));
        }
      },
      hit: (key) => this.budget.touch(prefix + key),
      dropped: (key) => this.budget.remove(prefix + key),
    };
  }

  all(): Iterable<CacheSlot<unknown>> {
    return this.slots.values();
  }
}
