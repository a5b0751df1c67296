/**
 * The closed set of errors a zkfs operation may end with. Every layer below
 * the FUSE face throws FsError with one of these codes; the single translator
 * to kernel errnos is toErrno() in src/adapters/fuse/errno.ts — update it together
 * with FS_ERROR_CODES. `reason` is for the daemon's log, never for the caller:
 * the kernel only carries the code, so anything a user needs to know about an
 * EIO or an EXDEV must be logged where it is raised.
 */

export const FS_ERROR_CODES = [
  'ENOENT',
  'EEXIST',
  'ENOTEMPTY',
  'ENOTDIR',
  'EISDIR',
  'EACCES',
  'EPERM',
  'EFBIG',
  'EROFS',
  'EXDEV',
  'EINVAL',
  'ENAMETOOLONG',
  'ENOTSUP',
  'ENODATA',
  'ERANGE',
  'EBADF',
  'EBUSY',
  'ENOSPC',
  'ETIMEDOUT',
  // A request that changes nothing, given up when its program was interrupted while it waited for
  // a lost connection (fuse/ops.ts): never thrown, counted.
  'EINTR',
  // A step of a path walk the kernel should take again, asking afresh: a create without O_EXCL
  // of a name made meanwhile (it then opens that file, as open(O_CREAT) does on a local disk), an
  // open of or a lookup in a node another client replaced.
  'ESTALE',
  'EIO',
] as const;

export type FsErrorCode = (typeof FS_ERROR_CODES)[number];

export class FsError extends Error {
  override readonly name = 'FsError';
  readonly code: FsErrorCode;

  constructor(code: FsErrorCode, reason?: string, options: { cause?: unknown } = {}) {
    // No stack: these are answers (a lookup of a name that is not there is the usual way to
    // create a file), raised several times per file copied, and capturing a stack trace cost
    // more than the rest of such a request. The code and reason say where it came from.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(reason ? `${code}: ${reason}` : code, options.cause === undefined ? undefined : options);
    Error.stackTraceLimit = limit;
    this.code = code;
  }
}

export function isFsError(error: unknown): error is FsError {
  return error instanceof FsError;
}

/** ZooKeeper's KeeperException codes by name, as node-zookeeper-client reports them. */
export type ZkErrorName =
  | 'NO_NODE'
  | 'NODE_EXISTS'
  | 'NOT_EMPTY'
  | 'NO_AUTH'
  | 'INVALID_ACL'
  | 'AUTH_FAILED'
  | 'BAD_VERSION'
  | 'BAD_ARGUMENTS'
  | 'NO_CHILDREN_FOR_EPHEMERALS'
  | 'CONNECTION_LOSS'
  | 'OPERATION_TIMEOUT'
  | 'SESSION_EXPIRED'
  | 'MARSHALLING_ERROR'
  | 'UNIMPLEMENTED'
  | 'SYSTEM_ERROR'
  | 'RUNTIME_INCONSISTENCY'
  | 'DATA_INCONSISTENCY'
  | 'API_ERROR'
  | 'TIMEOUT'
  | 'UNKNOWN';

/**
 * The errno a ZooKeeper failure means to a file tool. BAD_VERSION is a lost
 * race with another writer: callers that can retry do so before it gets here,
 * and callers that cannot (a buffered write) log why before the EIO.
 */
export function fsCodeForZk(name: ZkErrorName): FsErrorCode {
  switch (name) {
    case 'NO_NODE':
      return 'ENOENT';
    case 'NODE_EXISTS':
      return 'EEXIST';
    case 'NOT_EMPTY':
      return 'ENOTEMPTY';
    case 'NO_AUTH':
    case 'INVALID_ACL':
    case 'AUTH_FAILED':
      return 'EACCES';
    case 'BAD_ARGUMENTS':
      return 'EINVAL';
    case 'NO_CHILDREN_FOR_EPHEMERALS':
      return 'EPERM';
    case 'CONNECTION_LOSS':
    case 'OPERATION_TIMEOUT':
    case 'SESSION_EXPIRED':
    case 'TIMEOUT':
      return 'ETIMEDOUT';
    default:
      return 'EIO';
  }
}
