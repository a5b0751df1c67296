/**
 * A FUSE connection on /dev/fuse without libfuse: open the device, have
 * mount(8) attach it to a directory (the kernel takes the descriptor number
 * from the mounting process, so mount(8) inherits ours as fd 3), then read
 * requests and write replies.
 *
 * request-reader.ts reads the requests. Replies are written straight from
 * the event loop: a reply never blocks (notifications may: invalidations
 * go out from the thread pool, page-cache stores in batches, batch-writer.ts).
 */
import { closeSync, existsSync, openSync, write, writeSync } from 'node:fs';
import { DEFAULT_TRIAL } from '../../core/fuse/poll-trial.js';
import { expectsAnswer, uniqueOf } from '../../core/fuse/protocol.js';
import { run } from '../exec.js';
import type { Logger } from '../logger.js';
import { type MountEntry, mountAt, readMountTable } from '../mountinfo.js';
import { batchWriter } from './batch-writer.js';
import { busyPoller, type PollCounters } from './busy-poll.js';
import {
  errnoName,
  type FastOpens,
  type ReaderKind,
  type RequestListener,
  type RequestReader,
  type RequestRing,
  readRequests,
  sendDirect,
} from './request-reader.js';

/** Room for the largest WRITE request (max_write plus headers). */
export const MAX_WRITE = 128 * 1024;
const BUFFER_SIZE = MAX_WRITE + 4096;

export interface DeviceOptions {
  dir: string;
  fsname: string;
  subtype: string;
  allowOther: boolean;
  /** Mounted read-only: the kernel refuses opens for writing itself (it never tells us of opens). */
  readOnly: boolean;
  /** Programs on the mount may not be executed (-o noexec). */
  noExec?: boolean;
  /** Microseconds to keep polling for the next request after each answer (busy-poll.ts). */
  busyPollUs: number;
  /** Take requests over io_uring where the kernel offers them (request-reader.ts). */
  ioUring: boolean;
  log: Logger;
}

export interface FuseDevice {
  /** Sends a reply; false if the kernel no longer wants it. */
  send(message: Buffer): boolean;
  /** Sends a notification from the thread pool (the kernel may make it wait for a lock). */
  notify(message: Buffer): Promise<NodeJS.ErrnoException | null>;
  /** Sends a page-cache store, batched with the others of the same event-loop turn. */
  store(message: Buffer): Promise<NodeJS.ErrnoException | null>;
  /** Gets the thread that writes stores ready: some are likely to follow soon. */
  prepareStores(): void;
  /** What polling for the next request has done so far (busy-poll.ts). */
  polling(): PollCounters;
  /** Read-only opens answered without JavaScript (a no-op where the native reader is missing). */
  readonly fast: FastOpens;
  /** How requests are read (request-reader.ts). */
  readonly readerKind: ReaderKind;
  /** Queues taking requests over io_uring: 0 where they come from reading /dev/fuse. */
  ringQueues(): number;
  /** Resolves when the connection has ended (unmounted, aborted or closed). */
  readonly ended: Promise<void>;
  /** Ends the connection: aborts it in the kernel if still alive, then closes the descriptor. */
  close(): void;
}

const CONNECTIONS = '/sys/fs/fuse/connections';

/** The poller's counters now, with the native reader's windows and scored gaps added in. */
function pollingNow(counters: PollCounters, fast: FastOpens): PollCounters {
  const native = fast.answered();
  return {
    ...counters,
    windows: counters.windows + native.windows,
    hits: counters.hits + native.hits,
    misses: counters.misses + native.misses,
  };
}

/**
 * The connection number of the FUSE mount at `dir` (its device minor), read
 * from the mount table: a stat() of the mount would be a request to ourselves.
 */
export function connectionId(table: readonly MountEntry[], dir: string): number | undefined {
  const entry = mountAt(table, dir);
  const minor = Number(entry?.device.split(':')[1]);
  return Number.isInteger(minor) ? minor : undefined;
}

/**
 * fusectl (where a connection can be aborted) is mounted at boot by systemd
 * on most hosts; mount it where it is not, as systemd would.
 */
async function ensureFusectl(table: readonly MountEntry[], log: Logger): Promise<void> {
  if (mountAt(table, CONNECTIONS) || !existsSync(CONNECTIONS)) return;
  await run('mount', ['-t', 'fusectl', 'fusectl', CONNECTIONS], { logger: log, timeoutMs: 10_000 }).catch(
    (error: unknown) => log.debug(`could not mount fusectl: ${String(error)}`),
  );
}

/**
 * Mounts a new FUSE connection at `dir`. `listen` is given the function that
 * sends replies and returns the listener for requests; the first (FUSE_INIT)
 * can arrive before this resolves.
 */
