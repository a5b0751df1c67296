/**
 * How an operation of a ZkSession (session.ts) rides out connection loss and
 * session expiry: it waits for the session to be connected, up to a deadline
 * set when the operation started (the reconnect timeout); it is sent again
 * when the connection dropped under it or its client was replaced; and a
 * write sent again whose failure only shows that the first send worked
 * counts as done.
 */
import { isZkError, type ZkClient, ZkError } from '../zookeeper.js';

/** What the retry loop counts (part of SessionCounters). */
export interface RetryCounters {
  /** Requests sent (each attempt counts). */
  requests: number;
  /** Operations sent again after a connection loss or expiry. */
  retries: number;
  /** Writes found applied after their reply was lost. */
  confirmedWrites: number;
  /** Operations that gave up waiting for a connection. */
  timeouts: number;
}

/** The session as the retry loop sees it at one moment. */
export interface SessionView {
  /** The client in use. */
  client: ZkClient;
  connected: boolean;
  closed: boolean;
  /** Rejects once `client` has been replaced by a new session's. */
  abandoned: Promise<never>;
}

const RETRYABLE = ['CONNECTION_LOSS', 'SESSION_EXPIRED', 'OPERATION_TIMEOUT', 'TIMEOUT'] as const;

/** Whether a failure says nothing about the operation itself, only about the connection. */
export function isRetryable(error: unknown): boolean {
  return isZkError(error, ...RETRYABLE);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SessionRetry {
  private waiters: (() => void)[] = [];

  constructor(
    private readonly counters: RetryCounters,
    private readonly session: () => SessionView,
    /** How long an operation may wait for a connection in all (ms). */
    private readonly timeoutMs: number,
  ) {}

  /** Lets every waiting operation go on: the session is connected again, or closed. */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The client once connected; rejects with TIMEOUT at `deadline`. */
  private ready(deadline: number, path: string): Promise<ZkClient> {
    const now = this.session();
    if (now.closed) return Promise.reject(new ZkError('CONNECTION_LOSS', path));
    if (now.connected) return Promise.resolve(now.client);
    return new Promise<ZkClient>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.waiters = this.waiters.filter((w) => w !== wake);
          this.counters.timeouts++;
          reject(new ZkError('TIMEOUT', path));
        },
        Math.max(0, deadline - Date.now()),
      );
      const wake = () => {
        clearTimeout(timer);
        const then = this.session();
        if (then.connected) resolve(then.client);
        else reject(new ZkError('CONNECTION_LOSS', path));
      };
      this.waiters.push(wake);
    });
  }

  /**
   * Runs `attempt` until it succeeds, fails for a reason other than the
   * connection, or the deadline passes. `verify` decides, after a write was
   * sent again, whether its failure only shows that the earlier send worked.
   */
  async run<T>(
    path: string,
    attempt: (client: ZkClient) => Promise<T>,
    verify?: (client: ZkClient, error: ZkError) => Promise<T | undefined>,
  ): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    let resent = false;
    for (;;) {
      const client = await this.ready(deadline, path);
      this.counters.requests++;
      try {
        return await Promise.race([attempt(client), this.session().abandoned]);
      } catch (error) {
        const now = this.session();
        if (now.closed) throw error;
        if (isRetryable(error) || client !== now.client) {
          if (Date.now() >= deadline) {
            this.counters.timeouts++;
            throw new ZkError('TIMEOUT', path, undefined, error);
          }
          this.counters.retries++;
          resent = true;
          // The library reports the state change right after failing the request.
          if (now.connected && client === now.client) await sleep(20);
          continue;
        }
        if (resent && verify && error instanceof ZkError) {
          const done = await verify(now.client, error).catch(() => undefined);
          if (done !== undefined) {
            this.counters.confirmedWrites++;
            return done;
          }
        }
        throw error;
      }
    }
  }
}
