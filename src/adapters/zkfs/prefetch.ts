/**
 * Reading a listed directory's children ahead of the lookups that follow
 * (`ls -l`, `find`, `cat *` ask for every entry in turn): they are read in
 * batches, one request per batch, a window of requests pipelined over the
 * one connection, so the lookups find answers waiting instead of one round
 * trip each.
 */
export interface PrefetchTarget {
  /** Whether prefetching makes sense now (the cache is trusted). */
  active(): boolean;
  /** Whether `znode` is cached already. */
  has(znode: string): boolean;
  /** Loads `znodes` (one or more, none cached yet) into the cache. */
  load(znodes: string[]): Promise<unknown>;
}

/** How far into the queue expedite() looks for a node: a listing's entries are near its head. */
const EXPEDITE_SCAN = 1024;

export class Prefetcher {
  /** Children waiting: queue[head…]. */
  private queue: string[] = [];
  private head = 0;
  private readonly queued = new Set<string>();
  private running = 0;
  /** Nodes fetched ahead so far. */
  count = 0;

  constructor(
    private readonly target: PrefetchTarget,
    /** Requests in flight at most. */
    private readonly window: number,
    /** Nodes per request at most (asked before each request). */
    private readonly batch: () => number,
    /** Called when nothing is queued or in flight any more. */
    private readonly onIdle: () => void = () => {},
  ) {}

  add(znodes: Iterable<string>): void {
    for (const znode of znodes) {
      if (this.queued.has(znode) || this.target.has(znode)) continue;
      this.queued.add(znode);
      this.queue.push(znode);
    }
    this.pump();
  }

  /**
   * Starts loading `znode` now, when it waits in the queue, with the nodes
   * queued after it in the same request (a batch, beyond the window), so
   * that the caller finds it loading, data included. A listing asks for all
   * its entries' attributes at once (READDIRPLUS): loaded one request each,
   * the entries the window had not reached yet cost a request apiece, which
   * on a new mount, while the batch size is still a cautious guess, was
   * most of them. False when `znode` is not queued (or lies too far in to
   * look for), and the caller loads it alone.
   */
  expedite(znode: string): boolean {
    if (!this.queued.has(znode) || !this.target.active()) return false;
    const end = Math.min(this.queue.length, this.head + EXPEDITE_SCAN);
    let at = this.head;
    while (at < end && this.queue[at] !== znode) at++;
    if (at === end) return false;
    const size = Math.max(1, this.batch());
    const znodes: string[] = [];
    for (let i = at; i < this.queue.length && znodes.length < size; i++) {
      const next = this.queue[i] as string;
      if (this.queued.delete(next) && !this.target.has(next)) znodes.push(next);
    }
    if (znodes.length > 0) {
      this.count += znodes.length;
      this.target.load(znodes).catch(() => {});
    }
    return true;
  }

  private pump(): void {
    if (!this.target.active()) {
      this.queue = [];
      this.head = 0;
      this.queued.clear();
      return;
    }
    while (this.running < this.window && this.head < this.queue.length) {
      const znodes: string[] = [];
      const batch = Math.max(1, this.batch());
      while (znodes.length < batch && this.head < this.queue.length) {
        const znode = this.queue[this.head++] as string;
        // Not queued any more: expedited already.
        if (this.queued.delete(znode) && !this.target.has(znode)) znodes.push(znode);
      }
      if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      if (znodes.length === 0) continue;
      this.running++;
      this.count += znodes.length;
      this.target
        .load(znodes)
        .catch(() => {})
        .finally(() => {
          this.running--;
          if (this.head >= this.queue.length && this.running === 0) {
            this.queue = [];
            this.head = 0;
            this.onIdle();
          }
          this.pump();
        });
    }
  }
}
