/**
 * One memory budget (core/zkfs/cache-policy.ts) over several cache slots:
 * each stored entry is charged its estimated size, hits mark it used, and
 * whatever the budget hands back is dropped from its slot. The budget keys
 * are the entries themselves, found by identity: a key string per slot
 * (`prefix + path`) was built and hashed on every hit and store.
 */
import type { DirMeta } from '../../core/zkfs/attrs.js';
import { entryOverhead, LruBudget } from '../../core/zkfs/cache-policy.js';
import type { SymlinkMap } from '../../core/zkfs/symlinks.js';
import type { AclEntry } from '../../core/zkfs/zk-ops.js';
import type { CacheEntry, CacheSlot } from './node-cache.js';
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
  readonly budget: LruBudget<CacheEntry<unknown>>;
  private readonly slots: CacheSlot<unknown>[] = [];
  evictions = 0;

  constructor(
    limitBytes: number,
    /**
     * Told of every value dropped (or replaced), in any slot. A value stored
     * where none was changes nothing that was known before.
     */
    private readonly changed: () => void = () => {},
  ) {
    this.budget = new LruBudget(limitBytes);
  }

  /** Puts `slot` under the budget, each value charged `size(key, value)`. */
  attach<T>(slot: CacheSlot<T>, size: (key: string, value: T) => number): void {
    this.slots.push(slot as unknown as CacheSlot<unknown>);
    const budget = this.budget as unknown as LruBudget<CacheEntry<T>>;
    slot.hooks = {
      stored: (entry) => {
        for (const old of budget.add(entry, size(entry.key, entry.value))) {
          this.evictions++;
          old.slot.evict(old);
        }
        // Hits are many more than stores: each then sets the mark kept here, with no lookup.
        entry.useMark = budget.markOf(entry);
      },
      hit: (entry) => {
        if (entry.useMark) entry.useMark.used = true;
      },
      dropped: (entry) => {
        this.changed();
        budget.remove(entry);
      },
    };
  }

  all(): Iterable<CacheSlot<unknown>> {
    return this.slots;
  }
}
