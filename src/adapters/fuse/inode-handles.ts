/**
 * Files the kernel opens without asking us. zkfs answers OPEN with "not
 * implemented", which makes the kernel open every later file itself and
 * keep its page cache (so re-reading an unchanged file costs nothing); its
 * READ, WRITE and FLUSH then name the node, not a handle. Reads go through
 * a handle held for the read alone; writes through one handle per node,
 * opened at the first write or truncation and written back, with the
 * version check, when a descriptor of the file is closed (FLUSH).
 *
 * Files created here (CREATE) still get a handle of their own from the
 * kernel and never come through this module.
 */
import type { ZkVfs } from '../zkfs/vfs.js';

const O_RDWR = 2;

export class InodeHandles {
  /** Node id → its write handle (a promise while it opens). */
  private readonly writers = new Map<number, Promise<number>>();

  constructor(private readonly vfs: ZkVfs) {}

  /** The write handle of node `id` at `path`, opened on first use. */
  writer(id: number, path: string): Promise<number> {
    let handle = this.writers.get(id);
    if (!handle) {
      handle = this.vfs.open(path, O_RDWR);
      this.writers.set(id, handle);
      handle.catch(() => {
        if (this.writers.get(id) === handle) this.writers.delete(id);
      });
    }
    return handle;
  }

  /** Reads through the node's write handle when it has one (unwritten data), else from the tree. */
  async read(id: number, path: string, size: number, offset: number): Promise<Buffer> {
    const writer = this.writers.get(id);
    if (writer) return this.vfs.read(await writer, size, offset);
    const fh = await this.vfs.open(path, 0);
    try {
      return this.vfs.read(fh, size, offset);
    } finally {
      await this.vfs.release(fh);
    }
  }

  /** close(2) or fsync(2) of the node: writes back what was written and lets the handle go. */
  async flush(id: number): Promise<void> {
    const writer = this.writers.get(id);
    if (!writer) return;
    this.writers.delete(id);
    const fh = await writer.catch(() => undefined);
    if (fh === undefined) return;
    try {
      await this.vfs.flush(fh);
    } finally {
      await this.vfs.release(fh);
    }
  }
}
