/**
 * The bytes of ZooKeeper's write requests (setData and multi) and what their
 * replies say, for a connection that sends them itself (adapters/zkfs/
 * zk-wire.ts) instead of through node-zookeeper-client's generic records,
 * which copied every op's data, allocated a buffer per 64-bit field of every
 * stat, and took about a tenth of the daemon's time while `cp -r` wrote
 * into a mount. Bodies only: the connection adds the length, xid and op
 * code. Sizes come from zk-ops.ts, which zkfs already uses to keep every
 * request under the server's limit.
 */
import { type AclEntry, multiBytes, setDataBytes, type ZkOp } from './zk-ops.js';

export const OP_SET_DATA = 5;
export const OP_MULTI = 14;

const OP_CODES: Record<ZkOp['op'], number> = { create: 1, delete: 2, setData: 5, check: 13 };
/** Result types of a multi reply beyond the op codes. */
const OP_CREATE2 = 15;
const OP_ERROR = -1;
/** CreateMode.PERSISTENT. */
const PERSISTENT = 0;
/** A zxid, two times, a version triple, an owner, a length, a count and a zxid. */
export const STAT_BYTES = 68;
/** Where a reply's body starts in its frame: length, xid, zxid, err. */
export const REPLY_BODY = 20;

/** Bytes of the body of a setData request. */
export function setDataBodyBytes(path: string, dataLength: number): number {
  return setDataBytes(path, dataLength) - 8;
}

export function writeSetDataBody(
  buffer: Buffer,
  offset: number,
  path: string,
  data: Buffer,
  version: number,
): number {
  offset = writeString(buffer, offset, path);
  offset = writeBytes(buffer, offset, data);
  return buffer.writeInt32BE(version, offset);
}

/** Bytes of the body of a multi request carrying `ops` (each create with its ACL filled in). */
export function multiBodyBytes(ops: readonly ZkOp[]): number {
  return multiBytes(ops) - 8;
}

export function writeMultiBody(buffer: Buffer, offset: number, ops: readonly ZkOp[]): number {
  for (const op of ops) {
    offset = buffer.writeInt32BE(OP_CODES[op.op], offset);
    offset = buffer.writeUInt8(0, offset); // not done
    offset = buffer.writeInt32BE(-1, offset); // err, unused in a request
    offset = writeString(buffer, offset, op.path);
    switch (op.op) {
      case 'create':
        offset = writeBytes(buffer, offset, op.data);
        offset = writeAcl(buffer, offset, op.acl);
        offset = buffer.writeInt32BE(PERSISTENT, offset);
        break;
      case 'setData':
        offset = writeBytes(buffer, offset, op.data);
        offset = buffer.writeInt32BE(op.version, offset);
        break;
      case 'delete':
      case 'check':
        offset = buffer.writeInt32BE(op.version, offset);
        break;
    }
  }
  offset = buffer.writeInt32BE(-1, offset);
  offset = buffer.writeUInt8(1, offset); // done
  return buffer.writeInt32BE(-1, offset);
}

/** What a multi reply says of each op, in order. */
export interface MultiReply<S> {
  /**
   * 0 where the op was done, else the error code the server gave it. When a
   * multi fails, the op at fault has its own code, the ops before it 0, and
   * those after it -2 (RUNTIMEINCONSISTENCY): nothing was done.
   */
  codes: number[];
  /** The node's stat after the op, where the reply has one (a setData, a create2); else undefined. */
  stats: (S | undefined)[];
}

/**
 * Decodes a multi reply's frame (whose header said no error). `readStat`
 * reads a stat at an offset of the frame: the connection's own reader.
 */
export function decodeMultiReply<S>(
  frame: Buffer,
  readStat: (frame: Buffer, offset: number) => S,
): MultiReply<S> {
  const codes: number[] = [];
  const stats: (S | undefined)[] = [];
  const stat = (offset: number): S => {
    need(frame, offset, STAT_BYTES);
    return readStat(frame, offset);
  };
  let offset = REPLY_BODY;
  for (;;) {
    need(frame, offset, 9);
    const type = frame.readInt32BE(offset);
    const done = frame.readUInt8(offset + 4) !== 0;
    offset += 9;
    if (done) return { codes, stats };
    let after: S | undefined;
    switch (type) {
      case OP_CODES.create:
        offset = skipString(frame, offset);
        codes.push(0);
        break;
      case OP_CREATE2:
        offset = skipString(frame, offset);
        after = stat(offset);
        offset += STAT_BYTES;
        codes.push(0);
        break;
      case OP_CODES.setData:
        after = stat(offset);
        offset += STAT_BYTES;
        codes.push(0);
        break;
      case OP_CODES.delete:
      case OP_CODES.check:
        codes.push(0);
        break;
      case OP_ERROR:
        need(frame, offset, 4);
        codes.push(frame.readInt32BE(offset));
        offset += 4;
        break;
      default:
        throw new Error(`a multi reply holds a result of type ${type}`);
    }
    stats.push(after);
  }
}

function need(frame: Buffer, offset: number, bytes: number): void {
  if (offset + bytes > frame.length) throw new Error('a multi reply is cut short');
}

function skipString(frame: Buffer, offset: number): number {
  need(frame, offset, 4);
  const length = frame.readInt32BE(offset);
  return offset + 4 + Math.max(0, length);
}

function writeString(buffer: Buffer, offset: number, text: string): number {
  const length = buffer.write(text, offset + 4, 'utf8');
  buffer.writeInt32BE(length, offset);
  return offset + 4 + length;
}

function writeBytes(buffer: Buffer, offset: number, data: Buffer): number {
  offset = buffer.writeInt32BE(data.length, offset);
  return offset + data.copy(buffer, offset);
}

function writeAcl(buffer: Buffer, offset: number, acl: readonly AclEntry[]): number {
  offset = buffer.writeInt32BE(acl.length, offset);
  for (const entry of acl) {
    offset = buffer.writeInt32BE(entry.perms, offset);
    offset = writeString(buffer, offset, entry.scheme);
    offset = writeString(buffer, offset, entry.id);
  }
  return offset;
}
