/**
 * DIR as `zkfsctl umount` and `zkfsctl status` take it: a zkfs mount, spelled
 * by its real path or through symbolic links.
 */
import { mountAt, readMountTable } from '../adapters/mountinfo.js';
import { realMountPoint } from '../adapters/real-path.js';
import { ZKFS_FSTYPE } from '../adapters/zkfs/serve.js';
import { OperationError, UsageError } from '../core/errors.js';

export interface ZkMountPoint {
  /** The real path: the mount table and the run record know the mount by it. */
  dir: string;
  /** DIR as the user gave it, for messages. */
  shown: string;
}

/** Throws, naming DIR, when it is empty, not mounted, or holds another filesystem. */
export async function zkMountPoint(given: string): Promise<ZkMountPoint> {
  if (given === '') throw new UsageError('DIR is empty');
  const { dir, shown } = await realMountPoint(given);
  const entry = mountAt(await readMountTable(), dir);
  if (!entry) throw new OperationError(`${shown} is not mounted`);
  if (entry.fsType !== ZKFS_FSTYPE) {
    throw new OperationError(
      `${shown} is not a ZooKeeper mount (it is ${entry.fsType} from ${entry.source})`,
    );
  }
  return { dir, shown };
}
