import { describe, expect, it } from 'vitest';
import { openReply } from '../../src/core/fuse/replies.js';
import { zeroedBuffer } from '../../src/core/zeroed-buffer.js';

describe('zeroedBuffer', () => {
  it('hands out zeros even where the shared pool held other bytes', () => {
    for (let i = 0; i < 64; i++) Buffer.allocUnsafe(200).fill(0xff);
    for (const size of [1, 16, 144, 340, 4095, 4096, 70_000]) {
      const buffer = zeroedBuffer(size);
      expect(buffer.length).toBe(size);
      expect(buffer.every((byte) => byte === 0)).toBe(true);
    }
  });

  it('leaves the padding of a FUSE reply zero, whatever the pool held before', () => {
    Buffer.allocUnsafe(32).fill(0xee);
    const reply = openReply(7n, 3, 1);
    expect(reply.length).toBe(32);
    // fuse_open_out: fh (u64), open_flags (u32), then 4 bytes the kernel reads as padding.
    expect(reply.readUInt32LE(28)).toBe(0);
    expect(reply.readUInt32LE(0)).toBe(32);
  });
});
