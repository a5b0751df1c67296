/**
 * Whether the mount's cache may serve what it holds: the life of the one
 * persistent recursive watch on the mount root that keeps it exact.
 *
 * While the watch is not in place (connecting, reconnecting, a new session)
 * nothing is served from memory, and everything read before is dropped once
 * it is back, since changes in between were not reported. A server without
 * persistent watches (ZooKeeper before 3.6) gets time-limited caching
 * instead. That verdict is a guess where the connection dropped, and even
 * an old server may be upgraded under a running mount: the watch is tried
 * again later, less and less often while the server keeps refusing it.
 * Each arming has an epoch, so that the outcome of an addWatch sent before
 * a reconnection is ignored after it.
 */
import type { Logger } from '../logger.js';
import type { SessionChange, ZkSession } from './session.js';

/** watch: exact; waiting: watch being (re)established, nothing served; ttl: no persistent watches. */
export type CacheMode = 'watch' | 'waiting' | 'ttl';

/**
 * What a failed addWatch request says about the server. One older than 3.6
 * answers UNIMPLEMENTED, or drops the connection over the unknown request
 * (the third time in a row counts as that). A session that expired or timed
 * out meanwhile says nothing about the server: set the watch again. A
 * library without the internals zk-wire.ts relies on fails with a plain
 * Error, not one of its exceptions (named by their codes): it never will
 * send the request, whatever the server.
 */
export function addWatchVerdict(
  error: unknown,
  connectionDrops: number,
): 'unsupported' | 'again' | 'unsendable' {
  const name = errorName(error);
  if (typeof name !== 'string' || name === 'Error') return 'unsendable';
  if (name === 'CONNECTION_LOSS') return connectionDrops >= 3 ? 'unsupported' : 'again';
  return name === 'SESSION_EXPIRED' || name === 'OPERATION_TIMEOUT' ? 'again' : 'unsupported';
}

/** The library's exception name (addWatch is sent past ZkClient, so its errors are the library's). */
function errorName(error: unknown): unknown {
  return (error as { name?: unknown } | null)?.name;
}

/**
 * The wait before setting again a watch the server would not take,
 * doubled each time it still will not, up to RETRY_MAX_MS: a try costs
 * the connection where the server drops it at the request.
 */
const RETRY_FIRST_MS = 10_000;
const RETRY_MAX_MS = 10 * 60_000;

/** What the cache does when the gate changes. */
export interface GateHooks {
  /** The watch is gone, and with it news of changes; memory still holds what it held. */
  lost(): void;
  /** Drop everything held: it may have missed a change. */
  forgetAll(): void;
  /** The watch is in place: what the kernel holds may have missed a change too. */
  live(): void;
  /** No persistent watches: values read alone may be kept (for the time limit), until live(). */
  timeLimited(): void;
}

export class WatchGate {
  private current: CacheMode = 'waiting';
  private armings = 0;
  /** addWatch requests that lost their connection since the watch was last in place. */
  private connectionDrops = 0;
  private hooks: GateHooks | undefined;
  /** The wait before the next try at the watch, while in 'ttl'. */
  private retryMs = RETRY_FIRST_MS;
  /** The next try's timer, while one is set. */
  private retryTimer: NodeJS.Timeout | undefined;
  /** That wait is over, and the try waits for a connection. */
  private retryDue = false;
  /** A try at the watch out of 'ttl' is under way: should it fail, nothing was lost meanwhile. */
  private retrying = false;
  /** Whether falling back has been logged (once a fallback, not once a try). */
  private toldTtl = false;

  constructor(
    private readonly session: ZkSession,
    private readonly root: string,
    /** Freshness without persistent watches (ms). */
    readonly ttlMs: number,
    private readonly logger: Logger,
  ) {}

  /** Connects the gate to its cache, and to the session's changes. */
  attach(hooks: GateHooks): void {
    this.hooks = hooks;
    this.session.onChange((change) => this.onSessionChange(change));
  }

