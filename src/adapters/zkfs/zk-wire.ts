/**
 * What node-zookeeper-client 1.1 lacks, added from outside: ZooKeeper 3.6+
 * persistent recursive watches, a view of every notification, the server a
 * connection talks to, a way to notice a server that stopped answering, a
 * time limit on the session handshake, requests sent together, replies
 * decoded without copying, and many nodes read with one request.
 *
 * Persistent recursive watches (`addWatch`, opcode 106): One such watch on
 * the mount root reports every creation, deletion and data change below it,
 * for as long as the connection lasts, at no cost per node — where one-shot
 * watches would need a data and a child watch per cached node, re-armed
 * after every change.
 *
 * How it fits the library (checked at run time; any mismatch means "not
 * supported" and the caller falls back to time-limited caching):
 * - the request is queued like the library's own, but under the op code of
 *   a request whose reply has no body (delete), so the library decodes the
 *   reply; the bytes on the wire carry 106;
 * - notifications for paths the library has no watcher for are dropped by
 *   its WatcherManager.emit, so we observe every notification there first;
 * - the library re-registers only its own watches after a reconnect, and
 *   a server forgets a connection's watches when it closes: the caller adds
 *   the watch again on every (re)connection and treats what it cached
 *   before as unverified.
 */
import type zookeeper from 'node-zookeeper-client';
import { zeroedBuffer } from '../../core/zeroed-buffer.js';
import type { ZkEventType, ZkStat } from '../zookeeper.js';

const OP_ADD_WATCH = 106;
/** The op code the library is told, so it reads an empty reply body. */
const OP_DELETE = 2;
const PERSISTENT = 0;
export const PERSISTENT_RECURSIVE = 1;

const EVENT_TYPES: Record<number, ZkEventType> = {
  1: 'created',
  2: 'deleted',
  3: 'dataChanged',
  4: 'childrenChanged',
};

interface WireEvent {
  type: number;
  state?: number;
  path: string;
}

interface Internals {
  queue(request: unknown, callback: (error: unknown) => void): void;
  /** Requests waiting to be written; pushing one writes it to the socket at once. */
  packetQueue?: { push(packet: unknown): unknown };
  watcherManager: { emit(event: WireEvent): void };
  socket?: { remoteAddress?: string; remotePort?: number } | null;
  /** The connection state (the library's ConnectionManager.STATES). */
  state?: number;
  /** The connection string's chroot, which the library strips from notified paths. */
  chrootPath?: string;
  /** Sends the session handshake once a socket is connected; looked up anew for every socket. */
  onSocketConnected?: (...args: unknown[]) => unknown;
  /** Decodes what a socket received; looked up anew for every socket. */
  onSocketData?: (chunk: Buffer) => unknown;
  /** How long a TCP connect may take; read as each connect starts. */
  connectTimeout?: number;
  /** Sets the session timeout and the timeouts derived from it (connectTimeout among them). */
  updateTimeout?: (...args: unknown[]) => unknown;
  /** Gives up a connect that took too long (the library then tries the next server). */
  onSocketConnectTimeout?: (...args: unknown[]) => unknown;
  /** Picks the server the next connect goes to. */
  findNextServer?: (callback: (server: { host: string; port: unknown }) => void) => unknown;
  /** Requests sent and not answered yet, oldest first. */
  pendingQueue?: { request?: Partial<RawRequest> }[];
}

/** A request of ours that reads its reply's frame itself before the library sees it. */
interface RawRequest {
  header: { xid: number; type: number };
  onReply(frame: Buffer): void;
}

/** Connections whose replies pass through frameReplies, which hands RawRequests their frames. */
const framed = new WeakSet<object>();

/** ConnectionManager.STATES.CONNECTING: the handshake is not answered yet. */
const CONNECTING = 1;

/** The library's connection manager, when it has the shape this module relies on. */
function internals(client: zookeeper.Client): Internals | undefined {
  const cm = (client as unknown as { connectionManager?: Partial<Internals> }).connectionManager;
  if (!cm || typeof cm.queue !== 'function' || typeof cm.watcherManager?.emit !== 'function')
    return undefined;
  return cm as Internals;
}

