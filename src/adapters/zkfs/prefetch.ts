/**
 * Reading a listed directory's children ahead of the lookups that follow
 * (`ls -l`, `find`, `cat *` ask for every entry in turn): their requests
 * are pipelined over the one connection, a window of them in flight, so
 * the lookups find answers waiting instead of one round trip each.
 */
export interface PrefetchTarget {
  /** Whether prefetching makes sense now (the cache is trusted). */
  active(): boolean;
  /** Whether `znode` is cached already. */
  has(znode: string): boolean;
  /** Loads `znode` into the cache. */
  load(znode: string): Promise<unknown>;
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
    private readonly window: number,
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
      const znode = this.queue[this.head++] as string;
      if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.queued.delete(znode);
      if (this.target.has(znode)) continue;
      this.running++;
      this.count++;
      this.target
        .load(znode)
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