  get mode(): CacheMode {
    return this.current;
  }

  /** Changes with every arming and every loss of the connection. */
  get epoch(): number {
    return this.armings;
  }

  /** Whether an entry read at `readAt` may be served now; the clock is read only where time decides it. */
  serves(readAt: number, now: () => number): boolean {
    return this.current === 'watch' || (this.current === 'ttl' && now() - readAt < this.ttlMs);
  }

  /** Puts the watch in place (again), unless the server was found not to take it (until it is tried again). */
  arm(): Promise<void> {
    return this.current === 'ttl' ? Promise.resolve() : this.setWatch();
  }

  private async setWatch(): Promise<void> {
    const epoch = ++this.armings;
    this.unwatched();
    try {
      await this.session.addRecursiveWatch(this.root);
    } catch (error) {
      // A dropped connection moves the epoch on before its request fails: counted all the same.
      if (errorName(error) === 'CONNECTION_LOSS') this.connectionDrops++;
      const verdict = addWatchVerdict(error, this.connectionDrops);
      if (verdict === 'again' && epoch !== this.armings) return;
      if (verdict === 'again') {
        // A reconnection or a new session sets the watch again; should neither come, so does this.
        setTimeout(() => {
          if (epoch === this.armings && this.session.state === 'connected') void this.arm();
        }, 1000).unref();
        return;
      }
      this.timeLimited(verdict === 'unsupported');
      return;
    }
    if (epoch !== this.armings) return;
    this.connectionDrops = 0;
    // Whatever was read before the watch was in place may have missed a change.
    this.hooks?.forgetAll();
    this.retrying = false;
    clearTimeout(this.retryTimer);
    if (this.toldTtl) {
      this.toldTtl = false;
      this.retryMs = RETRY_FIRST_MS;
      this.logger.info('zookeeper: the persistent watch is in place again: changes by others show at once');
    }
    this.current = 'watch';
    this.hooks?.live();
  }

  /** The server does not take the watch: values are kept for a time instead, until a later try at it succeeds. */
  private timeLimited(tryAgain: boolean): void {
    // Two armings may both find that out (one sent before a reconnection, one after).
    if (this.current === 'ttl') return;
    this.current = 'ttl';
    // A failed try leaves what the kernel and memory hold as time-limited caching left them.
    if (!this.retrying) this.hooks?.timeLimited();
    this.retrying = false;
    if (!tryAgain) {
      this.logger.warn(
        `zookeeper: this client library cannot set persistent watches: changes by others show within ${this.ttlMs} ms`,
      );
      return;
    }
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.retry(), wait);
    this.retryTimer.unref();
    const tried = `the watch is tried again in ${Math.round(wait / 1000)} s`;
    if (this.toldTtl) {
      this.logger.debug(`zookeeper: still no persistent watch; ${tried}`);
      return;
    }
    this.toldTtl = true;
    this.logger.warn(
      `zookeeper: no persistent watches (server older than 3.6?): changes by others show within ${this.ttlMs} ms; ${tried}`,
    );
  }

  /** Tries the watch again, once connected. */
  private retry(): void {
    if (this.current !== 'ttl') return;
    this.retryDue = this.session.state !== 'connected';
    if (this.retryDue) return;
    this.retrying = true;
    void this.setWatch();
  }

  private onSessionChange(change: SessionChange): void {
    if (this.current === 'ttl') {
      if (change.type === 'connected' && change.renewed) this.hooks?.forgetAll();
      if (change.type === 'connected' && this.retryDue) this.retry();
      return;
    }
    if (change.type === 'connected') {
      void this.arm();
      return;
    }
    this.armings++;
    this.unwatched();
  }

  /** No watch is in place from now on, until arm() puts one: changes may go unreported, so memory goes. */
  private unwatched(): void {
    if (this.current === 'watch') this.hooks?.lost();
    this.current = 'waiting';
    this.hooks?.forgetAll();
  }
}
