/**
 * `zkfsctl umount DIR`: unmounts a zkfs mount and waits for its daemon to
 * flush, close its ZooKeeper session and exit. DIR must be a zkfs mount
 * (type fuse.zkfs in the mount table); anything else is refused by name.
 */
import { unlink } from 'node:fs/promises';
import { run, ToolError } from '../adapters/exec.js';
import { isProcessAlive } from '../adapters/processes.js';
import {
  isDaemonAlive,
  type MountRecord,
  readMountRecord,
  removeMountRecord,
} from '../adapters/zkfs/run-state.js';
import { statusSocketPath } from '../adapters/zkfs/status-socket.js';
import { OperationError } from '../core/errors.js';
import type { CommandContext } from './context.js';
import { zkMountPoint } from './zk-mount-point.js';

export interface UmountZkOptions {
  dir: string;
  /** Detach even while files are open (the daemon finishes once they are closed). */
  lazy?: boolean | undefined;
  /** How long to wait for the daemon to exit, in ms (default 30 s). */
  timeoutMs?: number | undefined;
}

export interface UmountZkResult {
  dir: string;
  /** The daemon that served it, when known. */
  pid?: number | undefined;
  lazy: boolean;
  /** False when the daemon was still running when the wait ended (lazy unmount with open files). */
  daemonExited: boolean;
}

async function waitForExit(daemon: MountRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isDaemonAlive(daemon)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !isDaemonAlive(daemon);
}

export async function umountZk(options: UmountZkOptions, ctx: CommandContext): Promise<UmountZkResult> {
  const { dir, shown } = await zkMountPoint(options.dir);
  const lazy = options.lazy ?? false;
  const record = await readMountRecord(dir).catch(() => undefined);
  const daemon = record && isDaemonAlive(record) ? record : undefined;
  try {
    await run('fusermount', [lazy ? '-uz' : '-u', dir], {
      logger: ctx.log,
      purpose: `unmounting ${dir}`,
      timeoutMs: 60_000,
    });
  } catch (error) {
    if (error instanceof ToolError && /busy/i.test(error.stderr)) {
      throw new OperationError(`${shown} is busy: files or directories in it are still in use`, {
        detail: 'close them (fuser -vm DIR shows which processes) or unmount with --lazy',
      });
    }
    throw error;
  }
  let daemonExited = true;
  if (daemon !== undefined) {
    const { pid } = daemon;
    ctx.progress(`waiting for the daemon (pid ${pid}) to exit`);
    daemonExited = await waitForExit(daemon, lazy ? 2_000 : (options.timeoutMs ?? 30_000));
    if (!daemonExited && !lazy) {
      throw new OperationError(`${shown} is unmounted but its daemon (pid ${pid}) has not exited`, {
        detail: record?.logFile ? `see its log: ${record.logFile}` : undefined,
      });
    }
  }
  if (daemonExited) {
    await removeMountRecord(dir, record?.pid);
    // A daemon that was killed left its status socket behind. Its pid taken by a process since,
    // the socket there may be that process's own: another mount's daemon's.
    if (record && !isProcessAlive(record.pid)) await unlink(statusSocketPath(record.pid)).catch(() => {});
  }
  ctx.log.info(`unmounted ${dir}`);
  return { dir, pid: record?.pid, lazy, daemonExited };
}
