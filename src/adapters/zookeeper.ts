/**
 * A promise wrapper over node-zookeeper-client: bounded connect and request
 * times, digest auth, typed stats (64-bit fields as bigint, times as ms),
 * watches, session events and `multi`.
 *
 * Two library quirks are worked around here:
 * - Transaction.check/setData/remove turn version 0 into -1 (`version || -1`),
 *   silently dropping the version check on every fresh node; multi() pushes
 *   its ops onto the transaction directly instead.
 * - A request larger than the server's jute.maxbuffer makes the server drop
 *   the connection rather than answer; callers measure with core/zkfs/zk-ops.
 */
import zookeeper from 'node-zookeeper-client';
import { OperationError } from '../core/errors.js';
import type { ZkErrorName } from '../core/zkfs/errors.js';
import type { AclEntry, ZkOp } from '../core/zkfs/zk-ops.js';
import {
  decodeMultiReply,
  type MultiReply,
  multiBodyBytes,
  OP_MULTI,
  OP_SET_DATA,
  REPLY_BODY,
  setDataBodyBytes,
  writeMultiBody,
  writeSetDataBody,
} from '../core/zkfs/zk-write-codec.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';
import { RequestDeadlines } from './request-deadlines.js';
import { tolerateNewerErrorCodes } from './zk-error-codes.js';
import {
  boundAttempts,
  canSendRaw,
  frameReplies,
  handshakeTimeoutMs,
  type NodeRead,
  negotiatedTimeout,
  readMany,
  readStat,
  sendRaw,
} from './zkfs/zk-wire.js';

tolerateNewerErrorCodes();

export interface ZkStat {
  czxid: bigint;
  mzxid: bigint;
  pzxid: bigint;
  ctimeMs: number;
  mtimeMs: number;
  version: number;
  cversion: number;
  aversion: number;
  ephemeralOwner: bigint;
  dataLength: number;
  numChildren: number;
}

export type ZkEventType = 'created' | 'deleted' | 'dataChanged' | 'childrenChanged';
export interface ZkEvent {
  type: ZkEventType;
  path: string;
}
export type ZkWatcher = (event: ZkEvent) => void;

export type ZkSessionState = 'connected' | 'readOnly' | 'disconnected' | 'expired' | 'authFailed';

/** A ZooKeeper request failed; `zkName` is the KeeperException code name. */
export class ZkError extends Error {
  override readonly name = 'ZkError';
  readonly zkName: ZkErrorName;
  readonly path: string | undefined;
  /** For a failed multi: the index of the op that failed. */
  readonly opIndex: number | undefined;
  /**
   * The request was sent again after a connection loss (session-retry.ts):
   * the first send may have taken effect, so this failure may be its echo.
   */
  resent = false;
  /**
   * A TIMEOUT of a request that was sent and never answered before the wait
   * for ZooKeeper ran out (session-retry.ts): it may have taken effect.
   */
  unanswered = false;

  constructor(zkName: ZkErrorName, path?: string, opIndex?: number, cause?: unknown) {
    super(`ZooKeeper ${zkName}${path ? ` at ${path}` : ''}`, cause === undefined ? undefined : { cause });
    this.zkName = zkName;
    this.path = path;
    this.opIndex = opIndex;
  }
}

export function isZkError(error: unknown, ...names: ZkErrorName[]): error is ZkError {
  return error instanceof ZkError && (names.length === 0 || names.includes(error.zkName));
}

export interface ZkConnectOptions {
  /** `host:port,host:port`. */
  connectString: string;
  /** Digest credentials; sent with addAuthInfo, never logged. */
  auth?: { user: string; password: string } | undefined;
  sessionTimeoutMs?: number;
  /** How long connect() waits for a session before giving up. */
  connectTimeoutMs?: number;
  /** How long one request may take (including waiting for a reconnect). */
  requestTimeoutMs?: number;
  logger?: Logger;
}

const KNOWN_NAMES = new Set<string>([
  'NO_NODE',
  'NODE_EXISTS',
  'NOT_EMPTY',
  'NO_AUTH',
  'INVALID_ACL',
  'AUTH_FAILED',
  'BAD_VERSION',
  'BAD_ARGUMENTS',
  'NO_CHILDREN_FOR_EPHEMERALS',
  'CONNECTION_LOSS',
  'OPERATION_TIMEOUT',
  'SESSION_EXPIRED',
  'MARSHALLING_ERROR',
  'UNIMPLEMENTED',
  'SYSTEM_ERROR',
  'RUNTIME_INCONSISTENCY',
  'DATA_INCONSISTENCY',
  'API_ERROR',
]);

