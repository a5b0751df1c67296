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
   * Takes `znode` out of the queue when it waits there, so that the caller
   * loads it now, the way the prefetch would have (data included), rather
   * than with a second, stat-only request.
   */
  claim(znode: string): boolean {
    return this.queued.delete(znode);
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
        this.queued.delete(znode);
        if (!this.target.has(znode)) znodes.push(znode);
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