export async function openFuseDevice(
  options: DeviceOptions,
  listen: (send: (message: Buffer) => boolean, fast: FastOpens, ring: RequestRing) => RequestListener,
): Promise<FuseDevice> {
  const { dir, log } = options;
  const fd = openSync('/dev/fuse', 'r+');
  let closed = false;
  let endResolve: () => void = () => {};
  const ended = new Promise<void>((resolve) => {
    endResolve = resolve;
  });
  let finished = false;
  let reader: RequestReader | undefined;
  const finish = () => {
    if (finished) return;
    finished = true;
    endResolve();
  };

  const poller = busyPoller(options.busyPollUs, DEFAULT_TRIAL, (us) => reader?.fast?.pollWindow(us));
  const send = (message: Buffer): boolean => {
    if (closed || reader?.isOpen() === false) return false;
    try {
      const errno = reader ? reader.send(message) : sendDirect(fd, message);
      if (errno === 0) return true;
      // ENOENT: the request was interrupted meanwhile; ENODEV: unmounted.
      const code = errnoName(errno);
      if (code !== 'ENOENT' && code !== 'ENODEV') log.warn(`writing /dev/fuse: ${code}`);
      return false;
    } finally {
      // Answered either way: an interrupted request wants nothing more.
      poller.answered(uniqueOf(message));
    }
  };

  // The reader starts after the handler exists, and the handler may only ask it for fast opens once it does.
  const fast: FastOpens = {
    allow: (nodeId, openFlags, since) => reader?.fast?.allow(nodeId, openFlags, since),
    changed: () => reader?.fast?.changed(),
    changes: () => reader?.fast?.changes() ?? 0,
    isFastHandle: (fh) => reader?.fast?.isFastHandle(fh) ?? false,
    answered: () =>
      reader?.fast?.answered() ?? {
        opens: 0,
        releases: 0,
        xattrs: 0,
        windows: 0,
        hits: 0,
        misses: 0,
        raised: 0,
      },
    pollWindow: (us) => reader?.fast?.pollWindow(us),
    onCycle: (listener) => reader?.fast?.onCycle(listener),
  };
  // FUSE_INIT is the first request: the reader exists by then.
  const ring: RequestRing = {
    prepare: () => options.ioUring && (reader?.ring?.prepare() ?? false),
    start: () => reader?.ring?.start(),
    queues: () => reader?.ring?.queues() ?? 0,
  };
  const handle = listen(send, fast, ring);
  const onRequest: RequestListener = (buf, length) => {
    if (expectsAnswer(buf.readUInt32LE(4))) poller.arrived(uniqueOf(buf));
    handle(buf, length);
  };
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const mountOptions = [
    'fd=3',
    'rootmode=40000',
    `user_id=${uid}`,
    `group_id=${gid}`,
    // The kernel checks mode bits and owners against the attributes we report.
    'default_permissions',
    // Modes and owners come from ZooKeeper, which any client its ACLs let write may set: a
    // root-owned setuid file stored there must not make a user of this host root.
    'nosuid',
    'nodev',
    ...(options.noExec ? ['noexec'] : []),
    ...(options.allowOther ? ['allow_other'] : []),
    ...(options.readOnly ? ['ro'] : []),
  ];
  try {
    // -i: no /sbin/mount.fuse helper, the kernel mounts our descriptor directly.
    await run(
      'mount',
      ['-i', '-t', `fuse.${options.subtype}`, '-o', mountOptions.join(','), options.fsname, dir],
      {
        logger: log,
        purpose: `mounting FUSE at ${dir}`,
        timeoutMs: 30_000,
        inheritFd: fd,
      },
    );
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  // Reads fail until the descriptor is mounted; the kernel has queued FUSE_INIT by now.
  const stores = batchWriter(fd, log);
  const stopStores = () => {
    if (!stores.close()) log.warn('a page-cache store to /dev/fuse is still in progress at close');
  };
  const requests = readRequests(fd, BUFFER_SIZE, onRequest, log, stopStores);
  reader = requests;
  requests.fast?.onCycle(poller.nativeCycle);
  void requests.ended.then(finish);
  const table = await readMountTable().catch(() => []);
  const connection = connectionId(table, dir);
  await ensureFusectl(table, log);

  const close = () => {
    if (closed) return;
    if (!finished && connection !== undefined) abortConnection(connection, log);
    closed = true;
    requests.close();
  };
  /** Whether the kernel still takes notifications on this descriptor. */
  const live = () => !closed && requests.isOpen();
  const notify = (message: Buffer): Promise<NodeJS.ErrnoException | null> =>
    live() ? new Promise((resolve) => write(fd, message, (error) => resolve(error))) : Promise.resolve(null);
  const store = (message: Buffer): Promise<NodeJS.ErrnoException | null> =>
    live() ? stores.write(message) : Promise.resolve(null);
  const prepareStores = () => {
    if (live()) stores.prepare();
  };
  return {
    send,
    notify,
    store,
    prepareStores,
    polling: () => pollingNow(poller.counters, fast),
    fast,
    readerKind: requests.kind,
    ringQueues: ring.queues,
    ended,
    close,
  };
}

/**
 * Ends a connection whose mount is gone but which something still holds
 * (a lazy unmount with files open), so that our waiting reads return.
 */
function abortConnection(id: number, log: Logger): void {
  const path = `${CONNECTIONS}/${id}/abort`;
  try {
    const fd = openSync(path, 'w');
    writeSync(fd, '1');
    closeSync(fd);
  } catch (error) {
    log.debug(`could not abort FUSE connection ${id} (${path}): ${String(error)}`);
  }
}
