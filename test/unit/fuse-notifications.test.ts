import { describe, expect, it } from 'vitest';
import { invalAttrs, invalEntry, invalInode, storeData } from '../../src/core/fuse/notifications.js';
import { ROOT_ID } from '../../src/core/fuse/protocol.js';

describe('FUSE notifications', () => {
  it('INVAL_INODE: header with code 2 and unique 0, node id, offset 0, length 0 (everything)', () => {
    const m = invalInode(0x1234);
    expect(m.length).toBe(40);
    expect(m.readUInt32LE(0)).toBe(40);
    expect(m.readInt32LE(4)).toBe(2);
    expect(m.readBigUInt64LE(8)).toBe(0n);
    expect(m.readBigUInt64LE(16)).toBe(0x1234n);
    expect(m.readBigInt64LE(24)).toBe(0n);
    expect(m.readBigInt64LE(32)).toBe(0n);
  });

  it('INVAL_INODE of attributes alone: offset -1 (no pages)', () => {
    const m = invalAttrs(0x1234);
    expect(m.length).toBe(40);
    expect(m.readInt32LE(4)).toBe(2);
    expect(m.readBigUInt64LE(16)).toBe(0x1234n);
    expect(m.readBigInt64LE(24)).toBe(-1n);
    expect(m.readBigInt64LE(32)).toBe(0n);
  });

  it('INVAL_ENTRY: code 3, parent, name length in bytes, the name and a NUL', () => {
    const m = invalEntry(ROOT_ID, 'naïve');
    const name = Buffer.from('naïve');
    expect(m.length).toBe(32 + name.length + 1);
    expect(m.readUInt32LE(0)).toBe(m.length);
    expect(m.readInt32LE(4)).toBe(3);
    expect(m.readBigUInt64LE(16)).toBe(1n);
    expect(m.readUInt32LE(24)).toBe(name.length);
    expect(m.readUInt32LE(28)).toBe(0);
    expect(m.subarray(32, 32 + name.length)).toEqual(name);
    expect(m[m.length - 1]).toBe(0);
  });

  it('STORE: code 4, node id, offset 0, size, padding, then the bytes', () => {
    const data = Buffer.from('key=value\n');
    const m = storeData(42, data);
    expect(m.length).toBe(40 + data.length);
    expect(m.readUInt32LE(0)).toBe(m.length);
    expect(m.readInt32LE(4)).toBe(4);
    expect(m.readBigUInt64LE(8)).toBe(0n);
    expect(m.readBigUInt64LE(16)).toBe(42n);
    expect(m.readBigUInt64LE(24)).toBe(0n);
    expect(m.readUInt32LE(32)).toBe(data.length);
    expect(m.readUInt32LE(36)).toBe(0);
    expect(m.subarray(40)).toEqual(data);
  });
});
