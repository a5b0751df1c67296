import { describe, expect, it } from 'vitest';
import { initAnswer, offersRing } from '../../src/adapters/fuse/init.js';
import {
  ArgReader,
  expectsAnswer,
  InitFlag,
  InitFlag2,
  Op,
  opName,
  readHeader,
  readInit,
  readSetattr,
  SetattrValid,
  uniqueOf,
} from '../../src/core/fuse/protocol.js';
import {
  attrReply,
  direntReply,
  direntSize,
  entryReply,
  errorReply,
  handleOpened,
  initReply,
  nodesHandedOut,
  openReply,
  writeI64,
  writeU64,
  xattrReply,
} from '../../src/core/fuse/replies.js';

function request(opcode: number, nodeId: number, args: Buffer): Buffer {
  const header = Buffer.alloc(40);
  header.writeUInt32LE(40 + args.length, 0);
  header.writeUInt32LE(opcode, 4);
  header.writeBigUInt64LE(77n, 8);
  header.writeBigUInt64LE(BigInt(nodeId), 16);
  header.writeUInt32LE(1000, 24);
  return Buffer.concat([header, args]);
}

const attr = {
  ino: 5,
  size: 1000,
  mode: 0o100644,
  nlink: 1,
  uid: 1000,
  gid: 100,
  atimeMs: 1_700_000_000_123,
  mtimeMs: 1_700_000_001_456,
  ctimeMs: 1_700_000_002_789,
};

