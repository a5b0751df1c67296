/**
 * How an operation of a ZkSession (session.ts) rides out connection loss and
 * session expiry: it waits for the session to be connected, up to a deadline
 * set when the operation started (the reconnect timeout); it is sent again
 * when the connection dropped under it or its client was replaced; and a
 * write sent again whose failure only shows that the first send worked
 * counts as done.
 */
import { type Logger, silentLogger } from '../logger.js';
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

/**
 * The attempts running on one client, failed at once when that client is
 * replaced (its session expired) or closed. An attempt is held only while
 * it runs. Racing each attempt against one promise left pending for the
 * client's life held a reaction per request, and with it the request's
 * result, until the session ended: every reply the mount ever read stayed
 * in memory, whatever its cache size.
 */
export class Abandonment {
  private readonly running = new Set<(error: Error) => void>();
  private reason: Error | undefined;

  /** What `work` settles with, unless the client is abandoned first. */
  race<T>(work: Promise<T>): Promise<T> {
    if (this.reason) {
      work.catch(() => {});
      return Promise.reject(this.reason);
    }
    return new Promise<T>((resolve, reject) => {
      this.running.add(reject);
      work.then(
        (value) => {
          this.running.delete(reject);
          resolve(value);
        },
        (error: unknown) => {
          this.running.delete(reject);
          reject(error);
        },
      );
    });
  }

  /** Fails every attempt running, and every later one, with `error`. */
  abandon(error: Error): void {
    if (this.reason) return;
    this.reason = error;
    for (const reject of this.running) reject(error);
    this.running.clear();
  }

  /** Attempts running now. */
  get size(): number {
    return this.running.size;
  }
}

/** The session as the retry loop sees it at one moment. */
export interface SessionView {
  /** The client in use. */
  client: ZkClient;
  connected: boolean;
  closed: boolean;
  /** The attempts running on `client`, failed once it has been replaced. */
  abandonment: Abandonment;
}

const RETRYABLE = ['CONNECTION_LOSS', 'SESSION_EXPIRED', 'OPERATION_TIMEOUT', 'TIMEOUT'] as const;