/** The code a multi gives the ops after the one that failed: they were not tried. */
const RUNTIME_INCONSISTENCY = -2;

/** Exception code numbers the library reports in multi results. */
const CODE_NAMES = new Map<number, ZkErrorName>(
  Object.entries(zookeeper.Exception as unknown as Record<string, unknown>)
    .filter((e): e is [string, number] => typeof e[1] === 'number' && KNOWN_NAMES.has(e[0]))
    .map(([name, code]) => [code, name as ZkErrorName]),
);

function toZkError(error: unknown, path?: string): ZkError {
  if (error instanceof ZkError) return error;
  const name = (error as { name?: unknown } | null)?.name;
  const zkName: ZkErrorName =
    typeof name === 'string' && KNOWN_NAMES.has(name) ? (name as ZkErrorName) : 'UNKNOWN';
  return new ZkError(zkName, path, undefined, error);
}

function long(buffer: Buffer | undefined): bigint {
  if (!buffer || buffer.length < 8) return 0n;
  return buffer.readBigInt64BE(0);
}

export function toZkStat(stat: zookeeper.Stat): ZkStat {
  return {
    czxid: long(stat.czxid),
    mzxid: long(stat.mzxid),
    pzxid: long(stat.pzxid),
    ctimeMs: Number(long(stat.ctime)),
    mtimeMs: Number(long(stat.mtime)),
    version: stat.version,
    cversion: stat.cversion,
    aversion: stat.aversion,
    ephemeralOwner: long(stat.ephemeralOwner),
    dataLength: stat.dataLength,
    numChildren: stat.numChildren,
  };
}

function fromAcl(acl: zookeeper.ACL): AclEntry {
  // The library's ACL objects carry `permission`; its type definitions say `perms`.
  const perms = (acl as unknown as { permission?: number }).permission ?? acl.perms;
  return { perms, scheme: acl.id.scheme, id: acl.id.id };
}

function toAcl(entry: AclEntry): zookeeper.ACL {
  return new zookeeper.ACL(entry.perms, new zookeeper.Id(entry.scheme, entry.id));
}

/** world:anyone with every permission: what ZooKeeper tools create by default. */
export const OPEN_ACL: readonly AclEntry[] = [{ perms: 31, scheme: 'world', id: 'anyone' }];

const EVENT_TYPES: Record<number, ZkEventType> = {
  [zookeeper.Event.NODE_CREATED]: 'created',
  [zookeeper.Event.NODE_DELETED]: 'deleted',
  [zookeeper.Event.NODE_DATA_CHANGED]: 'dataChanged',
  [zookeeper.Event.NODE_CHILDREN_CHANGED]: 'childrenChanged',
};

function wrapWatcher(watch: ZkWatcher | undefined): ((event: zookeeper.Event) => void) | undefined {
  if (!watch) return undefined;
  return (event) => {
    const type = EVENT_TYPES[event.getType()];
    if (type) watch({ type, path: event.getPath() });
  };
}

// The library's op codes (jute.OP_CODES) for the ops multi() pushes directly.
const OP_CREATE = 1;
const OP_DELETE = 2;
const OP_CHECK = 13;
const PERSISTENT = 0;
const EPHEMERAL = 1;

type Callback<T> = (error: unknown, value: T) => void;

/** Each op's node stat after a multi, where its reply says (ZkClient.multi). */
export type MultiStats = readonly (ZkStat | undefined)[];

/**
 * The zxid of the transaction a multi's `stats` came from: a multi is one
 * transaction, so every node it wrote has it as mzxid, and every node it
 * made as czxid too. Undefined when it returned no stat.
 */
export function transactionZxid(stats: MultiStats | undefined): bigint | undefined {
  return stats?.find((stat) => stat !== undefined)?.mzxid;
}

/** What a write may ask of the session that sends it (ZkSession): a client sends it once. */
export interface SetDataOptions {
  /**
   * Run before the write is sent again after the connection or the session
   * was lost under it (ZkSession); rejecting fails the write with that
   * reason instead. What was true when it was first sent may not be now.
   */
  beforeResend?: () => Promise<void>;
}

/**
 * What the filesystem needs of a connection: a ZkClient, or a ZkSession
 * (adapters/zkfs/session.ts) that outlives connection loss and expiry.
 */