/** Whether this library build can carry persistent watches at all. */
export function supportsPersistentWatches(client: zookeeper.Client): boolean {
  return internals(client) !== undefined;
}

interface OpaqueRequest extends Partial<RawRequest> {
  header: RawRequest['header'];
  payload: { setChrootPath(): void };
  toBuffer(): Buffer;
}

/**
 * A request of ours as the library queues it (it assigns `header.xid`, then
 * calls toBuffer()): the library is told it is a delete, whose reply has no
 * body it would decode, while the bytes on the wire carry `opCode` and a
 * body of `bodyBytes` that `writeBody` fills in.
 */
function opaqueRequest(
  opCode: number,
  bodyBytes: number,
  writeBody: (buffer: Buffer, offset: number) => unknown,
  onReply?: (frame: Buffer) => void,
): OpaqueRequest {
  const header = { xid: 0, type: OP_DELETE };
  return {
    header,
    payload: { setChrootPath: () => {} },
    ...(onReply ? { onReply } : {}),
    toBuffer(): Buffer {
      const buffer = zeroedBuffer(4 + 4 + 4 + bodyBytes);
      let offset = buffer.writeInt32BE(buffer.length - 4, 0);
      offset = buffer.writeInt32BE(header.xid, offset);
      offset = buffer.writeInt32BE(opCode, offset);
      writeBody(buffer, offset);
      return buffer;
    },
  };
}

/** Writes a jute string (length, then bytes); returns the offset after it. */
function writeString(buffer: Buffer, offset: number, bytes: Buffer): number {
  offset = buffer.writeInt32BE(bytes.length, offset);
  return offset + bytes.copy(buffer, offset);
}

function addWatchRequest(path: string, mode: number) {
  const pathBytes = Buffer.from(path);
  return opaqueRequest(OP_ADD_WATCH, 4 + pathBytes.length + 4, (buffer, offset) => {
    buffer.writeInt32BE(mode, writeString(buffer, offset, pathBytes));
  });
}

/**
 * Adds a persistent recursive watch on `path` for this connection. Rejects
 * with the library's exception (an old server answers UNIMPLEMENTED or
 * drops the connection) or a plain Error when the library does not fit.
 */
export function addRecursiveWatch(client: zookeeper.Client, path: string): Promise<void> {
  return addWatch(client, path, PERSISTENT_RECURSIVE);
}

/**
 * Adds a persistent watch on `path` alone: its own data changes and
 * deletion, and changes to its list of children. ZooKeeper 3.8.4+ tells a
 * recursive watch nothing of a node the session may not read; a child
 * created or deleted there still changes this (readable) node's list.
 * ZooKeeper 3.8 keeps one mode per path and session: never put this on the
 * path of a recursive watch, which it would replace.
 */
export function addChildWatch(client: zookeeper.Client, path: string): Promise<void> {
  return addWatch(client, path, PERSISTENT);
}

function addWatch(client: zookeeper.Client, path: string, mode: number): Promise<void> {
  const cm = internals(client);
  if (!cm) return Promise.reject(new Error('this node-zookeeper-client cannot send addWatch'));
  return new Promise((resolve, reject) => {
    cm.queue(addWatchRequest(path, mode), (error) => (error ? reject(error) : resolve()));
  });
}

export interface WatchNotice {
  type: ZkEventType;
  path: string;
}

/**
 * Calls `listener` synchronously for every notification the connection
 * receives, before the library's own watchers. Returns the undo function.
 */
export function observeNotifications(
  client: zookeeper.Client,
  listener: (notice: WatchNotice) => void,
): () => void {
  const cm = internals(client);
  if (!cm) return () => {};
  const manager = cm.watcherManager;
  const original = manager.emit;
  manager.emit = function (this: unknown, event: WireEvent) {
    const type = EVENT_TYPES[event.type];
    try {
      if (type) listener({ type, path: event.path });
    } catch {
      // a failing observer must not break the connection's reader
    }
    return original.call(this, event);
  };
  return () => {
    manager.emit = original;
  };
}

/**
 * Closes the connection's socket so the library reconnects (to the next
 * server). Used when a server stops answering without closing the socket:
 * the library sends pings but never checks that replies come back.
 */
export function dropConnection(client: zookeeper.Client): void {
  const socket = (internals(client)?.socket ?? null) as { destroy?: () => void } | null;
  socket?.destroy?.();
}

