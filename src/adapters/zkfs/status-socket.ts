/**
 * How `zkfsctl status` asks a mount's daemon about itself: the daemon
 * listens on a unix socket in the run directory (mode 0600, named after its
 * pid so the path stays short) and answers every connection with one JSON
 * document, then closes it. Nothing in it is secret.
 */
import { chmod, readdir, unlink } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { Op, opName } from '../../core/fuse/protocol.js';
import type { PollCounters } from '../fuse/busy-poll.js';
import type { ReaderStatus } from '../fuse.js';
import type { Logger } from '../logger.js';
import { isProcessAlive } from '../processes.js';
import type { KernelNotifier } from './kernel-notify.js';
import { type MountRecord, runDir } from './run-state.js';
import type { SessionCounters, SessionState, ZkSession } from './session.js';
import type { ZkVfs } from './vfs.js';
import type { CacheStatus, WatchedTree } from './watch-cache.js';

/** The daemon's run record (less its log path) plus live counters. */
export interface MountStatus extends Omit<MountRecord, 'logFile'> {
  session: SessionCounters & {
    id: string;
    state: SessionState;
    server?: string | undefined;
    timeoutMs: number;
    connectedSince?: string | undefined;
  };
  cache: CacheStatus;
  /**
   * Filesystem operations served: in all, by request (`open`, `readdirplus`, …,
   * as the FUSE protocol names them, most frequent first), and those that
   * failed by errno name. `byName` is absent from a daemon started by an
   * older zkfsctl: daemons outlive an upgrade of the CLI.
   */
  operations: { total: number; byName?: Record<string, number>; errors: Record<string, number> };
  openFiles: number;
  kernel: {
    attrTimeoutMs: number;
    /** Whether the daemon tells the kernel what changed (else it relies on the timeout). */
    notifications: boolean;
    /** Cached kernel entries dropped because they changed. */
    invalidations: number;
    /** Files whose content went into the kernel's page cache before their first read. */
    pagesStored: number;
  };
  /**
   * Polling for the next request after answers (--busy-poll); absent from a
   * daemon older than it, and without its trials from one older than those.
   */
  polling?: Omit<PollCounters, PollTrialCounter> & Partial<Pick<PollCounters, PollTrialCounter>>;
  /**
   * How the daemon reads requests, and the opens for reading (and their
   * releases) and attribute queries its native reader answered without
   * JavaScript, which are counted in `operations` too. Absent from a daemon
   * older than it.
   */
  reader?: ReaderStatus;
  /**
   * The daemon's resident memory, the cache and the runtime included (the
   * cache budget bounds only the cache). Absent from a daemon older than it.
   */
  memory?: { residentBytes: number };
}

/** What a daemon older than the trials of polling does not report. */
type PollTrialCounter = 'trials' | 'won' | 'pays';

export interface StatusSources {
  mount: Pick<MountStatus, 'dir' | 'hosts' | 'path' | 'mode' | 'readOnly' | 'startedAt'>;
  session: ZkSession;
  tree: WatchedTree;
  vfs: ZkVfs;
  notifier: KernelNotifier | undefined;
  attrTimeoutMs: number;
  polling: () => PollCounters;
  reader: () => ReaderStatus;
}

/** Counts by opcode as counts by request name, the most frequent first. */
function byName(byOpcode: readonly number[]): Record<string, number> {
  const counted: [string, number][] = [];
  byOpcode.forEach((count, opcode) => {
    if (count > 0) counted.push([opName(opcode), count]);
  });
  return Object.fromEntries(counted.sort((a, b) => b[1] - a[1]));
}

/** The status document of a live mount. */
export function collectStatus(s: StatusSources): MountStatus {
  const since = s.session.connectedSince;
  const reader = s.reader();
  // Requests the native reader answered never reached the filesystem's own counts.
  const byOpcode = [...s.vfs.counters.byOpcode];
  byOpcode[Op.OPEN] = (byOpcode[Op.OPEN] ?? 0) + reader.opens;
  byOpcode[Op.RELEASE] = (byOpcode[Op.RELEASE] ?? 0) + reader.releases;
  byOpcode[Op.GETXATTR] = (byOpcode[Op.GETXATTR] ?? 0) + (reader.xattrs ?? 0);
  return {
    ...s.mount,
    pid: process.pid,
    session: {
      id: `0x${s.session.sessionId}`,
      state: s.session.state,
      server: s.session.server,
      timeoutMs: s.session.sessionTimeoutMs,
      connectedSince: since === undefined ? undefined : new Date(since).toISOString(),
      ...s.session.counters,
    },
    cache: s.tree.status(),
    operations: {
      total: byOpcode.reduce((sum, count) => sum + (count ?? 0), 0),
      byName: byName(byOpcode),
      errors: { ...s.vfs.counters.errors },
    },
    openFiles: s.vfs.openHandles,
    kernel: {
      // What replies give the kernel now.
      attrTimeoutMs: s.tree.kernelKeepsMs(s.attrTimeoutMs),
      notifications: s.notifier !== undefined,
      invalidations: s.notifier?.counters.sent ?? 0,
      pagesStored: s.notifier?.counters.stored ?? 0,
    },
    polling: s.polling(),
    reader,
    memory: { residentBytes: process.memoryUsage.rss() },
  };
}

export function statusSocketPath(pid: number, dir = runDir()): string {
  return join(dir, `zkfsctl-${pid}.sock`);
}

/**
 * Removes the sockets of daemons that died without closing them (SIGKILL, the
 * OOM killer): nothing will ever answer on them. A socket whose pid is alive
 * stays, whoever holds that pid now.
 */
export async function removeDeadStatusSockets(dir = runDir()): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const pid = /^zkfsctl-(\d+)\.sock$/.exec(name)?.[1];
    if (pid === undefined || isProcessAlive(Number(pid))) continue;
    const path = join(dir, name);
    const gone = await unlink(path).then(
      () => true,
      () => false,
    );
    if (gone) removed.push(path);
  }
  return removed;
}

export interface StatusServer {
  path: string;
  close(): Promise<void>;
}

/** Serves `collect()` on `path` until closed. A failure to listen is logged, not fatal. */
export async function serveStatus(
  path: string,
  collect: () => MountStatus,
  log: Logger,
): Promise<StatusServer> {
  await unlink(path).catch(() => {});
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let body: string;
    try {
      body = `${JSON.stringify(collect())}\n`;
    } catch (error) {
      body = `${JSON.stringify({ error: error instanceof Error ? error.message : String(error) })}\n`;
    }
    socket.end(body);
  });
  server.unref();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(path, 0o600);
  } catch (error) {
    log.warn(`status socket ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    path,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await unlink(path).catch(() => {});
    },
  };
}

/** The daemon's answer on `path`; rejects when nothing answers within `timeoutMs`. */
export function queryStatus(path: string, timeoutMs = 3000): Promise<MountStatus> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = createConnection(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        const parsed = JSON.parse(text) as MountStatus | { error: string };
        if ('error' in parsed) reject(new Error(parsed.error));
        else resolve(parsed);
      } catch {
        reject(new Error('the daemon sent no valid status'));
      }
    });
  });
}