export type ZkApi = Pick<
  ZkClient,
  'exists' | 'getData' | 'getChildren' | 'getAcl' | 'create' | 'setData' | 'remove' | 'multi' | 'close'
>;

export class ZkClient {
  private readonly listeners = new Set<(state: ZkSessionState) => void>();
  private closed = false;
  private readonly deadlines: RequestDeadlines;

  private constructor(
    private readonly client: zookeeper.Client,
    requestTimeoutMs: number,
    private readonly log: Logger,
  ) {
    this.deadlines = new RequestDeadlines(requestTimeoutMs);
    client.on('state', (state: zookeeper.State) => {
      const mapped = mapState(state);
      if (!mapped) return;
      this.log.debug(`zookeeper: session ${mapped}`);
      for (const listener of this.listeners) listener(mapped);
    });
  }

  /**
   * Opens a session, or fails after `connectTimeoutMs` with an OperationError
   * naming the servers (never hangs while the ensemble is unreachable).
   */
  static async connect(options: ZkConnectOptions): Promise<ZkClient> {
    const log = options.logger ?? silentLogger;
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    const client = zookeeper.createClient(options.connectString, {
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      spinDelay: 500,
      retries: 0,
    });
    frameReplies(client);
    // Every attempt of this client to reach a server, the first included, gives
    // up on one that does not take the connection, or takes it but never answers.
    const requested = options.sessionTimeoutMs ?? 30_000;
    boundAttempts(
      client,
      () => handshakeTimeoutMs(negotiatedTimeout(client) ?? requested),
      (server, ms, stage) =>
        log.warn(
          stage === 'connect'
            ? `zookeeper: ${server} did not take the connection within ${ms} ms; trying the next server`
            : `zookeeper: ${server} took the connection but did not answer within ${ms} ms; trying again`,
        ),
    );
    if (options.auth) {
      log.addSecret(options.auth.password);
      client.addAuthInfo('digest', Buffer.from(`${options.auth.user}:${options.auth.password}`));
    }
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        client.removeListener('connected', onConnected);
        client.removeListener('connectedReadOnly', onConnected);
        client.removeListener('authenticationFailed', onAuthFailed);
        if (error) {
          client.close();
          reject(error);
        } else resolve();
      };
      const onConnected = () => done();
      const onAuthFailed = () =>
        done(new OperationError(`ZooKeeper at ${options.connectString} refused the credentials`));
      const timer = setTimeout(
        () =>
          done(
            new OperationError(
              `could not connect to ZooKeeper at ${options.connectString} within ${Math.round(timeoutMs / 1000)} s`,
              {
                detail:
                  'check that the servers are running and reachable, and that HOSTS names their client ports',
              },
            ),
          ),
        timeoutMs,
      );
      client.once('connected', onConnected);
      client.once('connectedReadOnly', onConnected);
      client.once('authenticationFailed', onAuthFailed);
      log.debug(`zookeeper: connecting to ${options.connectString}`);
      client.connect();
    });
    const zk = new ZkClient(client, options.requestTimeoutMs ?? 15_000, log);
    log.info(`zookeeper: session 0x${zk.sessionId} with ${options.connectString}`);
    return zk;
  }

  get sessionId(): string {
    return this.client.getSessionId().toString('hex');
  }

  /** The library client underneath, for protocol extensions (adapters/zkfs/zk-wire.ts). */
  get library(): zookeeper.Client {
    return this.client;
  }

  /** Subscribes to session state changes; returns the unsubscribe function. */
  onState(listener: (state: ZkSessionState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private call<T>(path: string, start: (callback: Callback<T>) => void): Promise<T> {
    if (this.closed) return Promise.reject(new ZkError('CONNECTION_LOSS', path));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const giveUp = () => {
        settled = true;
        reject(new ZkError('TIMEOUT', path));
      };
      this.deadlines.add(giveUp);
      try {
        start((error, value) => {
          if (settled) return;
          settled = true;
          this.deadlines.done(giveUp);
          if (error) reject(toZkError(error, path));
          else resolve(value);
        });
      } catch (error) {
        // The library asserts on bad arguments (invalid path, oversized data) synchronously.
        settled = true;
        this.deadlines.done(giveUp);
        reject(new ZkError('BAD_ARGUMENTS', path, undefined, error));
      }
    });
  }

  /** The node's stat, or null when it does not exist. */
  async exists(path: string, watch?: ZkWatcher): Promise<ZkStat | null> {
    const w = wrapWatcher(watch);
    const stat = await this.call<zookeeper.Stat | null>(path, (cb) =>
      w ? this.client.exists(path, w, cb) : this.client.exists(path, cb),
    );
    return stat ? toZkStat(stat) : null;
  }

  async getData(path: string, watch?: ZkWatcher): Promise<{ data: Buffer; stat: ZkStat }> {
    const w = wrapWatcher(watch);
    const [data, stat] = await this.call<[Buffer | null, zookeeper.Stat]>(path, (cb) => {
      const done = (error: unknown, data: Buffer, stat: zookeeper.Stat) => cb(error, [data, stat]);
      if (w) this.client.getData(path, w, done);
      else this.client.getData(path, done);
    });
    return { data: data ?? Buffer.alloc(0), stat: toZkStat(stat) };
  }

  /** Whether getDataMany sends one request (otherwise it sends one per node). */
  get readsMany(): boolean {
    return !this.multiReadRefused && canSendRaw(this.client);
  }

  /** A server refused a multiRead (older than 3.6): this client sends getData from then on. */
  private multiReadRefused = false;

  /**
   * The data and stat of each of `paths`, in order, read with one multiRead
   * request (ZooKeeper 3.6+; zk-wire.ts); a node that could not be read is
   * its error. Without multiRead (this library build, or a server that
   * refuses it), one getData each.
   */
  async getDataMany(paths: readonly string[]): Promise<({ data: Buffer; stat: ZkStat } | ZkError)[]> {
    const oneByOne = () =>
      Promise.all(paths.map((path) => this.getData(path).catch((error: unknown) => toZkError(error, path))));
    if (!this.readsMany) return oneByOne();
    let reads: NodeRead[];
    try {
      reads = await this.call<NodeRead[]>(paths[0] ?? '/', (cb) => {
        readMany(this.client, paths).then(
          (reads) => cb(null, reads),
          (error: unknown) => cb(error, []),
        );
      });
    } catch (error) {
      if (!isZkError(error, 'UNIMPLEMENTED', 'UNKNOWN')) throw error;
      this.multiReadRefused = true;
      this.log.warn(
        `zookeeper: the server cannot read many nodes at once (${error.message}); reading one by one`,
      );
      return oneByOne();
    }
    return reads.map((read, i) =>
      typeof read === 'number' ? new ZkError(CODE_NAMES.get(read) ?? 'UNKNOWN', paths[i]) : read,
    );
  }

  async getChildren(path: string, watch?: ZkWatcher): Promise<{ children: string[]; stat: ZkStat }> {
    const w = wrapWatcher(watch);
    const [children, stat] = await this.call<[string[], zookeeper.Stat]>(path, (cb) => {
      const done = (error: unknown, children: string[], stat: zookeeper.Stat) => cb(error, [children, stat]);
      if (w) this.client.getChildren(path, w, done);
      else this.client.getChildren(path, done);
    });
    return { children, stat: toZkStat(stat) };
  }

  async getAcl(path: string): Promise<{ acl: AclEntry[]; stat: ZkStat }> {
    const [acl, stat] = await this.call<[zookeeper.ACL[], zookeeper.Stat]>(path, (cb) =>
      this.client.getACL(path, (error, acl, stat) => cb(error, [acl, stat])),
    );
    return { acl: acl.map(fromAcl), stat: toZkStat(stat) };
  }

  async create(
    path: string,
    data: Buffer,
    options: { acl?: readonly AclEntry[]; ephemeral?: boolean } = {},
  ): Promise<string> {
    const acl = (options.acl && options.acl.length > 0 ? options.acl : OPEN_ACL).map(toAcl);
    return this.call<string>(path, (cb) =>
      this.client.create(path, data, acl, options.ephemeral ? EPHEMERAL : PERSISTENT, cb),
    );
  }

  /** Sets data at `version` (-1: any); resolves to the new stat. A client sends it once (SetDataOptions). */
  async setData(path: string, data: Buffer, version: number, _options?: SetDataOptions): Promise<ZkStat> {
    if (canSendRaw(this.client)) {
      // Encoded here rather than by the library (core/zkfs/zk-write-codec.ts says why).
      return this.call<ZkStat>(path, (cb) => {
        sendRaw(
          this.client,
          OP_SET_DATA,
          setDataBodyBytes(path, data.length),
          (buffer, offset) => writeSetDataBody(buffer, offset, path, data, version),
          (frame) => readStat(frame, REPLY_BODY),
        ).then(
          (stat) => cb(null, stat),
          (error: unknown) => cb(error, undefined as unknown as ZkStat),
        );
      });
    }
    const stat = await this.call<zookeeper.Stat>(path, (cb) => this.client.setData(path, data, version, cb));
    return toZkStat(stat);
  }

  async remove(path: string, version: number): Promise<void> {
    await this.call<void>(path, (cb) => this.client.remove(path, version, (error) => cb(error, undefined)));
  }

  /**
   * Runs `ops` atomically. On failure throws a ZkError whose `opIndex` and
   * `path` name the op that failed. Resolves to each op's node stat after
   * it where the reply carries one (a setData's, sent by the raw encoder),
   * else undefined. A create's result has none, and asking for one with
   * create2 would not help: ZooKeeper 3.8 answers it in a multi as a plain
   * create (cache-patches.ts, createdStat, works it out instead).
   */
  async multi(ops: readonly ZkOp[], _options?: SetDataOptions): Promise<MultiStats> {
    if (ops.length === 0) return [];
    if (canSendRaw(this.client)) return this.multiRaw(ops);
    const txn = this.client.transaction() as unknown as {
      ops: unknown[];
      commit: zookeeper.Transaction['commit'];
    };
    for (const op of ops) {
      switch (op.op) {
        case 'create':
          txn.ops.push({
            type: OP_CREATE,
            path: op.path,
            data: op.data,
            acls: (op.acl.length > 0 ? op.acl : OPEN_ACL).map(toAcl),
            mode: PERSISTENT,
          });
          break;
        case 'delete':
          txn.ops.push({ type: OP_DELETE, path: op.path, version: op.version });
          break;
        case 'setData':
          txn.ops.push({ type: OP_SET_DATA, path: op.path, data: op.data, version: op.version });
          break;
        case 'check':
          txn.ops.push({ type: OP_CHECK, path: op.path, version: op.version });
          break;
      }
    }
    const label = `multi(${ops.length} ops)`;
    await this.call<void>(label, (cb) =>
      txn.commit((error, results: { err?: number }[] | undefined) => {
        if (!error) return cb(null, undefined);
        const index = (results ?? []).findIndex((r) => r.err !== undefined && r.err !== 0 && r.err !== -2);
        const code = index >= 0 ? results?.[index]?.err : undefined;
        const name = code !== undefined ? CODE_NAMES.get(code) : undefined;
        if (index >= 0 && name) cb(new ZkError(name, ops[index]?.path, index), undefined);
        else cb(error, undefined);
      }),
    );
    return [];
  }

  /** multi() with the request encoded here rather than by the library (core/zkfs/zk-write-codec.ts). */
  private async multiRaw(ops: readonly ZkOp[]): Promise<MultiStats> {
    const sent = ops.map((op) => (op.op === 'create' && op.acl.length === 0 ? { ...op, acl: OPEN_ACL } : op));
    const none: MultiReply<ZkStat> = { codes: [], stats: [] };
    const { codes, stats } = await this.call<MultiReply<ZkStat>>(`multi(${ops.length} ops)`, (cb) => {
      sendRaw(
        this.client,
        OP_MULTI,
        multiBodyBytes(sent),
        (buffer, offset) => writeMultiBody(buffer, offset, sent),
        (frame) => decodeMultiReply(frame, readStat),
      ).then(
        (reply) => cb(null, reply),
        (error: unknown) => cb(error, none),
      );
    });
    // The op at fault has its own code; those after it were not tried (-2, RUNTIMEINCONSISTENCY).
    const index = codes.findIndex((code) => code !== 0 && code !== RUNTIME_INCONSISTENCY);
    const failed = index >= 0 ? index : codes.findIndex((code) => code !== 0);
    if (failed < 0) return stats;
    const code = codes[failed] as number;
    throw new ZkError(CODE_NAMES.get(code) ?? 'UNKNOWN', ops[failed]?.path, failed);
  }

  /** Closes the session (ephemeral nodes go, watches stop). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.client.once('disconnected', () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.close();
    });
  }
}

function mapState(state: zookeeper.State): ZkSessionState | undefined {
  switch (state.name) {
    case 'SYNC_CONNECTED':
      return 'connected';
    case 'CONNECTED_READ_ONLY':
      return 'readOnly';
    case 'DISCONNECTED':
      return 'disconnected';
    case 'EXPIRED':
      return 'expired';
    case 'AUTH_FAILED':
      return 'authFailed';
    default:
      return undefined;
  }
}
