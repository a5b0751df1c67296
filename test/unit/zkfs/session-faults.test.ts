/**
 * The decisions a mount makes while its ZooKeeper connection is in trouble:
 * how long a server may leave the session handshake unanswered, what a
 * failed persistent-watch request says about the server, failing the
 * attempts running on a client that was replaced, and how long an operation
 * that joins another's request waits.
 */
import { describe, expect, it } from 'vitest';
import {
  Abandonment,
  resending,
  SessionRetry,
  type SessionView,
} from '../../../src/adapters/zkfs/session-retry.js';
import { addWatchVerdict } from '../../../src/adapters/zkfs/watch-gate.js';
import { handshakeTimeoutMs } from '../../../src/adapters/zkfs/zk-wire.js';
import type { ZkClient } from '../../../src/adapters/zookeeper.js';
import { ZkError } from '../../../src/adapters/zookeeper.js';

/** What the library rejects with: an Exception whose name is the code's name. */
const libraryError = (name: string) => Object.assign(new Error(`Exception: ${name}`), { name });

describe('handshake time limit', () => {
  it.each([
    [1000, 1000], // the floor: a loaded server gets a second
    [3000, 1000],
    [4000, 1333], // a third of the session timeout (the ping interval)
    [12_000, 4000],
    [15_000, 5000],
    [30_000, 5000], // the default session: capped, so a retry fits in any reconnect wait
    [3_600_000, 5000],
  ])('session timeout %i ms: %i ms', (session, expected) => {
    expect(handshakeTimeoutMs(session)).toBe(expected);
  });

  it('leaves room for a second attempt within a session timeout of 3 s or more', () => {
    for (const session of [3000, 4000, 10_000, 30_000, 120_000]) {
      expect(2 * handshakeTimeoutMs(session)).toBeLessThan(session);
    }
  });
});

describe('a failed addWatch request', () => {
  it.each([
    ['UNIMPLEMENTED', 0, 'unsupported'], // what a server before 3.6 answers
    ['SESSION_EXPIRED', 0, 'again'], // the session was closed under it: not the server's age
    ['SESSION_EXPIRED', 5, 'again'],
    ['OPERATION_TIMEOUT', 0, 'again'],
    ['CONNECTION_LOSS', 1, 'again'], // one dropped connection may be chance
    ['CONNECTION_LOSS', 2, 'again'],
    ['CONNECTION_LOSS', 3, 'unsupported'], // an old server drops the connection every time
    ['MARSHALLING_ERROR', 0, 'unsupported'],
  ] as const)('%s after %i dropped connections: %s', (name, drops, verdict) => {
    expect(addWatchVerdict(libraryError(name), drops)).toBe(verdict);
  });

  it('a library that cannot send it means no persistent watches, whatever the server', () => {
    expect(addWatchVerdict(new Error('this node-zookeeper-client cannot send addWatch'), 0)).toBe(
      'unsendable',
    );
    expect(addWatchVerdict(undefined, 0)).toBe('unsendable');
  });
});

describe('attempts on a client that is replaced', () => {
  it('holds an attempt only while it runs, whatever it settles with', async () => {
    const running = new Abandonment();
    await expect(running.race(Promise.resolve('reply'))).resolves.toBe('reply');
    await expect(running.race(Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    // Nothing is kept of finished attempts (their replies included): a mount makes millions.
    expect(running.size).toBe(0);
  });

  it('fails the attempts running, and any started later, once the client is abandoned', async () => {
    const running = new Abandonment();
    const never = new Promise<string>(() => {});
    const pending = running.race(never);
    expect(running.size).toBe(1);
    running.abandon(new Error('session expired'));
    await expect(pending).rejects.toThrow('session expired');
    expect(running.size).toBe(0);
    await expect(running.race(Promise.resolve('late'))).rejects.toThrow('session expired');
    // An attempt that fails after the client was abandoned leaves no unhandled rejection.
    await expect(running.race(Promise.reject(new Error('late failure')))).rejects.toThrow('session expired');
  });
});

describe('an operation joining a request that waits for the connection', () => {
  const counters = { requests: 0, retries: 0, confirmedWrites: 0, timeouts: 0 };
  const retry = (connected: boolean, timeoutMs: number) =>
    new SessionRetry(counters, () => ({ connected }) as SessionView, timeoutMs);
  const gaveUp = () => Promise.reject(new ZkError('TIMEOUT', '/app/__symlinks__'));

  it('is answered by that request while the session is connected', () => {
    const shared = Promise.resolve('listing');
    expect(retry(true, 1000).joined(shared, () => Promise.resolve('again'))).toBe(shared);
  });

  it('sends it again when it gave up waiting before this operation had waited its own time', async () => {
    let sent = 0;
    const again = () => {
      sent++;
      return Promise.resolve('read once the server was back');
    };
    await expect(retry(false, 5000).joined(gaveUp(), again)).resolves.toBe('read once the server was back');
    expect(sent).toBe(1);
  });

  it('gives up at its own deadline, not later, when the connection does not come back', async () => {
    const started = Date.now();
    const never = new Promise<string>(() => {});
    const error = await retry(false, 300)
      .joined(gaveUp(), () => never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZkError);
    expect((error as ZkError).zkName).toBe('TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('keeps any other failure of the request, and a timeout that came after its own deadline', async () => {
    let sent = 0;
    const again = () => {
      sent++;
      return Promise.resolve('again');
    };
    const missing = Promise.reject(new ZkError('NO_NODE', '/app/f'));
    await expect(retry(false, 5000).joined(missing, again)).rejects.toThrow('NO_NODE');
    const late = new Promise<string>((_, reject) =>
      setTimeout(() => reject(new ZkError('TIMEOUT', '/app/f')), 50),
    );
    await expect(retry(false, 10).joined(late, again)).rejects.toThrow('TIMEOUT');
    expect(sent).toBe(0);
  });
});

describe('a write sent again after the connection dropped under it', () => {
  const counters = { requests: 0, retries: 0, confirmedWrites: 0, timeouts: 0 };
  const client = {} as ZkClient;
  const connected = (): SessionView => ({
    client,
    connected: true,
    closed: false,
    abandonment: new Abandonment(),
  });

  it('is not sent once its operation gave up while the check before sending it again ran', async () => {
    let sends = 0;
    let checked!: () => void;
    const check = new Promise<void>((resolve) => (checked = resolve));
    const attempt = resending(
      async () => {
        sends++;
        throw new ZkError('CONNECTION_LOSS', '/app/log');
      },
      () => check,
    );
    const error = await new SessionRetry(counters, connected, 200)
      .run('/app/log', attempt)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZkError);
    expect({ name: (error as ZkError).zkName, unanswered: (error as ZkError).unanswered }).toEqual({
      name: 'TIMEOUT',
      unanswered: true,
    });
    // The check answers late (its server came back): the write it guarded stays unsent.
    checked();
    await new Promise((r) => setTimeout(r, 20));
    expect(sends).toBe(1);
  });

  it('is sent once the check passes in time', async () => {
    let sends = 0;
    let checks = 0;
    const attempt = resending(
      async () => {
        sends++;
        if (sends === 1) throw new ZkError('CONNECTION_LOSS', '/app/log');
        return 'landed';
      },
      async () => {
        checks++;
      },
    );
    await expect(new SessionRetry(counters, connected, 5000).run('/app/log', attempt)).resolves.toBe(
      'landed',
    );
    expect({ sends, checks }).toEqual({ sends: 2, checks: 1 });
  });
});
