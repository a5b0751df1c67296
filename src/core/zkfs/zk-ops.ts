/**
 * ZooKeeper write operations as plain data, and the size of the request
 * that carries them. A server drops the connection (it does not answer with
 * an error) when a request exceeds its jute.maxbuffer, 1048575 bytes by
 * default, and this client library refuses more than 1 MiB outright, so
 * zkfs measures each write before sending it: an oversized setData becomes
 * EFBIG and an oversized rename transaction EXDEV.
 */

/** The default jute.maxbuffer of a ZooKeeper server, and the largest request zkfs sends. */
export const ZK_MAX_REQUEST_BYTES = 1048575;

export interface AclEntry {
  perms: number;
  scheme: string;
  id: string;
}

/**
 * For a document other hosts rewrite: whether its data, read back after the
 * reply to this write was lost, shows the write applied though other
 * writes came after it (write-proof.ts). Without it, only the very bytes
 * written do.
 */
export type ShowsApplied = (now: Buffer) => boolean;

/**
 * For a document a write adds its token to (write-proof.ts): whether its
 * data, read back, holds the token. That decides for the whole multi,
 * whatever other hosts did to its other nodes since.
 */
export type ShowsProof = (now: Buffer) => boolean;

export type ZkOp =
  | {
      op: 'create';
      path: string;
      data: Buffer;
      acl: readonly AclEntry[];
      /** False when the writer knows what it needs of the new node, so the mount need not read its stat back. */
      readBack?: boolean;
      applied?: ShowsApplied;
      proof?: ShowsProof;
    }
  | { op: 'delete'; path: string; version: number }
  | {
      op: 'setData';
      path: string;
      data: Buffer;
      version: number;
      applied?: ShowsApplied;
      proof?: ShowsProof;
    }
  | { op: 'check'; path: string; version: number };

/**
 * The write of a document (a directory's metadata, the symlink table): a
 * create when it did not exist when read (`version` undefined), else a
 * setData at the version read.
 */
export function docWrite(
  path: string,
  version: number | undefined,
  data: Buffer,
  acl: readonly AclEntry[],
  applied?: ShowsApplied,
  proof?: ShowsProof,
): ZkOp {
  return version === undefined
    ? { op: 'create', path, data, acl, applied, proof }
    : { op: 'setData', path, data, version, applied, proof };
}

/** Any version (ZooKeeper's -1). */
export const ANY_VERSION = -1;

function str(s: string): number {
  return 4 + Buffer.byteLength(s);
}

/** Bytes one op adds to a multi request (its MultiHeader included). */
export function opBytes(op: ZkOp): number {
  const header = 9; // type, done flag, err
  switch (op.op) {
    case 'create':
      return (
        header +
        str(op.path) +
        4 +
        op.data.length +
        4 +
        op.acl.reduce((n, a) => n + 4 + str(a.scheme) + str(a.id), 0) +
        4
      );
    case 'delete':
    case 'check':
      return header + str(op.path) + 4;
    case 'setData':
      return header + str(op.path) + 4 + op.data.length + 4;
  }
}

/** Bytes of a whole multi request as the server counts them (length prefix excluded). */
export function multiBytes(ops: readonly ZkOp[]): number {
  return 8 + ops.reduce((n, op) => n + opBytes(op), 0) + 9;
}

/** Bytes of the request that carries `ops`: a plain one for a single op, else a multi. */
export function requestBytes(ops: readonly ZkOp[]): number {
  const [only] = ops;
  // A plain request has its type and xid where a multi's op has its MultiHeader.
  return ops.length === 1 && only ? opBytes(only) - 9 + 8 : multiBytes(ops);
}

/** Bytes of a plain setData request for `dataLength` bytes at `path`. */
export function setDataBytes(path: string, dataLength: number): number {
  return 8 + str(path) + 4 + dataLength + 4;
}