/** Calls `listener` whenever bytes arrive on the connection's current socket. */
export function watchTraffic(client: zookeeper.Client, seen: WeakSet<object>, listener: () => void): void {
  const socket = internals(client)?.socket as { on?: (e: string, l: () => void) => void } | null | undefined;
  if (!socket || typeof socket.on !== 'function' || seen.has(socket)) return;
  seen.add(socket);
  socket.on('data', listener);
}

/**
 * How long a server may take to answer the session handshake (ms): a third
 * of the session timeout (the library's ping interval), at least 1 s for a
 * loaded server, at most 5 s so that a retry fits well within the session
 * timeout and the time operations wait for a connection.
 */
export function handshakeTimeoutMs(sessionTimeoutMs: number): number {
  return Math.min(5000, Math.max(1000, Math.round(sessionTimeoutMs / 3)));
}

/**
 * Bounds each attempt to reach a server, so the library goes on to the next
 * one in time:
 * - the TCP connect: the library gives each server the session timeout
 *   divided by the number of servers (15 s of 30 s for two), longer than a
 *   mount waits for its first session. A server whose host is gone, or
 *   behind a firewall that drops packets, never answers the connect; on the
 *   networks an ensemble runs on, one that answers does so within
 *   `timeoutMs()` (a SYN lost twice is sent again after 1 s, then 2 s).
 * - the session handshake: the library stops its connect timer once the
 *   socket is connected and starts pinging only after the answer, so it
 *   would wait forever: ZooKeeper 3.8.0 accepts connections while still
 *   loading its database, fails them ("ZooKeeperServer not running", then a
 *   NullPointerException while closing) and leaves them open and
 *   unanswered.
 * Covers every later (re)connection of `client`; returns false when the
 * library does not have the shape this relies on.
 */
export function boundAttempts(
  client: zookeeper.Client,
  timeoutMs: () => number,
  onDropped: (server: string, waitedMs: number, stage: 'connect' | 'handshake') => void,
): boolean {
  const cm = internals(client);
  const sendHandshake = cm?.onSocketConnected;
  const updateTimeout = cm?.updateTimeout;
  const giveUp = cm?.onSocketConnectTimeout;
  const findNext = cm?.findNextServer;
  if (
    !cm ||
    typeof findNext !== 'function' ||
    typeof sendHandshake !== 'function' ||
    typeof updateTimeout !== 'function' ||
    typeof giveUp !== 'function' ||
    typeof cm.state !== 'number' ||
    typeof cm.connectTimeout !== 'number'
  )
    return false;
  let attempting = 'the server';
  cm.findNextServer = function (this: unknown, callback) {
    return findNext.call(this, (server) => {
      attempting = `${server.host}:${server.port}`;
      callback(server);
    });
  };
  // The library reads connectTimeout when it starts each connect, and sets it with every
  // session timeout it learns.
  const capConnect = () => {
    cm.connectTimeout = Math.min(cm.connectTimeout ?? Number.POSITIVE_INFINITY, timeoutMs());
  };
  cm.updateTimeout = function (this: unknown, ...args: unknown[]) {
    const result = updateTimeout.apply(this, args);
    capConnect();
    return result;
  };
  capConnect();
  cm.onSocketConnectTimeout = function (this: unknown, ...args: unknown[]) {
    onDropped(attempting, cm.connectTimeout ?? 0, 'connect');
    return giveUp.apply(this, args);
  };
  cm.onSocketConnected = function (this: unknown, ...args: unknown[]) {
    const socket = cm.socket;
    const result = sendHandshake.apply(this, args);
    const waitMs = timeoutMs();
    const timer = setTimeout(() => {
      if (cm.socket !== socket || cm.state !== CONNECTING) return;
      onDropped(attempting, waitMs, 'handshake');
      (socket as { destroy?: () => void } | null)?.destroy?.();
    }, waitMs);
    timer.unref();
    return result;
  };
  return true;
}

