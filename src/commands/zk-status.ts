/**
 * `zkfsctl status DIR`: what the daemon serving a zkfs mount knows about
 * itself — its ZooKeeper session and server, its cache (size, hit rate,
 * mode), and counts of requests, operations and errors. DIR must be a zkfs
 * mount made on this host (its run record names the daemon); the daemon is
 * asked over its status socket and must answer within `timeoutMs`.
 */
import { isDaemonAlive, readMountRecord, runDir } from '../adapters/zkfs/run-state.js';
import { type MountStatus, queryStatus, statusSocketPath } from '../adapters/zkfs/status-socket.js';
import { errorMessage, OperationError } from '../core/errors.js';
import type { CommandContext } from './context.js';
import { zkMountPoint } from './zk-mount-point.js';

export interface ZkStatusOptions {
  /** The mount point. */
  dir: string;
  /** How long to wait for the daemon's answer (ms, default 3000). */
  timeoutMs?: number | undefined;
}

export type ZkStatusResult = MountStatus;

export async function zkStatus(options: ZkStatusOptions, ctx: CommandContext): Promise<ZkStatusResult> {
  const { dir, shown } = await zkMountPoint(options.dir);
  const record = await readMountRecord(dir);
  if (!record) {
    throw new OperationError(`no daemon is recorded for ${shown} in ${runDir()}`, {
      detail: 'was it mounted with another ZKFSCTL_RUN_DIR, or by another host namespace?',
    });
  }
  if (!isDaemonAlive(record)) {
    throw new OperationError(`the daemon of ${shown} (pid ${record.pid}) is not running`, {
      detail: `the mount is dead; take it down with: zkfsctl umount ${dir} (add --lazy if programs still use it)`,
    });
  }
  const socket = statusSocketPath(record.pid);
  ctx.log.debug(`asking ${socket}`);
  try {
    return await queryStatus(socket, options.timeoutMs ?? 3000);
  } catch (error) {
    throw new OperationError(
      `the daemon of ${shown} (pid ${record.pid}) does not answer: ${errorMessage(error)}`,
      {
        detail: record.logFile ? `see its log ${record.logFile}` : undefined,
      },
    );
  }
}
