/**
 * The node ids the kernel knows a mount's paths by, with the number of
 * times each was handed out (LOOKUP, CREATE, READDIRPLUS…) so that FORGET
 * can drop it when the kernel has let go. Ids are never reused while
 * mounted, so a late FORGET cannot hit a newer node.
 *
 * zkfs is path-based; this table turns the kernel's ids back into paths
 * and follows renames (a directory's whole subtree moves with it). It also
 * keeps the attributes each node was last handed out with: once its name
 * is gone, the node answers with them whatever memory dropped meanwhile.
 */
import { ROOT_ID } from './protocol.js';

interface NodeRecord<A> {
  /** Current mount path, or undefined once the name was removed or replaced. */
  path: string | undefined;
  lookups: number;
  /** The attributes the kernel was last given for the node. */
  told?: A;
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

export class NodeTable<A = unknown> {
  private readonly byId = new Map<number, NodeRecord<A>>();
  private readonly byPath = new Map<string, number>();
  private nextId = ROOT_ID + 1;

  constructor() {
    this.byId.set(ROOT_ID, { path: '/', lookups: 1 });
    this.byPath.set('/', ROOT_ID);
  }

  /** The path of node `id`; undefined if unknown or its name is gone. */
  path(id: number): string | undefined {
    return this.byId.get(id)?.path;
  }

  /** The id `path` is known by, if the kernel holds it. */
  idOf(path: string): number | undefined {
    return this.byPath.get(path);
  }

  /** Hands `path` to the kernel once more, with attributes `told` if given: its id, created if new. */
  lookup(path: string, told?: A): number {
    const known = this.byPath.get(path);
    if (known !== undefined) {
      const record = this.byId.get(known) as NodeRecord<A>;
      record.lookups++;
      if (told !== undefined) record.told = told;
      return known;
    }
    const id = this.nextId++;
    this.byId.set(id, told === undefined ? { path, lookups: 1 } : { path, lookups: 1, told });
    this.byPath.set(path, id);
    return id;
  }

  /** The kernel was given `attr` as the attributes of node `id`. */
  tell(id: number, attr: A): void {
    const record = this.byId.get(id);
    if (record) record.told = attr;
  }

  /** The kernel changed what it holds of node `id` itself (a write grows its size): what it was told, updated. */
  retell(id: number, update: (told: A) => A): void {
    const record = this.byId.get(id);
    if (record?.told !== undefined) record.told = update(record.told);
  }

  /** The attributes the kernel was last given for node `id`, if any. */
  told(id: number): A | undefined {
    return this.byId.get(id)?.told;
  }

  /** The kernel dropped `count` references to `id`; true when that was the last and the id is gone. */
  forget(id: number, count: number): boolean {
    if (id === ROOT_ID) return false;
    const record = this.byId.get(id);
    if (!record) return false;
    record.lookups -= count;
    if (record.lookups > 0) return false;
    this.byId.delete(id);
    if (record.path !== undefined && this.byPath.get(record.path) === id) this.byPath.delete(record.path);
    return true;
  }

  /** `path` no longer names anything (unlink, rmdir); its node lives on until forgotten. */
  removed(path: string): void {
    const id = this.byPath.get(path);
    if (id === undefined) return;
    this.byPath.delete(path);
    const record = this.byId.get(id);
    if (record) record.path = undefined;
  }

  /** `from` (and everything below it) is now called `to`; whatever `to` was is gone. */
  renamed(from: string, to: string): void {
    if (from === to) return;
    this.removedTree(to);
    const prefix = `${from}/`;
    const moves: [old: string, now: string, id: number][] = [];
    for (const [path, id] of this.byPath) {
      if (path === from || path.startsWith(prefix)) moves.push([path, to + path.slice(from.length), id]);
    }
    for (const [old] of moves) this.byPath.delete(old);
    for (const [, now, id] of moves) {
      this.byPath.set(now, id);
      const record = this.byId.get(id);
      if (record) record.path = now;
    }
  }

  /** Every path the kernel holds a node for. */
  paths(): IterableIterator<string> {
    return this.byPath.keys();
  }

  /** Nodes the kernel holds (root included). */
  get size(): number {
    return this.byId.size;
  }

  private removedTree(path: string): void {
    const prefix = `${path}/`;
    for (const p of [...this.byPath.keys()]) {
      if (p === path || p.startsWith(prefix)) this.removed(p);
    }
  }
}