/**
 * Hands the library's decoder one whole reply at a time. Given several in
 * one chunk, it decodes the first, then glues the rest onto an empty buffer
 * (a copy) and starts again: a 64 KiB read holding a hundred replies was
 * copied a hundred times, and a listing's prefetched children arrive that
 * way. Here frames are cut out of each chunk without copying; only a reply
 * split across reads is joined, once, when its last piece is in. Must be
 * set before the first connection (each socket binds the decoder when it
 * is made); returns false when the library does not have the shape this
 * relies on.
 */
export function frameReplies(client: zookeeper.Client): boolean {
  const cm = internals(client);
  const decode = cm?.onSocketData;
  if (!cm || typeof decode !== 'function') return false;
  let pieces: Buffer[] = [];
  let held = 0;
  let from: unknown;
  cm.onSocketData = function (this: unknown, chunk: Buffer) {
    const socket = cm.socket;
    // A piece of a reply from an earlier connection is not the start of this one's.
    if (socket !== from) {
      pieces = [];
      held = 0;
      from = socket;
    }
    let buffer = chunk;
    if (held > 0) {
      pieces.push(chunk);
      held += chunk.length;
      const head = pieces[0] as Buffer;
      if (held < 4 || (head.length >= 4 ? head : Buffer.concat(pieces)).readInt32BE(0) + 4 > held) return;
      buffer = Buffer.concat(pieces, held);
      pieces = [];
      held = 0;
    }
    let offset = 0;
    while (buffer.length - offset >= 4) {
      const size = buffer.readInt32BE(offset);
      // Nonsense for the library to deal with (it drops the connection).
      if (size < 0) return decode.call(this, buffer.subarray(offset));
      if (buffer.length - offset < size + 4) break;
      const frame = buffer.subarray(offset, offset + size + 4);
      if (size >= 16) handFrame(cm, frame);
      if (!handNotice(cm, frame)) decode.call(this, frame);
      offset += size + 4;
      // The decoder dropped the connection (a reply out of order): the rest is not for anyone.
      if (cm.socket !== socket || (socket as { destroyed?: boolean } | null | undefined)?.destroyed) return;
    }
    if (offset < buffer.length) {
      pieces = [buffer.subarray(offset)];
      held = buffer.length - offset;
    }
  };
  framed.add(cm);
  return true;
}

/** The xid of a watch notification. */
const XID_NOTIFICATION = -1;
/** Where a notification's event starts: length, xid, zxid, err; then type, state, path. */
const EVENT_AT = 20;

/**
 * Passes a watch notification's event straight to the watcher manager
 * (observers first, as always), where the library would first build two
 * records for it: with a persistent watch, every node a mount writes comes
 * back as one or two notifications. Returns false, leaving the frame to
 * the library, for anything else or anything unusual: an event type it
 * does not know, a chroot to strip, a connection still in its handshake.
 */
function handNotice(cm: Internals, frame: Buffer): boolean {
  if (frame.length < EVENT_AT + 12 || frame.readInt32BE(4) !== XID_NOTIFICATION) return false;
  if (cm.state === CONNECTING || cm.chrootPath) return false;
  const type = frame.readInt32BE(EVENT_AT);
  if (EVENT_TYPES[type] === undefined) return false;
  const length = frame.readInt32BE(EVENT_AT + 8);
  const start = EVENT_AT + 12;
  if (length < 0 || start + length > frame.length) return false;
  const path = frame.toString('utf8', start, start + length);
  cm.watcherManager.emit({ type, state: frame.readInt32BE(EVENT_AT + 4), path });
  return true;
}

/** Gives a reply's frame to the request it answers when that is one of ours (the library then settles it). */
function handFrame(cm: Internals, frame: Buffer): void {
  const xid = frame.readInt32BE(4);
  if (xid < 0) return; // a notification, a ping or an auth answer
  const request = cm.pendingQueue?.[0]?.request;
  if (request?.header?.xid !== xid || typeof request.onReply !== 'function') return;
  try {
    request.onReply(frame);
  } catch {
    // the request records its own failure; the connection's reader must go on
  }
}

/**
 * The last zxid the connection saw in a reply, as the library records it
 * (it sends it when it reconnects); undefined before any. Replies to our
 * own requests pass through the library's decoder too (frameReplies), so
 * they count.
 */
