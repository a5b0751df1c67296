/**
 * The FUSE kernel notifications zkfs sends (linux/fuse.h), as bytes to
 * write to the /dev/fuse descriptor of the mount: a notification is a reply
 * frame with `unique` 0 and the notification code in `error`, then its body.
 *
 * - INVAL_INODE drops an inode's cached attributes and page cache;
 * - INVAL_ENTRY drops a name from a directory (and, for a directory, the
 *   unused names cached below it);
 * - STORE puts data into an inode's page cache, as if the kernel had read it.
 */
import { frame, writeU64 } from './replies.js';

export const FUSE_NOTIFY_INVAL_INODE = 2;
export const FUSE_NOTIFY_INVAL_ENTRY = 3;
export const FUSE_NOTIFY_STORE = 4;

const HEADER = 16;

/** Drop the attributes and every cached page of node `nodeId`. */
export function invalInode(nodeId: number): Buffer {
  return invalInodeFrom(nodeId, 0n); // from offset 0, to the end
}

/**
 * Drop the attributes of node `nodeId`, not its pages: the kernel asks for
 * them before the next read or fstat(), and drops the pages itself if the
 * size or mtime it gets differs. Unlike dropping pages, this waits for no
 * page lock (a read in flight holds one).
 */
export function invalAttrs(nodeId: number): Buffer {
  return invalInodeFrom(nodeId, -1n); // a negative offset: no pages
}

function invalInodeFrom(nodeId: number, offset: bigint): Buffer {
  const buffer = frame(0n, FUSE_NOTIFY_INVAL_INODE, 24);
  writeU64(buffer, nodeId, HEADER);
  buffer.writeBigInt64LE(offset, HEADER + 8);
  buffer.writeBigInt64LE(0n, HEADER + 16); // length 0: to the end
  return buffer;
}

/** FUSE_EXPIRE_ONLY: the kernel asks about the name at its next use, keeping it meanwhile. */
const EXPIRE_ONLY = 1;

/**
 * Drop the name `name` in directory node `parent`; `expireOnly`: only have
 * the kernel ask about it again at its next use. A dropped directory is
 * unhashed: getcwd(2) fails in it, and what is mounted on it is detached.
 * Kernels before 6.2 know no such flag, and drop the name as before.
 */
export function invalEntry(parent: number, name: string, expireOnly = false): Buffer {
  const bytes = Buffer.from(name);
  const buffer = frame(0n, FUSE_NOTIFY_INVAL_ENTRY, 16 + bytes.length + 1);
  writeU64(buffer, parent, HEADER);
  buffer.writeUInt32LE(bytes.length, HEADER + 8);
  buffer.writeUInt32LE(expireOnly ? EXPIRE_ONLY : 0, HEADER + 12); // flags
  bytes.copy(buffer, HEADER + 16);
  return buffer; // ends with the NUL the kernel expects
}

/**
 * Put `data` into the page cache of node `nodeId` from offset 0. The kernel
 * takes no type check: only ever send it for a regular file (a directory's
 * pages hold its cached listing, a symbolic link's its target).
 */
export function storeData(nodeId: number, data: Buffer): Buffer {
  const buffer = frame(0n, FUSE_NOTIFY_STORE, 24 + data.length);
  writeU64(buffer, nodeId, HEADER);
  buffer.writeBigUInt64LE(0n, HEADER + 8); // offset
  buffer.writeUInt32LE(data.length, HEADER + 16);
  buffer.writeUInt32LE(0, HEADER + 20); // padding
  data.copy(buffer, HEADER + 24);
  return buffer;
}
