import { createRequire } from 'node:module';
import zookeeper from 'node-zookeeper-client';
import { describe, expect, it } from 'vitest';
import { requestBytes, type ZkOp } from '../../../src/core/zkfs/zk-ops.js';
import {
  decodeMultiReply,
  multiBodyBytes,
  REPLY_BODY,
  STAT_BYTES,
  setDataBodyBytes,
  writeMultiBody,
  writeSetDataBody,
} from '../../../src/core/zkfs/zk-write-codec.js';

/** The library's own encoder: what the server has always been sent. */
const jute = createRequire(import.meta.url)('node-zookeeper-client/lib/jute/index.js');

/** The body (after length, xid and op code) of a request as the library encodes it. */
function libraryBody(type: number, payload: unknown): Buffer {
  const header = new jute.protocol.RequestHeader();
  header.type = type;
  return (new jute.Request(header, payload).toBuffer() as Buffer).subarray(12);
}

function ours(bytes: number, write: (buffer: Buffer, offset: number) => number): Buffer {
  const buffer = Buffer.alloc(bytes);
  expect(write(buffer, 0)).toBe(bytes); // sized exactly: nothing left over, nothing cut
  return buffer;
}

describe('write requests encoded without the library', () => {
  it('encodes setData exactly as the library does', () => {
    for (const [path, data, version] of [
      ['/a', Buffer.from('hello'), 0],
      ['/dir/naïve ✓', Buffer.alloc(0), -1],
      ['/big', Buffer.alloc(70_000, 7), 123_456],
    ] as const) {
      const payload = new jute.protocol.SetDataRequest();
      payload.path = path;
      payload.data = data;
      payload.version = version;
      const body = ours(setDataBodyBytes(path, data.length), (b, o) =>
        writeSetDataBody(b, o, path, data, version),
      );
      expect(body.equals(libraryBody(jute.OP_CODES.SET_DATA, payload))).toBe(true);
    }
  });

  it('encodes a multi of every kind of op exactly as the library does', () => {
    const ops: ZkOp[] = [
      {
        op: 'create',
        path: '/d/f ✓',
        data: Buffer.alloc(0),
        acl: [
          { perms: 31, scheme: 'world', id: 'anyone' },
          { perms: 1, scheme: 'digest', id: 'u:hash=' },
        ],
      },
      { op: 'setData', path: '/d/__zkfs__', data: Buffer.from('{"zkfs":1,"e":{}}'), version: 4 },
      { op: 'delete', path: '/d/old', version: -1 },
      { op: 'check', path: '/d', version: 9 },
    ];
    const libraryOps = ops.map((op) => {
      switch (op.op) {
        case 'create':
          return {
            type: jute.OP_CODES.CREATE,
            path: op.path,
            data: op.data,
            acls: op.acl.map((a) => new zookeeper.ACL(a.perms, new zookeeper.Id(a.scheme, a.id))),
            mode: zookeeper.CreateMode.PERSISTENT,
          };
        case 'setData':
          return { type: jute.OP_CODES.SET_DATA, path: op.path, data: op.data, version: op.version };
        case 'delete':
          return { type: jute.OP_CODES.DELETE, path: op.path, version: op.version };
        default:
          return { type: jute.OP_CODES.CHECK, path: op.path, version: op.version };
      }
    });
    const body = ours(multiBodyBytes(ops), (b, o) => writeMultiBody(b, o, ops));
    const library = libraryBody(jute.OP_CODES.MULTI, new jute.TransactionRequest(libraryOps));
    expect(body.equals(library)).toBe(true);
  });
});

