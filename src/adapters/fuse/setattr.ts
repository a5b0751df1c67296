/**
 * SETATTR: chmod, chown, truncate and utimes arrive as one request naming
 * the fields that change; each goes to its ZkVfs call, in that order.
 */
import { type SetattrRequest, SetattrValid } from '../../core/fuse/protocol.js';
import type { FileAttr } from '../zkfs/attr-ops.js';
import type { ZkVfs } from '../zkfs/vfs.js';

const TIMES = SetattrValid.ATIME | SetattrValid.MTIME | SetattrValid.ATIME_NOW | SetattrValid.MTIME_NOW;

/** Applies `req` to `path` and returns the attributes after it. */
export async function applySetattr(vfs: ZkVfs, req: SetattrRequest, path: string): Promise<FileAttr> {
  const { valid } = req;
  if (valid & SetattrValid.MODE) await vfs.chmod(path, req.mode);
  if (valid & (SetattrValid.UID | SetattrValid.GID)) {
    // The id not given stays as it is when the change is made (-1, as chown(2) takes it), not as
    // read here: another host's chgrp in between would be undone by a chown of the owner alone.
    await vfs.chown(path, valid & SetattrValid.UID ? req.uid : -1, valid & SetattrValid.GID ? req.gid : -1);
  }
  if (valid & SetattrValid.SIZE) {
    // Through a descriptor (ftruncate, O_TRUNC) it is written back at close, like a write.
    if (valid & SetattrValid.FH && req.fh !== 0) await vfs.ftruncate(req.fh, req.size);
    else await vfs.truncate(path, req.size);
  }
  if (valid & TIMES) {
    // Either time may be left as it is (touch -m, tar x): it keeps its current value.
    const current = await vfs.getattr(path);
    const now = Date.now();
    const pick = (nowBit: number, setBit: number, requested: number, kept: number) =>
      valid & nowBit ? now : valid & setBit ? requested : kept;
    await vfs.utimens(
      path,
      pick(SetattrValid.ATIME_NOW, SetattrValid.ATIME, req.atimeMs, current.atimeMs),
      pick(SetattrValid.MTIME_NOW, SetattrValid.MTIME, req.mtimeMs, current.mtimeMs),
    );
  }
  return vfs.getattr(path);
}