describe('FUSE protocol', () => {
  it('reads a request header and NUL-terminated names', () => {
    const buf = request(6, 9, Buffer.from('link\0target\0'));
    const h = readHeader(buf);
    expect(h).toMatchObject({ opcode: 6, unique: 77, nodeId: 9, uid: 1000, length: buf.length });
    const r = new ArgReader(buf, buf.length);
    expect(r.name()).toBe('link');
    expect(r.name()).toBe('target');
  });

  it('copies write data out of the reused buffer', () => {
    const args = Buffer.alloc(8);
    args.writeUInt32LE(3, 0);
    const buf = request(16, 2, Buffer.concat([args, Buffer.from('abc')]));
    const r = new ArgReader(buf, buf.length);
    r.skip(8);
    const data = r.bytes(3);
    buf.fill(0);
    expect(data.toString()).toBe('abc');
  });

  it('answers FUSE_INIT with version 7 and the minor agreed', () => {
    const init = Buffer.alloc(16);
    init.writeUInt32LE(7, 0);
    init.writeUInt32LE(45, 4);
    init.writeUInt32LE(131072, 8);
    init.writeUInt32LE(0xffff, 12);
    const buf = request(26, 0, init);
    expect(readInit(buf, buf.length)).toEqual({
      major: 7,
      minor: 45,
      maxReadahead: 131072,
      flags: 0xffff,
      flags2: 0,
    });
    const out = initReply(77n, 31, {
      maxReadahead: 4096,
      flags: 0x12,
      maxWrite: 131072,
      maxPages: 32,
      timeGranNs: 1e6,
    });
    expect(out.length).toBe(16 + 64);
    expect(out.readUInt32LE(0)).toBe(out.length);
    expect(out.readBigUInt64LE(8)).toBe(77n);
    expect([out.readUInt32LE(16), out.readUInt32LE(20), out.readUInt32LE(36), out.readUInt16LE(44)]).toEqual([
      7, 31, 131072, 32,
    ]);
    expect(out.readUInt32LE(48)).toBe(0);
  });

  it('takes requests over io_uring only where the kernel offers it and the queues are ready', () => {
    const init = Buffer.alloc(64);
    init.writeUInt32LE(7, 0);
    init.writeUInt32LE(45, 4);
    init.writeUInt32LE((InitFlag.INIT_EXT | InitFlag.ASYNC_READ) >>> 0, 12);
    init.writeUInt32LE(0x7fd, 16);
    const buf = request(26, 0, init);
    const offer = readInit(buf, buf.length);
    expect(offer.flags2).toBe(0x7fd);
    expect(offersRing(offer)).toBe(true);
    // flags at 12 and flags2 at 32 of the reply's body, after its 16-byte header
    const taken = initAnswer(1n, offer, true);
    expect(taken.readUInt32LE(16 + 12) & InitFlag.INIT_EXT).toBe(InitFlag.INIT_EXT);
    expect(taken.readUInt32LE(16 + 32)).toBe(InitFlag2.OVER_IO_URING);
    const declined = initAnswer(1n, offer, false);
    expect(declined.readUInt32LE(16 + 12) & InitFlag.INIT_EXT).toBe(0);
    expect(declined.readUInt32LE(16 + 32)).toBe(0);
    // Without INIT_EXT the kernel's flags2 is not there to read (or meant), and nothing is offered.
    init.writeUInt32LE(InitFlag.ASYNC_READ, 12);
    const older = readInit(request(26, 0, init), 40 + 64);
    expect(older.flags2).toBe(0);
    expect(initAnswer(1n, older, true).readUInt32LE(16 + 32)).toBe(0);
  });

  it('reads SETATTR with times in milliseconds', () => {
    const args = Buffer.alloc(88);
    args.writeUInt32LE(SetattrValid.MTIME | SetattrValid.SIZE, 0);
    args.writeBigUInt64LE(10n, 16); // size
    args.writeBigUInt64LE(1_700_000_000n, 40); // mtime
    args.writeUInt32LE(250_000_000, 60); // mtimensec
    args.writeUInt32LE(0o100600, 68);
    const buf = request(4, 3, args);
    const req = readSetattr(new ArgReader(buf, buf.length));
    expect(req).toMatchObject({ valid: SetattrValid.MTIME | SetattrValid.SIZE, size: 10, mode: 0o100600 });
    expect(req.mtimeMs).toBe(1_700_000_000_250);
  });

  it('answers an xattr size query, the value, or ERANGE when it does not fit', () => {
    const value = Buffer.from('abc');
    expect(xattrReply(1n, value, 0).readUInt32LE(16)).toBe(3);
    expect(xattrReply(1n, value, 8).subarray(16).toString()).toBe('abc');
    expect(xattrReply(1n, value, 2).readInt32LE(4)).toBe(-34);
  });

  it('encodes errors as a bare header with a negative errno', () => {
    const out = errorReply(5n, -2);
    expect(out.length).toBe(16);
    expect(out.readInt32LE(4)).toBe(-2);
  });

  it('encodes attributes with millisecond times split into seconds and nanoseconds', () => {
    const out = attrReply(1n, attr, 1.5);
    expect(out.length).toBe(16 + 104);
    expect(out.readBigUInt64LE(16)).toBe(1n); // valid seconds
    expect(out.readUInt32LE(24)).toBe(500_000_000);
    const a = 32;
    expect(out.readBigUInt64LE(a)).toBe(5n);
    expect(out.readBigUInt64LE(a + 8)).toBe(1000n);
    expect(out.readBigUInt64LE(a + 16)).toBe(2n); // 512-byte blocks
    expect(out.readBigInt64LE(a + 32)).toBe(1_700_000_001n); // mtime seconds
    expect(out.readUInt32LE(a + 52)).toBe(456_000_000);
    expect(out.readUInt32LE(a + 60)).toBe(0o100644);
    expect(out.readUInt32LE(a + 68)).toBe(1000);
  });

  it('writes 64-bit fields exactly across the 32-bit boundary, times before 1970 included', () => {
    const out = Buffer.alloc(8);
    for (const value of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 2 ** 53 - 1]) {
      writeU64(out, value, 0);
      expect(out.readBigUInt64LE(0)).toBe(BigInt(value));
    }
    for (const value of [0, 7, -1, -(2 ** 32), -(2 ** 32) - 3, 2 ** 40, -(2 ** 53 - 1)]) {
      writeI64(out, value, 0);
      expect(out.readBigInt64LE(0)).toBe(BigInt(value));
    }
    const old = attrReply(1n, { ...attr, mtimeMs: -1500 }, 1);
    expect(old.readBigInt64LE(32 + 32)).toBe(-2n); // 1.5 s before the epoch: -2 s + 0.5 s
    expect(old.readUInt32LE(32 + 52)).toBe(500_000_000);
  });

  it('encodes an entry with its node id', () => {
    const out = entryReply(1n, 42, attr, 10);
    expect(out.length).toBe(16 + 128);
    expect(out.readBigUInt64LE(16)).toBe(42n);
    expect(out.readBigUInt64LE(16 + 16)).toBe(10n); // entry valid
    expect(out.readBigUInt64LE(16 + 24)).toBe(10n); // attributes valid
    // Attributes the kernel must ask for again at once, under a name it may keep.
    const asking = entryReply(1n, 42, attr, 10, 0);
    expect(asking.readBigUInt64LE(16 + 16)).toBe(10n);
    expect(asking.readBigUInt64LE(16 + 24)).toBe(0n);
    expect(asking.readUInt32LE(16 + 36)).toBe(0);
  });

  it('lays out directory entries 8-byte aligned, with attributes for READDIRPLUS', () => {
    const entries = [
      { name: 'a', nextOffset: 1, ino: 3, mode: 0o040755 },
      { name: 'file.txt', nextOffset: 2, ino: 4, mode: 0o100644, nodeId: 4, attr },
    ];
    expect(direntSize(entries[0]!, false)).toBe(32);
    expect(direntSize(entries[1]!, true)).toBe(128 + 32);
    const plain = direntReply(1n, entries, false, 1);
    expect(plain.length).toBe(16 + 32 + 32);
    expect(plain.readUInt32LE(16 + 20)).toBe(4); // DT_DIR
    expect(plain.toString('utf8', 16 + 32 + 24, 16 + 32 + 32)).toBe('file.txt');
    const plus = direntReply(1n, entries, true, 1);
    expect(plus.length).toBe(16 + 160 + 160);
    expect(plus.readBigUInt64LE(16)).toBe(0n); // no node for an entry without one
    expect(plus.readBigUInt64LE(16 + 160)).toBe(4n);
    expect(plus.readUInt32LE(16 + 160 + 128 + 20)).toBe(8); // DT_REG
  });

  it('reads back the nodes and the handle a reply hands the kernel, for one never sent', () => {
    const entries = [
      { name: '.', nextOffset: 1, ino: 1, mode: 0o040755 },
      { name: 'a long name, longer than a block', nextOffset: 2, ino: 7, mode: 0o100644, nodeId: 7, attr },
      { name: 'gone', nextOffset: 3, ino: 0, mode: 0 },
      { name: 'b', nextOffset: 4, ino: 9, mode: 0o040755, nodeId: 9, attr },
    ];
    expect(nodesHandedOut(direntReply(1n, entries, true, 1), true)).toEqual([7, 9]);
    expect(nodesHandedOut(direntReply(1n, [], true, 1), true)).toEqual([]);
    expect(nodesHandedOut(entryReply(2, 2 ** 40 + 5, attr, 1), false)).toEqual([2 ** 40 + 5]);
    expect(nodesHandedOut(entryReply(2, 0, attr, 1), false)).toEqual([]); // a name known not to exist
    expect(nodesHandedOut(errorReply(2, -2), false)).toEqual([]);
    expect(handleOpened(openReply(3, 2 ** 33 + 1, 0))).toBe(2 ** 33 + 1);
    expect(handleOpened(errorReply(3, -5))).toBeUndefined();
  });

  it('gives a name its length in bytes, not characters, and pads the entry with zeros', () => {
    const names = ['café-ünïcode', '日本語', 'x'];
    const entries = names.map((name, i) => ({ name, nextOffset: i + 1, ino: 10 + i, mode: 0o100644 }));
    const out = direntReply(1n, entries, false, 1);
    let at = 16;
    for (const name of names) {
      const bytes = Buffer.byteLength(name);
      expect(out.readUInt32LE(at + 16)).toBe(bytes);
      expect(out.toString('utf8', at + 24, at + 24 + bytes)).toBe(name);
      const end = at + ((24 + bytes + 7) & ~7);
      expect([...out.subarray(at + 24 + bytes, end)].every((b) => b === 0)).toBe(true);
      at = end;
    }
    expect(at).toBe(out.length);
  });
});

