/**
 * What node-zookeeper-client 1.1 lacks, added from outside: ZooKeeper 3.6+
 * persistent recursive watches, a view of every notification, the server a
 * connection talks to, a way to notice a server that stopped answering, a
 * time limit on the session handshake, requests sent together, and replies
 * decoded without copying.
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
import type { ZkEventType } from '../zookeeper.js';

const OP_ADD_WATCH = 106;
/** The op code the library is told, so it reads an empty reply body. */
const OP_DELETE = 2;
export const PERSISTENT_RECURSIVE = 1;

const EVENT_TYPES: Record<number, ZkEventType> = {
  1: 'created',
  2: 'deleted',
  3: 'dataChanged',
  4: 'childrenChanged',
};

interface WireEvent {
  type: number;
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
  /** Sends the session handshake once a socket is connected; looked up anew for every socket. */
  onSocketConnected?: (...args: unknown[]) => unknown;
  /** Decodes what a socket received; looked up anew for every socket. */
  onSocketData?: (chunk: Buffer) => unknown;
}

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

/** The request as the library queues it: it assigns `header.xid`, then calls toBuffer(). */
function addWatchRequest(path: string, mode: number) {
  const pathBytes = Buffer.from(path);
  const header = { xid: 0, type: OP_DELETE };
  return {
    header,
    payload: { setChrootPath: () => {} },
    toBuffer(): Buffer {
      const buffer = Buffer.alloc(4 + 4 + 4 + 4 + pathBytes.length + 4);
      let offset = buffer.writeInt32BE(buffer.length - 4, 0);
      offset = buffer.writeInt32BE(header.xid, offset);
      offset = buffer.writeInt32BE(OP_ADD_WATCH, offset);
      offset = buffer.writeInt32BE(pathBytes.length, offset);
      offset += pathBytes.copy(buffer, offset);
      buffer.writeInt32BE(mode, offset);
      return buffer;
    },
  };
}

/**
 * Adds a persistent recursive watch on `path` for this connection. Rejects
 * with the library's exception (an old server answers UNIMPLEMENTED or
 * drops the connection) or a plain Error when the library does not fit.
 */
export function addRecursiveWatch(client: zookeeper.Client, path: string): Promise<void> {
  const cm = internals(client);
  if (!cm) return Promise.reject(new Error('this node-zookeeper-client cannot send addWatch'));
  return new Promise((resolve, reject) => {
    cm.queue(addWatchRequest(path, PERSISTENT_RECURSIVE), (error) => (error ? reject(error) : resolve()));
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
 * Drops a connection whose session handshake is not answered within
 * `timeoutMs()`, so the library tries again (the next server). The library
 * stops its connect timer once the socket is connected and starts pinging
 * only after the answer, so without this it would wait forever: ZooKeeper
 * 3.8.0 accepts connections while still loading its database, fails them
 * ("ZooKeeperServer not running", then a NullPointerException while
 * closing) and leaves them open and unanswered. Covers the handshakes of
 * every later (re)connection of `client`; returns false when the library
 * does not have the shape this relies on.
 */
export function boundHandshake(
  client: zookeeper.Client,
  timeoutMs: () => number,
  onDropped: (server: string | undefined, waitedMs: number) => void,
): boolean {
  const cm = internals(client);
  const sendHandshake = cm?.onSocketConnected;
  if (!cm || typeof sendHandshake !== 'function' || typeof cm.state !== 'number') return false;
  cm.onSocketConnected = function (this: unknown, ...args: unknown[]) {
    const socket = cm.socket;
    const result = sendHandshake.apply(this, args);
    const waitMs = timeoutMs();
    const timer = setTimeout(() => {
      if (cm.socket !== socket || cm.state !== CONNECTING) return;
      onDropped(connectedServer(client), waitMs);
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
      decode.call(this, buffer.subarray(offset, offset + size + 4));
      offset += size + 4;
      // The decoder dropped the connection (a reply out of order): the rest is not for anyone.
      if (cm.socket !== socket || (socket as { destroyed?: boolean } | null | undefined)?.destroyed) return;
    }
    if (offset < buffer.length) {
      pieces = [buffer.subarray(offset)];
      held = buffer.length - offset;
    }
  };
  return true;
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
