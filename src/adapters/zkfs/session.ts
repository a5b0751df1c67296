/**
 * The ZooKeeper connection of a long-lived mount. It has the same calls as
 * ZkClient, but an operation outlives the faults a mount must ride out:
 *
 * - Connection loss (a server died, the ensemble elects a leader): the
 *   library reconnects to another server of the connection string;
 *   operations wait for it, up to `reconnectTimeoutMs`, instead of failing
 *   at once. A request that was in flight when the connection dropped is
 *   sent again.
 * - Session expiry (the mount was cut off longer than the session timeout):
 *   the library's client is dead for good. A new session is opened (and
 *   reopened until it works), listeners are told so they can rebuild watches
 *   and drop what they cached, and waiting operations go on over it.
 * - A server that stops answering without closing the socket: the library
 *   pings but never checks the replies, so a watchdog drops a connection
 *   silent for two thirds of the session timeout, as ZooKeeper's Java client
 *   does; and a connect not taken (a server whose host is gone) or a
 *   handshake left unanswered (a restarting server) is dropped after a few
 *   seconds (zk-wire.ts boundAttempts, set up by ZkClient.connect), so the
 *   library tries the next server instead of waiting its whole share of the
 *   session timeout, or forever.
 *
 * A write larger than the server takes in one request is never sent: the
 * server would drop the connection instead of answering, and every retry
 * would do the same. It fails at once, ENOSPC when what grew too large is a
 * shared document (a directory's metadata, the symlink table), else EFBIG.
 *
 * A write whose outcome is unknown (the connection dropped before its reply)
 * is sent again; if that fails because the first one did take effect
 * (BAD_VERSION, NODE_EXISTS, NO_NODE), the node is read back and the write
 * counts as done when ZooKeeper holds exactly what it wrote. So a write is
 * never reported lost when it was applied, nor applied twice when it was
 * versioned.
 */
import { FsError } from '../../core/zkfs/errors.js';
import { isSharedDoc } from '../../core/zkfs/paths.js';
import {
  type AclEntry,
  opBytes,
  requestBytes,
  ZK_MAX_REQUEST_BYTES,
  type ZkOp,
} from '../../core/zkfs/zk-ops.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import {
  type MultiStats,
  type SetDataOptions,
  type ZkApi,
  ZkClient,
  type ZkConnectOptions,
  ZkError,
  type ZkSessionState,
  type ZkStat,
  type ZkWatcher,
} from '../zookeeper.js';
import {
  Abandonment,
  type Attempt,
  MIN_REQUEST_MS,
  type RetryCounters,
  resending,
  SessionRetry,
  sleep,
} from './session-retry.js';
import { SilenceWatchdog } from './silence-watchdog.js';
import { verifyCreate, verifyMulti, verifyRemove, verifySetData } from './write-verify.js';
import {
  addChildWatch,
  addRecursiveWatch,
  coalesceWrites,
  connectedServer,
  lastZxidSeen,
  negotiatedTimeout,
  observeNotifications,
  type WatchNotice,
} from './zk-wire.js';

export interface SessionOptions extends ZkConnectOptions {
  /** How long an operation waits for a lost connection or an expired session to come back (ms). */
  reconnectTimeoutMs: number;
}

export type SessionState = 'connected' | 'disconnected' | 'expired' | 'closed';

export type SessionChange =
  | { type: 'connected'; renewed: boolean }
  | { type: 'disconnected' }
  | { type: 'expired' };

/** What the session counts, for `zkfsctl status`. */
export interface SessionCounters extends RetryCounters {
  /** Connections re-established within the same session. */
  reconnects: number;
  /** Sessions that expired and were replaced. */
  expiries: number;
}

/** Told about each write before it is first sent and once its outcome is known (watch-cache.ts). */
export interface WriteObserver {
  begin(ops: readonly ZkOp[]): unknown;
  /** `stats`: each op's node stat after the write, where the reply said (ZkClient.multi). */
  end(token: unknown, ok: boolean, stats?: MultiStats): void;
}

/** Throws (ENOSPC or EFBIG) when `ops` need a larger request than ZooKeeper takes. */
function refuseOversized(ops: readonly ZkOp[]): void {
  const bytes = requestBytes(ops);
  if (bytes <= ZK_MAX_REQUEST_BYTES) return;
  const largest = ops.reduce((a, b) => (opBytes(b) > opBytes(a) ? b : a));
  const shared = isSharedDoc(largest.path);
  throw new FsError(
    shared ? 'ENOSPC' : 'EFBIG',
    `${largest.path} would need a ${bytes}-byte request, more than ZooKeeper takes in one (${ZK_MAX_REQUEST_BYTES}); nothing was sent${shared ? ': that document has no room left' : ''}`,
  );
}