export function lastZxidSeen(client: zookeeper.Client): bigint | undefined {
  const zxid = (client as unknown as { connectionManager?: { zxid?: unknown } }).connectionManager?.zxid;
  if (!Buffer.isBuffer(zxid) || zxid.length !== 8) return undefined;
  const value = zxid.readBigInt64BE(0);
  return value > 0n ? value : undefined;
}

/** The session timeout the server granted (ms), as the library recorded it. */
export function negotiatedTimeout(client: zookeeper.Client): number | undefined {
  const timeout = (client as unknown as { connectionManager?: { sessionTimeout?: unknown } })
    .connectionManager?.sessionTimeout;
  return typeof timeout === 'number' && timeout > 0 ? timeout : undefined;
}

/** `host:port` of the server the connection currently talks to, if any. */
export function connectedServer(client: zookeeper.Client): string | undefined {
  const socket = internals(client)?.socket;
  if (!socket?.remoteAddress || !socket.remotePort) return undefined;
  const host = socket.remoteAddress.includes(':') ? `[${socket.remoteAddress}]` : socket.remoteAddress;
  return `${host}:${socket.remotePort}`;
}

interface Corkable {
  cork(): void;
  uncork(): void;
}

/**
 * Makes the requests queued in one turn of the event loop go out in one
 * write. The library writes every request to its socket the moment it is
 * queued: a listing that prefetches 64 children made 64 system calls (and
 * woke the server 64 times) where one carries them all.
 */
export function coalesceWrites(client: zookeeper.Client): void {
  const cm = internals(client);
  const queue = cm?.packetQueue;
  if (!cm || typeof queue?.push !== 'function') return;
  const push = queue.push.bind(queue);
  let corked: Corkable | undefined;
  queue.push = (packet: unknown) => {
    const socket = cm.socket as Partial<Corkable> | null | undefined;
    if (!corked && typeof socket?.cork === 'function' && typeof socket.uncork === 'function') {
      const held = socket as Corkable;
      corked = held;
      held.cork();
      process.nextTick(() => {
        corked = undefined;
        held.uncork();
      });
    }
    return push(packet);
  };
}

const OP_MULTI_READ = 22;
const OP_GET_DATA = 4;
/** MultiHeader type of a failed op; its body is the error code. */
const OP_ERROR = -1;
/** `[length][xid][zxid][err]` before a reply's body. */
const REPLY_HEAD = 4 + 4 + 8 + 4;
/** A MultiHeader: type, done, err. */
const MULTI_HEADER = 4 + 1 + 4;
/** A Stat record. */
const STAT_BYTES = 8 * 4 + 4 * 3 + 8 + 4 * 2 + 8;

/** One node of a multiRead: its data and stat, or the error code the server gave for it. */
export type NodeRead = { data: Buffer; stat: ZkStat } | number;

/**
 * Whether this client can send requests of ours (sendRaw, readMany): its
 * replies pass through frameReplies, which hands them their frames, and its
 * connection string has no chroot (our requests carry paths as given, where
 * the library would prefix the chroot).
 */
export function canSendRaw(client: zookeeper.Client): boolean {
  const cm = internals(client);
  return cm !== undefined && framed.has(cm) && Array.isArray(cm.pendingQueue) && !cm.chrootPath;
}

/**
 * Sends a request of ours, op code `opCode` with a body of `bodyBytes` that
 * `writeBody` fills in, and resolves with what `decode` reads from its
 * reply's frame. A reply whose header carries an error never reaches
 * `decode`: the library, which takes the request for a delete, turns the
 * error into its usual exception, so failures look as they always did
 * (connection loss and expiry included). Paths are sent as given, so a
 * client with a chroot never sends these (canSendRaw); zkfs refuses one in
 * its connection string anyway (core/zkfs/mount-options.ts).
 */
export function sendRaw<T>(
  client: zookeeper.Client,
  opCode: number,
  bodyBytes: number,
  writeBody: (buffer: Buffer, offset: number) => unknown,
  decode: (frame: Buffer) => T,
): Promise<T> {
  const cm = internals(client);
  if (!cm || !canSendRaw(client)) {
    return Promise.reject(new Error('this node-zookeeper-client cannot send requests of ours'));
  }
  return new Promise((resolve, reject) => {
    let result: { value: T } | undefined;
    let failure: unknown;
    const request = opaqueRequest(opCode, bodyBytes, writeBody, (frame) => {
      if (frame.readInt32BE(16) !== 0) return; // the library reports the error
      try {
        result = { value: decode(frame) };
      } catch (error) {
        failure = error;
      }
    });
    cm.queue(request, (error) => {
      if (error) reject(error);
      else if (result) resolve(result.value);
      else reject(failure ?? new Error('the reply did not reach its request'));
    });
  });
}

