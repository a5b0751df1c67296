import { describe, expect, it } from 'vitest';
import { decodeMultiRead } from '../../../src/adapters/zkfs/zk-wire.js';
import type { ZkStat } from '../../../src/adapters/zookeeper.js';

/** A multiRead reply frame as the server writes it: reply header, then one result per read. */
function frame(results: (Buffer | number)[], done = true): Buffer {
  const parts: Buffer[] = [];
  const header = (type: number, isDone: boolean, err: number) => {
    const b = Buffer.alloc(9);
    b.writeInt32BE(type, 0);
    b.writeUInt8(isDone ? 1 : 0, 4);
    b.writeInt32BE(err, 5);
    return b;
  };
  for (const result of results) {
    if (typeof result === 'number') {
      const err = Buffer.alloc(4);
      err.writeInt32BE(result, 0);
      parts.push(header(-1, false, result), err);
    } else {
      const length = Buffer.alloc(4);
      length.writeInt32BE(result.length, 0);
      const stat = Buffer.alloc(68);
      stat.writeBigInt64BE(7n, 0); // czxid
      stat.writeBigInt64BE(1_700_000_000_000n, 24); // mtime
      stat.writeInt32BE(3, 32); // version
      stat.writeInt32BE(result.length, 52); // dataLength
      parts.push(header(4, false, 0), length, result, stat);
    }
  }
  if (done) parts.push(header(-1, true, -1));
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(20);
  head.writeInt32BE(16 + body.length, 0);
  head.writeInt32BE(5, 4); // xid
  return Buffer.concat([head, body]);
}

describe('multiRead replies', () => {
  it('gives each read its data and stat, or its error code, in order', () => {
    const reads = decodeMultiRead(frame([Buffer.from('one'), -101, Buffer.alloc(0)]), 3);
    expect(reads).toHaveLength(3);
    const first = reads[0] as { data: Buffer; stat: ZkStat };
    expect(first.data.toString()).toBe('one');
    expect(first.stat).toMatchObject({ czxid: 7n, mtimeMs: 1_700_000_000_000, version: 3, dataLength: 3 });
    expect(reads[1]).toBe(-101);
    expect((reads[2] as { data: Buffer }).data.length).toBe(0);
  });

  it('copies the data out, so a cached node does not keep the whole reply alive', () => {
    const big = Buffer.alloc(64 * 1024, 1); // a reply of its own memory, not from Node's small-buffer pool
    const reply = frame([Buffer.from('abc'), big]);
    const [small] = decodeMultiRead(reply, 2) as { data: Buffer }[];
    expect(small?.data.buffer).not.toBe(reply.buffer);
    reply.fill(0);
    expect(small?.data.toString()).toBe('abc');
  });

  it('refuses a reply cut short, one with another number of results, or a result of another kind', () => {
    const whole = frame([Buffer.from('abcdef')]);
    expect(() => decodeMultiRead(whole.subarray(0, whole.length - 20), 1)).toThrow(/cut short/);
    expect(() => decodeMultiRead(frame([Buffer.from('a')], false), 1)).toThrow(/cut short/);
    expect(() => decodeMultiRead(frame([Buffer.from('a'), Buffer.from('b')]), 1)).toThrow(/2 results for 1/);
    const odd = frame([Buffer.from('a')]);
    odd.writeInt32BE(8, 20); // getChildren
    expect(() => decodeMultiRead(odd, 1)).toThrow(/type 8/);
  });
});