/** Whether a failure says nothing about the operation itself, only about the connection. */
export function isRetryable(error: unknown): boolean {
  return isZkError(error, ...RETRYABLE);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The least time a request sent now is given for its answer (ms), whatever is left of its operation's. */
export const MIN_REQUEST_MS = 1000;

/** When a request sent now gives up waiting for its answer, its operation ending at `deadline`. */
function cutoff(deadline: number): number {
  return Math.max(deadline, Date.now() + MIN_REQUEST_MS);
}

/** The failure of an operation at `path` that ran out of time after `cause`, a write maybe landed. */
function unansweredTimeout(path: string, cause: unknown): ZkError {
  const timeout = new ZkError('TIMEOUT', path, undefined, cause);
  timeout.unanswered = true;
  return timeout;
}

/**
 * One attempt of an operation (SessionRetry.run) on `client`. `live` says
 * whether the operation still waits for this attempt: false once it ended,
 * or went on to another attempt.
 */
export type Attempt<T> = (client: ZkClient, live: () => boolean) => Promise<T>;

/**
 * `send` as an attempt that, sent again, runs `beforeResend` first, and then
 * sends nothing unless its operation still waits for it. A check that ran
 * past the operation's deadline (the connection dropped under it) would
 * otherwise send the write after its close failed with ETIMEDOUT: landing
 * after the check of whether it had, the next write-back sent its bytes again.
 */
export function resending<T>(
  send: (client: ZkClient) => Promise<T>,
  beforeResend?: () => Promise<void>,
): Attempt<T> {
  let sent = false;
  return async (client, live) => {
    if (sent && beforeResend) {
      await beforeResend();
      if (!live()) throw new ZkError('CONNECTION_LOSS');
    }
    sent = true;
    return send(client);
  };
}

export class SessionRetry {
  private waiters: (() => void)[] = [];

  constructor(
    private readonly counters: RetryCounters,
    private readonly session: () => SessionView,
    /** How long an operation may wait for a connection in all (ms). */
    private readonly timeoutMs: number,
    private readonly log: Logger = silentLogger,
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
   * What an operation that joins `shared`, a request another operation
   * sent, is answered: while the session is not connected that request may
   * have waited for most of its time already, and an operation that gave
   * up with it would have waited only what was left. Once it gives up
   * waiting, this operation sends it again (`again`), and waits up to its
   * own deadline, as if it had sent the request itself. Connected, the
   * shared request is the answer as it is (a request sent while connected
   * waits as long as one sent now would).
   */
  joined<T>(shared: Promise<T>, again: () => Promise<T>): Promise<T> {
    if (this.session().connected) return shared;
    const deadline = Date.now() + this.timeoutMs;
    return shared.catch((error: unknown) => {
      if (!isZkError(error, 'TIMEOUT') || Date.now() >= deadline) throw error;
      return this.by(deadline, again(), error.path);
    });
  }

  /**
   * What `work` settles with, or TIMEOUT at `deadline` if it has not settled
   * by then (counted among the timeouts unless `count` is false: the caller
   * counts it then).
   */
  private by<T>(deadline: number, work: Promise<T>, path: string | undefined, count = true): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          if (count) this.counters.timeouts++;
          reject(new ZkError('TIMEOUT', path));
        },
        Math.max(0, deadline - Date.now()),
      );
      work.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  /**
   * What a request sent on the session's client now settles with, failed
   * when that client is replaced, or with TIMEOUT at its cutoff: bounded by
   * the operation's deadline, since sent just before it, a request the
   * server takes and leaves unanswered would otherwise have a whole request
   * timeout of its own; and a second at least, as with no deadline at all
   * (--reconnect-timeout 0). The caller counts the timeout.
   */
  private sent<T>(deadline: number, request: Promise<T>, path: string): Promise<T> {
    return this.by(cutoff(deadline), this.session().abandonment.race(request), path, false);
  }

  /**
   * What `verify` finds of a write sent again that failed with `error`.
   * Its reads lost to the connection (or the session) say nothing of the
   * write: they are made again once connected, up to `deadline`, then fail
   * as unanswered (the write may have landed). Any other failure of theirs
   * is taken for a write that did not land, as before.
   */
  private async verified<T>(
    verify: (client: ZkClient, error: ZkError) => Promise<T | undefined>,
    error: ZkError,
    deadline: number,
    path: string,
  ): Promise<T | undefined> {
    for (;;) {
      const client = await this.ready(deadline, path).catch((failure: unknown) => {
        if (isZkError(failure, 'TIMEOUT')) failure.unanswered = true;
        throw failure;
      });
      try {
        return await this.sent(deadline, verify(client, error), path);
      } catch (failure) {
        const now = this.session();
        if (now.closed || !(isRetryable(failure) || client !== now.client)) return undefined;
        if (Date.now() >= deadline) {
          this.counters.timeouts++;
          throw unansweredTimeout(path, failure);
        }
        this.log.debug(`${path}: checking whether it landed, again (the connection changed)`);
        if (now.connected && client === now.client) await sleep(20);
      }
    }
  }

  /**
   * Runs `attempt` until it succeeds, fails for a reason other than the
   * connection, or the deadline passes. `verify` decides, after a write was
   * sent again, whether its failure only shows that the earlier send worked.
   */
  async run<T>(
    path: string,
    attempt: Attempt<T>,
    verify?: (client: ZkClient, error: ZkError) => Promise<T | undefined>,
  ): Promise<T> {
    // The attempt the operation waits for; none once it has ended.
    const turn = { at: 0 };
    try {
      return await this.attempts(path, attempt, verify, turn);
    } finally {
      turn.at = -1;
    }
  }

  private async attempts<T>(
    path: string,
    attempt: Attempt<T>,
    verify: ((client: ZkClient, error: ZkError) => Promise<T | undefined>) | undefined,
    turn: { at: number },
  ): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    let resent = false;
    for (;;) {
      const client = await this.ready(deadline, path).catch((error: unknown) => {
        if (resent && isZkError(error, 'TIMEOUT')) error.unanswered = true;
        throw error;
      });
      this.counters.requests++;
      const mine = ++turn.at;
      try {
        return await this.sent(
          deadline,
          attempt(client, () => turn.at === mine),
          path,
        );
      } catch (error) {
        const now = this.session();
        if (now.closed) throw error;
        if (isRetryable(error) || client !== now.client) {
          if (Date.now() >= deadline) {
            this.counters.timeouts++;
            throw unansweredTimeout(path, error);
          }
          this.counters.retries++;
          resent = true;
          // What was sent twice, for a reader of the log after a server failed.
          this.log.debug(
            `${path}: sent again (${error instanceof ZkError ? error.zkName : 'the connection changed'})`,
          );
          // The library reports the state change right after failing the request.
          if (now.connected && client === now.client) await sleep(20);
          continue;
        }
        if (resent && verify && error instanceof ZkError) {
          const done = await this.verified(verify, error, deadline, path);
          if (done !== undefined) {
            this.counters.confirmedWrites++;
            this.log.debug(
              `${path}: ${error.zkName} when sent again; ZooKeeper shows the first send applied`,
            );
            return done;
          }
        }
        if (resent && error instanceof ZkError) {
          error.resent = true;
          this.log.debug(`${path}: ${error.zkName} when sent again`);
        }
        throw error;
      }
    }
  }
}