describe('request ids', () => {
  it('reads the unique id of a request and of its answer as the same number, past 32 bits', () => {
    const request = Buffer.alloc(40);
    request.writeBigUInt64LE(0x1_0000_0007n, 8);
    const answer = Buffer.alloc(16);
    answer.writeBigUInt64LE(0x1_0000_0007n, 8);
    expect(uniqueOf(request)).toBe(0x1_0000_0007);
    expect(uniqueOf(answer)).toBe(uniqueOf(request));
    expect(uniqueOf(request)).toBe(Number(readHeader(request).unique));
  });

  it('answers with the exact id of the request, past 32 bits and past 2^53', () => {
    for (const id of [7n, 0x1_0000_0007n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
      const request = Buffer.alloc(40);
      request.writeBigUInt64LE(id, 8);
      const { unique } = readHeader(request);
      expect(typeof unique).toBe(id < 2n ** 53n ? 'number' : 'bigint');
      expect(errorReply(unique, -2).readBigUInt64LE(8)).toBe(id);
    }
  });

  it('reads node ids and other u64 fields past 32 bits', () => {
    const buf = request(Op.FORGET, 0x2_0000_0001, Buffer.alloc(8));
    buf.writeBigUInt64LE(0x3_0000_0002n, 40);
    expect(readHeader(buf).nodeId).toBe(0x2_0000_0001);
    expect(new ArgReader(buf, buf.length).u64()).toBe(0x3_0000_0002);
  });

  it('knows the requests the kernel expects no answer to', () => {
    expect(expectsAnswer(Op.FORGET)).toBe(false);
    expect(expectsAnswer(Op.BATCH_FORGET)).toBe(false);
    expect(expectsAnswer(Op.INTERRUPT)).toBe(false);
    expect(expectsAnswer(Op.OPEN)).toBe(true);
    expect(expectsAnswer(Op.RELEASE)).toBe(true);
  });

  it('names requests as the protocol does, in lower case', () => {
    expect(opName(Op.READDIRPLUS)).toBe('readdirplus');
    expect(opName(Op.OPEN)).toBe('open');
    expect(opName(Op.COPY_FILE_RANGE)).toBe('copy_file_range');
    expect(opName(4242)).toBe('opcode 4242');
  });
});
