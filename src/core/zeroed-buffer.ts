/**
 * Zero-filled buffers for short-lived messages (FUSE replies and page-cache
 * stores, ZooKeeper requests). Buffer.alloc gives every buffer a backing
 * store of its own, which cost about 2 us apiece for a 340-byte message on
 * the development machine; a slice of Node's shared pool, cleared, took
 * about 0.2 us. A message is built, written and dropped, so sharing the
 * pool's memory is safe. Large ones keep their own store, as the pool would.
 */
const POOLED_BELOW = Buffer.poolSize >>> 1;

export function zeroedBuffer(size: number): Buffer {
  return size < POOLED_BELOW ? Buffer.allocUnsafe(size).fill(0) : Buffer.alloc(size);
}
