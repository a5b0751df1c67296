/**
 * The one place FsError codes become kernel errnos (keep it in step with
 * FS_ERROR_CODES in core/zkfs/errors.ts).
 */
import { type FsErrorCode, fsCodeForZk, isFsError } from '../../core/zkfs/errors.js';
import type { Logger } from '../logger.js';
import { ZkError } from '../zookeeper.js';

export const ERRNO: Record<FsErrorCode, number> = {
  ENOENT: -2,
  EINTR: -4,
  EIO: -5,
  EBADF: -9,
  EACCES: -13,
  EBUSY: -16,
  EEXIST: -17,
  EXDEV: -18,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  EFBIG: -27,
  ENOSPC: -28,
  EROFS: -30,
  ERANGE: -34,
  ENAMETOOLONG: -36,
  ENOTEMPTY: -39,
  ENODATA: -61,
  ENOTSUP: -95,
  ETIMEDOUT: -110,
  ESTALE: -116,
  EPERM: -1,
};

/** "Not implemented": the kernel stops asking for some operations after it (OPENDIR, ACCESS). */
export const ENOSYS = -38;

/** The FsError code an operation's failure stands for (a ZooKeeper failure no operation wrapped included). */
export function failureCode(error: unknown): FsErrorCode {
  if (isFsError(error)) return error.code;
  if (error instanceof ZkError) return fsCodeForZk(error.zkName);
  return 'EIO';
}

/**
 * The negative errno for anything an operation threw; unexpected errors are
 * logged as bugs. `what` names the operation; it is only asked for when a
 * line is logged: most failures are answers (a lookup of a name a program
 * is about to create), and building the text cost more than answering.
 */
export function toErrno(error: unknown, log: Logger, what: () => string): number {
  if (isFsError(error) || error instanceof ZkError) {
    const code = failureCode(error);
    // What a program cannot tell from its errno alone: why it failed is in the log.
    if (code === 'EIO' || code === 'ETIMEDOUT' || code === 'ENOSPC' || code === 'EFBIG') {
      log.warn(`${what()}: ${error.message}`);
    } else if (log.enabled('debug')) log.debug(`${what()}: ${error.message}`);
    return ERRNO[code];
  }
  log.error(
    `${what()}: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  return ERRNO.EIO;
}
