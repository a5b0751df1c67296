/**
 * One writer per disk: initialize-disk (and a volume mount initialising a
 * disk through it) holds a lock named after the disk from its first look at
 * the disk to its last write, so two runs on one disk never interleave their
 * checks and writes. Lock files live in /run/lock, which a reboot empties.
 *
 * Exports: `DISK_LOCK_DIR`, `diskLockPath(name)`, `diskLockedBy(name)`, `lockDisk(name, device, purpose)`.
 */
import { join } from 'node:path';
import { OperationError } from '../core/errors.js';
import { type LockHandle, lockNowOr, readLockHolder } from './lock.js';
import { isProcessAlive } from './processes.js';

export const DISK_LOCK_DIR = '/run/lock/simplectl';

/** The lock file of the disk whose kernel name is `name`. */
export function diskLockPath(name: string): string {
  return join(DISK_LOCK_DIR, `disk-${name}.lock`);
}

/**
 * Who else holds the disk's lock now, in words ("simplectl pid 42 is
 * working on it (initialize-disk /dev/sdb)"); undefined when nobody does,
 * its holder is dead, or it is this process. A disk being initialised is in
 * use: a volume mount or watcher that took it meanwhile would mount it
 * between initialize-disk's steps, and initialize-disk fail closing it.
 */
export async function diskLockedBy(name: string): Promise<string | undefined> {
  const holder = await readLockHolder(diskLockPath(name));
  if (!holder || holder.pid === process.pid || !isProcessAlive(holder.pid, holder.startTime))
    return undefined;
  return `simplectl pid ${holder.pid} is working on it${holder.purpose ? ` (${holder.purpose})` : ''}`;
}

/**
 * Takes the disk's lock at once, or throws an OperationError naming who
 * holds it: waiting would only act on a disk another run has just changed.
 */
export function lockDisk(name: string, device: string, purpose: string): Promise<LockHandle> {
  return lockNowOr(
    diskLockPath(name),
    purpose,
    (holder) =>
      new OperationError(
        `${device} is busy: another simplectl (pid ${holder.pid}${holder.purpose ? `, ${holder.purpose}` : ''}) ` +
          `has been working on it since ${holder.since}. Nothing was changed.`,
      ),
  );
}