/**
 * Reads the data and stat of every node in `paths` with one multiRead
 * request (opcode 22, ZooKeeper 3.6+): the server runs each read as it
 * would a getData, at one point in its order of changes, and answers them
 * all in one reply. Against one getData per node this saves the server a
 * pass through its request pipeline per node, and the client a reply to
 * decode and a callback per node. A node that could not be read (gone, not
 * readable) comes back as its error code; the whole request fails like any
 * other (connection loss, expiry).
 */
export function readMany(client: zookeeper.Client, paths: readonly string[]): Promise<NodeRead[]> {
  const encoded = paths.map((path) => Buffer.from(path));
  let bodyBytes = MULTI_HEADER;
  for (const path of encoded) bodyBytes += MULTI_HEADER + 4 + path.length + 1;
  return sendRaw(
    client,
    OP_MULTI_READ,
    bodyBytes,
    (buffer, start) => {
      let offset = start;
      for (const path of encoded) {
        offset = writeMultiHeader(buffer, offset, OP_GET_DATA, false);
        offset = writeString(buffer, offset, path);
        offset = buffer.writeUInt8(0, offset); // no watch: the mount's persistent watch covers it
      }
      writeMultiHeader(buffer, offset, -1, true);
    },
    (frame) => decodeMultiRead(frame, paths.length),
  );
}

function writeMultiHeader(buffer: Buffer, offset: number, type: number, done: boolean): number {
  offset = buffer.writeInt32BE(type, offset);
  offset = buffer.writeUInt8(done ? 1 : 0, offset);
  return buffer.writeInt32BE(-1, offset);
}

/** The results of a multiRead reply's frame, one per path asked for, in order. */
export function decodeMultiRead(frame: Buffer, count: number): NodeRead[] {
  const results: NodeRead[] = [];
  let offset = REPLY_HEAD;
  for (;;) {
    if (offset + MULTI_HEADER > frame.length) throw new Error('multiRead reply cut short');
    const type = frame.readInt32BE(offset);
    const done = frame[offset + 4] !== 0;
    offset += MULTI_HEADER;
    if (done) break;
    if (type === OP_ERROR) {
      results.push(frame.readInt32BE(offset));
      offset += 4;
    } else if (type === OP_GET_DATA) {
      const length = frame.readInt32BE(offset);
      offset += 4;
      const bytes = Math.max(0, length);
      if (offset + bytes + STAT_BYTES > frame.length) throw new Error('multiRead reply cut short');
      // A copy: a slice would keep the whole reply in memory for as long as any one node is cached.
      const data = Buffer.from(frame.subarray(offset, offset + bytes));
      offset += bytes;
      results.push({ data, stat: readStat(frame, offset) });
      offset += STAT_BYTES;
    } else {
      throw new Error(`multiRead reply holds a result of type ${type}`);
    }
  }
  if (results.length !== count)
    throw new Error(`multiRead reply holds ${results.length} results for ${count} reads`);
  return results;
}

/** The stat at `offset` of a reply's frame. */
export function readStat(buffer: Buffer, offset: number): ZkStat {
  return {
    czxid: buffer.readBigInt64BE(offset),
    mzxid: buffer.readBigInt64BE(offset + 8),
    ctimeMs: Number(buffer.readBigInt64BE(offset + 16)),
    mtimeMs: Number(buffer.readBigInt64BE(offset + 24)),
    version: buffer.readInt32BE(offset + 32),
    cversion: buffer.readInt32BE(offset + 36),
    aversion: buffer.readInt32BE(offset + 40),
    ephemeralOwner: buffer.readBigInt64BE(offset + 44),
    dataLength: buffer.readInt32BE(offset + 52),
    numChildren: buffer.readInt32BE(offset + 56),
    pzxid: buffer.readBigInt64BE(offset + 60),
  };
}
