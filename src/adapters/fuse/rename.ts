/**
 * rename(2) and renameat2(2). RENAME_NOREPLACE (mv -n, and coreutils' mv
 * when it knows the target is absent) goes to the rename itself; RENAME_EXCHANGE and
 * whiteouts are refused with EINVAL, which tells callers to fall back.
 */
import { RENAME_NOREPLACE } from '../../core/fuse/protocol.js';
import { FsError } from '../../core/zkfs/errors.js';
import type { ZkVfs } from '../zkfs/vfs.js';

export async function renameNode(vfs: ZkVfs, from: string, to: string, flags: number): Promise<void> {
  if (flags & ~RENAME_NOREPLACE) throw new FsError('EINVAL', `rename flags ${flags} are not supported`);
  // Checked by the rename itself, in the write that makes the new name: a check before it left a
  // name another host made in between to be replaced.
  await vfs.rename(from, to, { noReplace: (flags & RENAME_NOREPLACE) !== 0 });
}