export class ZkSession implements ZkApi {
  readonly counters: SessionCounters = {
    requests: 0,
    retries: 0,
    reconnects: 0,
    expiries: 0,
    confirmedWrites: 0,
    timeouts: 0,
  };
  private client: ZkClient;
  private current: SessionState = 'connected';
  private connectedAt = Date.now();
  private readonly listeners = new Set<(change: SessionChange) => void>();
  private readonly noticeListeners = new Set<(notice: WatchNotice) => void>();
  private readonly retry: SessionRetry;
  /** The attempts running on the current client, failed once it has been replaced. */
  private abandonment = new Abandonment();
  private observer: WriteObserver | undefined;
  private readonly watchdog: SilenceWatchdog;
  private renewing = false;
  private readonly log: Logger;

  private constructor(
    client: ZkClient,
    private readonly options: SessionOptions,
  ) {
    this.log = options.logger ?? silentLogger;
    this.retry = new SessionRetry(
      this.counters,
      () => ({
        client: this.client,
        connected: this.current === 'connected',
        closed: this.current === 'closed',
        abandonment: this.abandonment,
      }),
      options.reconnectTimeoutMs,
      this.log,
    );
    this.watchdog = new SilenceWatchdog({
      current: () => ({ client: this.client, connected: this.current === 'connected' }),
      sessionTimeoutMs: () => this.sessionTimeoutMs,
      onSilent: (ms) =>
        this.log.warn(
          `zookeeper: ${this.server ?? 'the server'} has not answered for ${ms} ms; reconnecting`,
        ),
    });
    this.client = client;
    this.adopt(client);
  }

  /** Opens the first session; fails like ZkClient.connect (bounded by connectTimeoutMs). */
  static async open(options: SessionOptions): Promise<ZkSession> {
    const client = await ZkClient.connect(ZkSession.clientOptions(options));
    return new ZkSession(client, options);
  }

  private static clientOptions(options: SessionOptions): ZkConnectOptions {
    // One attempt may wait as long as the whole operation may.
    return { ...options, requestTimeoutMs: Math.max(MIN_REQUEST_MS, options.reconnectTimeoutMs) };
  }

  get state(): SessionState {
    return this.current;
  }

  get sessionId(): string {
    return this.client.sessionId;
  }

  /** `host:port` of the server in use, when connected. */
  get server(): string | undefined {
    return this.current === 'connected' ? connectedServer(this.client.library) : undefined;
  }

  /** The last zxid the connection saw (see zk-wire.ts lastZxidSeen). */
  get lastZxidSeen(): bigint | undefined {
    return lastZxidSeen(this.client.library);
  }

  /** Since when the current connection is up (ms since epoch). */
  get connectedSince(): number | undefined {
    return this.current === 'connected' ? this.connectedAt : undefined;
  }

  /** Session timeout granted by the server (ms). */
  get sessionTimeoutMs(): number {
    return negotiatedTimeout(this.client.library) ?? this.options.sessionTimeoutMs ?? 30_000;
  }

