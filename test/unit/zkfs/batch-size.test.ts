/**
 * The size of the multiRead batches that read a directory's children ahead:
 * small nodes come many to a request, large ones few, and the first batch
 * is cautious.
 */
import { describe, expect, it } from 'vitest';
import { BATCH_BYTES, BatchSize, MAX_BATCH } from '../../../src/core/zkfs/batch-size.js';

describe('BatchSize', () => {
  it('starts with a few nodes, then follows the size of the nodes read last', () => {
    const batch = new BatchSize();
    expect(batch.nodes).toBe(4);
    batch.read(4, 4 * 2048);
    expect(batch.nodes).toBe(BATCH_BYTES / 2048);
    batch.read(10, 10 * 1024 * 1024);
    expect(batch.nodes).toBe(1);
  });

  it('never asks for more than its most, even for empty nodes, and ignores a batch of none', () => {
    const batch = new BatchSize();
    batch.read(50, 0);
    expect(batch.nodes).toBe(MAX_BATCH);
    batch.read(0, 0);
    expect(batch.nodes).toBe(MAX_BATCH);
    const capped = new BatchSize(16);
    capped.read(50, 50);
    expect(capped.nodes).toBe(16);
  });
});
