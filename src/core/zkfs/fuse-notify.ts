/**
 * The two FUSE kernel notifications zkfs sends (linux/fuse.h), as bytes to
 * write to the /dev/fuse descriptor of the mount: a notification is a reply
 * header with `unique` 0 and the notification code in `error`, then its
 * body, in host byte order (little-endian on every platform zkfs runs on).
 *
 * - INVAL_INODE drops an inode's cached attributes and page cache;
 * - INVAL_ENTRY drops a name from a directory (and, for a directory, the
 *   unused names cached below it).
 */

export const FUSE_NOTIFY_INVAL_INODE = 2;
export const FUSE_NOTIFY_INVAL_ENTRY = 3;
/** The node id of the mount root. */
export const FUSE_ROOT_ID = 1n;

const HEADER = 16; // len u32, error i32, unique u64

function header(buffer: Buffer, code: number): void {
  buffer.writeUInt32LE(buffer.length, 0);
  buffer.writeInt32LE(code, 4);
  buffer.writeBigUInt64LE(0n, 8);
}

/** Drop the attributes and every cached page of node `ino`. */
export function invalInode(ino: bigint): Buffer {
  const buffer = Buffer.alloc(HEADER + 24);
  header(buffer, FUSE_NOTIFY_INVAL_INODE);
  buffer.writeBigUInt64LE(ino, 16);
  buffer.writeBigInt64LE(0n, 24); // from offset 0
  buffer.writeBigInt64LE(0n, 32); // length 0: to the end
  return buffer;
}

/** Drop the name `name` in directory node `parent`. */
export function invalEntry(parent: bigint, name: string): Buffer {
  const bytes = Buffer.from(name);
  const buffer = Buffer.alloc(HEADER + 16 + bytes.length + 1);
  header(buffer, FUSE_NOTIFY_INVAL_ENTRY);
  buffer.writeBigUInt64LE(parent, 16);
  buffer.writeUInt32LE(bytes.length, 24);
  buffer.writeUInt32LE(0, 28); // flags
  bytes.copy(buffer, 32);
  return buffer; // ends with the NUL the kernel expects
}