  onChange(listener: (change: SessionChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every watch notification, called synchronously as it arrives (before any later reply is handled). */
  onNotice(listener: (notice: WatchNotice) => void): () => void {
    this.noticeListeners.add(listener);
    return () => this.noticeListeners.delete(listener);
  }

  setWriteObserver(observer: WriteObserver | undefined): void {
    this.observer = observer;
  }

  /**
   * Adds a persistent recursive watch on `path` for the current connection
   * (see zk-wire.ts). Call it again after every 'connected' change.
   */
  addRecursiveWatch(path: string): Promise<void> {
    this.counters.requests++;
    return addRecursiveWatch(this.client.library, path);
  }

  /** Adds a persistent watch on `path`'s own changes and children (see zk-wire.ts), for the current connection. */
  addChildWatch(path: string): Promise<void> {
    this.counters.requests++;
    return addChildWatch(this.client.library, path);
  }

  private emit(change: SessionChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        this.log.error(`session listener failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }

  private adopt(client: ZkClient): void {
    this.client = client;
    this.abandonment = new Abandonment();
    observeNotifications(client.library, (notice) => {
      if (client !== this.client) return;
      this.watchdog.heard();
      for (const listener of this.noticeListeners) listener(notice);
    });
    client.onState((state) => this.onClientState(client, state));
    coalesceWrites(client.library);
    this.watchdog.heard(client);
  }

  /** Where the client looks for a connection now: the one server it has, or the others of an ensemble. */
  private reconnectingTo(): string {
    const servers = this.options.connectString.split(',');
    return servers.length > 1 ? 'trying the other servers' : `reconnecting to ${servers[0]}`;
  }

  private onClientState(client: ZkClient, state: ZkSessionState): void {
    if (client !== this.client || this.current === 'closed') return;
    switch (state) {
      case 'connected': {
        const was = this.current;
        this.current = 'connected';
        this.connectedAt = Date.now();
        this.watchdog.heard(client);
        if (was === 'disconnected') {
          this.counters.reconnects++;
          this.log.info(
            `zookeeper: reconnected to ${this.server ?? 'the ensemble'} (session 0x${this.sessionId})`,
          );
        }
        this.emit({ type: 'connected', renewed: false });
        this.retry.wake();
        return;
      }
      case 'disconnected':
        if (this.current !== 'connected') return;
        this.current = 'disconnected';
        this.log.warn(
          `zookeeper: connection lost; ${this.reconnectingTo()}, operations wait up to ${Math.round(this.options.reconnectTimeoutMs / 1000)} s`,
        );
        this.emit({ type: 'disconnected' });
        return;
      case 'expired':
        this.current = 'expired';
        this.log.warn(`zookeeper: session 0x${this.sessionId} expired; opening a new one`);
        this.emit({ type: 'expired' });
        void this.renew();
        return;
      case 'authFailed':
        this.log.error('zookeeper: the servers refused the credentials on reconnection');
        return;
      default:
        return;
    }
  }

  /** Opens sessions until one works (or the session is closed). */
  private async renew(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      for (let attempt = 0; this.current === 'expired'; attempt++) {
        try {
          const next = await ZkClient.connect(ZkSession.clientOptions(this.options));
          if (this.current !== 'expired') {
            await next.close();
            return;
          }
          const old = this.client;
          const abandonment = this.abandonment;
          this.adopt(next);
          abandonment.abandon(new ZkError('SESSION_EXPIRED'));
          void old.close().catch(() => {});
          this.counters.expiries++;
          this.current = 'connected';
          this.connectedAt = Date.now();
          this.log.warn(`zookeeper: new session 0x${this.sessionId} with ${this.server ?? 'the ensemble'}`);
          this.emit({ type: 'connected', renewed: true });
          this.retry.wake();
          return;
        } catch (error) {
          this.log.warn(
            `zookeeper: could not open a new session: ${error instanceof Error ? error.message : String(error)}`,
          );
          await sleep(Math.min(5000, 500 * (attempt + 1)));
        }
      }
    } finally {
      this.renewing = false;
    }
  }

  /** A write: the observer hears of it around the retried run. */
  private async write<T>(
    ops: readonly ZkOp[],
    attempt: Attempt<T>,
    verify: (client: ZkClient, error: ZkError) => Promise<T | undefined>,
    statsOf?: (result: T) => MultiStats,
  ): Promise<T> {
    refuseOversized(ops);
    const observer = this.observer;
    const token = observer?.begin(ops);
    try {
      const result = await this.retry.run(ops[0]?.path ?? '/', attempt, verify);
      observer?.end(token, true, statsOf?.(result));
      return result;
    } catch (error) {
      observer?.end(token, false);
      throw error;
    }
  }

  /** What an operation joining `shared`, another's request, is answered (SessionRetry.joined). */
  joined<T>(shared: Promise<T>, again: () => Promise<T>): Promise<T> {
    return this.retry.joined(shared, again);
  }

  exists(path: string, watch?: ZkWatcher): Promise<ZkStat | null> {
    return this.retry.run(path, (c) => c.exists(path, watch));
  }

  getData(path: string, watch?: ZkWatcher): Promise<{ data: Buffer; stat: ZkStat }> {
    return this.retry.run(path, (c) => c.getData(path, watch));
  }

  /** Reads many nodes with one request (ZkClient.getDataMany); a node that could not be read is its error. */
  getDataMany(paths: readonly string[]): Promise<({ data: Buffer; stat: ZkStat } | ZkError)[]> {
    return this.retry.run(paths[0] ?? '/', (c) => c.getDataMany(paths));
  }

  getChildren(path: string, watch?: ZkWatcher): Promise<{ children: string[]; stat: ZkStat }> {
    return this.retry.run(path, (c) => c.getChildren(path, watch));
  }

  getAcl(path: string): Promise<{ acl: AclEntry[]; stat: ZkStat }> {
    return this.retry.run(path, (c) => c.getAcl(path));
  }

  create(
    path: string,
    data: Buffer,
    options: { acl?: readonly AclEntry[]; ephemeral?: boolean } = {},
  ): Promise<string> {
    return this.write(
      [{ op: 'create', path, data, acl: options.acl ?? [] }],
      (c) => c.create(path, data, options),
      verifyCreate(path, data, options),
    );
  }

  setData(path: string, data: Buffer, version: number, options: SetDataOptions = {}): Promise<ZkStat> {
    return this.write(
      [{ op: 'setData', path, data, version }],
      resending((c) => c.setData(path, data, version), options.beforeResend),
      verifySetData(path, data, version),
      (stat) => [stat],
    );
  }

  remove(path: string, version: number): Promise<void> {
    return this.write(
      [{ op: 'delete', path, version }],
      (c) => c.remove(path, version).then(() => true as const),
      verifyRemove(),
    ).then(() => undefined);
  }

  /** A multi; one whose reply was lost and that is found applied resolves to the stats read back. */
  multi(ops: readonly ZkOp[], options: SetDataOptions = {}): Promise<MultiStats> {
    return this.write(
      ops,
      resending((c) => c.multi(ops), options.beforeResend),
      verifyMulti(ops),
      (stats) => stats,
    );
  }

  /** Ends the session (idempotent). */
  async close(): Promise<void> {
    if (this.current === 'closed') return;
    this.current = 'closed';
    this.watchdog.stop();
    this.retry.wake();
    this.abandonment.abandon(new ZkError('CONNECTION_LOSS'));
    await this.client.close();
  }
}
