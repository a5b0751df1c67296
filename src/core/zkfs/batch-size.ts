/**
 * How many nodes one multiRead asks for: as many as make about
 * `BATCH_BYTES` of data at the mean size of the nodes read last, within
 * the most a batch may hold. A directory of small files is then read in
 * one or two requests, while one of large nodes never asks for a reply of
 * many megabytes; the first guess is cautious.
 */

export const BATCH_BYTES = 256 * 1024;
export const MAX_BATCH = 128;
const FIRST_NODE_GUESS = 64 * 1024;
/** The smallest mean size assumed, so that empty nodes do not make batches of any size. */
const SMALLEST_NODE = 64;

export class BatchSize {
  /** Mean data size of the nodes the last batch read (bytes). */
  private nodeBytes = FIRST_NODE_GUESS;

  constructor(private readonly maxBatch = MAX_BATCH) {}

  /** Nodes for the next batch. */
  get nodes(): number {
    return Math.max(1, Math.min(this.maxBatch, Math.floor(BATCH_BYTES / this.nodeBytes)));
  }

  /** A batch of `count` nodes read `bytes` of data in all. */
  read(count: number, bytes: number): void {
    if (count > 0) this.nodeBytes = Math.max(SMALLEST_NODE, bytes / count);
  }
}