describe('request sizes', () => {
  /** Bytes of a request as the library sends it, less its length prefix: what the server measures. */
  const sent = (type: number, payload: unknown) => {
    const header = new jute.protocol.RequestHeader();
    header.type = type;
    return (new jute.Request(header, payload).toBuffer() as Buffer).length - 4;
  };
  const acl = [{ perms: 31, scheme: 'world', id: 'anyone' }];

  it('counts a single op as its plain request, and several as a multi', () => {
    const create = new jute.protocol.CreateRequest();
    create.path = '/d/new ✓';
    create.data = Buffer.from('content');
    create.acl = acl.map((a) => new jute.data.ACL(a.perms, new jute.data.Id(a.scheme, a.id)));
    create.flags = 0;
    expect(requestBytes([{ op: 'create', path: create.path, data: create.data, acl }])).toBe(
      sent(jute.OP_CODES.CREATE, create),
    );

    const setData = new jute.protocol.SetDataRequest();
    setData.path = '/d/__zkfs__';
    setData.data = Buffer.alloc(5000, 1);
    setData.version = 3;
    expect(requestBytes([{ op: 'setData', path: setData.path, data: setData.data, version: 3 }])).toBe(
      sent(jute.OP_CODES.SET_DATA, setData),
    );

    const ops: ZkOp[] = [
      { op: 'create', path: '/d/f', data: Buffer.alloc(0), acl },
      { op: 'setData', path: '/d/__zkfs__', data: Buffer.alloc(5000, 1), version: 3 },
    ];
    const multi = new jute.TransactionRequest([
      {
        type: jute.OP_CODES.CREATE,
        path: '/d/f',
        data: Buffer.alloc(0),
        acls: acl.map((a) => new zookeeper.ACL(a.perms, new zookeeper.Id(a.scheme, a.id))),
        mode: zookeeper.CreateMode.PERSISTENT,
      },
      { type: jute.OP_CODES.SET_DATA, path: '/d/__zkfs__', data: Buffer.alloc(5000, 1), version: 3 },
    ]);
    expect(requestBytes(ops)).toBe(sent(jute.OP_CODES.MULTI, multi));
  });
});

/** A reply frame: length, xid, zxid, err 0, then `body`. */
function frame(...body: Buffer[]): Buffer {
  const rest = Buffer.concat(body);
  const head = Buffer.alloc(REPLY_BODY);
  head.writeInt32BE(REPLY_BODY - 4 + rest.length, 0);
  head.writeInt32BE(7, 4);
  head.writeBigInt64BE(99n, 8);
  return Buffer.concat([head, rest]);
}

function result(type: number, done: boolean, err: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeInt32BE(type, 0);
  header.writeUInt8(done ? 1 : 0, 4);
  header.writeInt32BE(err, 5);
  return Buffer.concat([header, body]);
}

const int = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
};
const text = (s: string) => Buffer.concat([int(Buffer.byteLength(s)), Buffer.from(s)]);

describe('multi replies decoded without the library', () => {
  /** A stat whose first field is `n`: which stat the reader was pointed at. */
  const statNumbered = (n: number) => {
    const stat = Buffer.alloc(STAT_BYTES);
    stat.writeBigInt64BE(BigInt(n), 0);
    return stat;
  };
  const firstField = (buffer: Buffer, offset: number) => Number(buffer.readBigInt64BE(offset));

  it('reads every op of a transaction that was done, with the stats it carries', () => {
    const reply = frame(
      result(1, false, 0, text('/d/f')),
      result(15, false, 0, Buffer.concat([text('/d/g'), statNumbered(15)])),
      result(5, false, 0, statNumbered(5)),
      result(2, false, 0),
      result(13, false, 0),
      result(-1, true, -1),
    );
    expect(decodeMultiReply(reply, firstField)).toEqual({
      codes: [0, 0, 0, 0, 0],
      stats: [undefined, 15, 5, undefined, undefined],
    });
  });

  it('gives the failed op its code, and the ops after it theirs', () => {
    // What a server sends when the second of three ops meets a newer version.
    const reply = frame(
      result(-1, false, 0, int(0)),
      result(-1, false, 0, int(-103)),
      result(-1, false, 0, int(-2)),
      result(-1, true, -1),
    );
    expect(decodeMultiReply(reply, firstField).codes).toEqual([0, -103, -2]);
  });

  it('refuses a reply that is cut short or holds what no request asked for', () => {
    expect(() => decodeMultiReply(frame(result(5, false, 0, Buffer.alloc(10))), firstField)).toThrow(
      /cut short/,
    );
    expect(() => decodeMultiReply(frame(result(77, false, 0), result(-1, true, -1)), firstField)).toThrow(
      /type 77/,
    );
  });
});
