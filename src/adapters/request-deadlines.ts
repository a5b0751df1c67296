/**
 * Time limits for requests that all get the same limit, kept by one
 * periodic check instead of a timer per request: a timer set and cleared
 * for each of the two ZooKeeper writes per file that `cp -r` makes through
 * a mount was a measurable part of the daemon's time. Requests come due in
 * the order they were added (same limit), so a check stops at the first
 * one not yet due. The check runs only while requests are waiting, every
 * quarter of the limit (at most a second), so one is given up a little
 * after its limit, never before.
 */
export class RequestDeadlines {
  /** Each waiting request's give-up function and when it is due. */
  private readonly waiting = new Map<() => void, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly everyMs: number;

  constructor(
    private readonly limitMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.everyMs = Math.max(1, Math.min(1000, limitMs / 4));
  }

  /** Calls `giveUp` once the limit passes, unless `done(giveUp)` comes first. */
  add(giveUp: () => void): void {
    this.waiting.set(giveUp, this.now() + this.limitMs);
    this.timer ??= setInterval(() => this.check(), this.everyMs);
  }

  done(giveUp: () => void): void {
    this.waiting.delete(giveUp);
    if (this.waiting.size === 0) this.stop();
  }

  /** Gives up every request that is due. */
  check(): void {
    const now = this.now();
    for (const [giveUp, due] of this.waiting) {
      if (due > now) break;
      this.waiting.delete(giveUp);
      giveUp();
    }
    if (this.waiting.size === 0) this.stop();
  }

  get size(): number {
    return this.waiting.size;
  }

  private stop(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
