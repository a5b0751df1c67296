/**
 * Extended attribute requests: the read-only user.zk.* attributes (the
 * znode stat) and the refusal to set or remove any (attr-ops.ts says why).
 */
import { type ArgReader, Op, type Unique } from '../../core/fuse/protocol.js';
import { errorReply, xattrReply } from '../../core/fuse/replies.js';
import type { ZkVfs } from '../zkfs/vfs.js';
import { ERRNO } from './errno.js';

export type XattrRequest =
  | { kind: 'getxattr'; name: string; size: number }
  | { kind: 'listxattr'; size: number }
  | { kind: 'setxattr'; name: string };

/** Decodes GETXATTR, LISTXATTR, SETXATTR or REMOVEXATTR (`r` is at its arguments). */
export function readXattr(opcode: number, r: ArgReader): XattrRequest {
  if (opcode === Op.GETXATTR) {
    const size = r.u32();
    r.skip(4);
    return { kind: 'getxattr', name: r.name(), size };
  }
  if (opcode === Op.LISTXATTR) return { kind: 'listxattr', size: r.u32() };
  if (opcode === Op.SETXATTR) r.skip(8);
  return { kind: 'setxattr', name: r.name() };
}

/** The reply to `req` for `path`; a `size` of 0 asks for the length only. */
export async function xattrAnswer(
  vfs: ZkVfs,
  unique: Unique,
  path: string,
  req: XattrRequest,
): Promise<Buffer> {
  switch (req.kind) {
    case 'getxattr': {
      const value = await vfs.getxattr(path, req.name);
      if (value === undefined || value === null) return errorReply(unique, ERRNO.ENODATA);
      return xattrReply(unique, value, req.size);
    }
    case 'listxattr': {
      const names = await vfs.listxattr(path);
      return xattrReply(unique, Buffer.from(names.map((n) => `${n}\0`).join('')), req.size);
    }
    case 'setxattr':
      await vfs.setxattr(path, req.name);
      return errorReply(unique, 0);
  }
}
