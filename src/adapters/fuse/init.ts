/**
 * The FUSE_INIT handshake: which of the kernel's offers zkfs takes.
 * - READDIRPLUS always: listings carry attributes, so walks need no LOOKUPs;
 * - no OPENDIR: the kernel opens directories itself and caches listings;
 * - AUTO_INVAL_DATA: the kernel drops a file's pages when its mtime changes
 *   (besides the notifications kernel-notify.ts sends);
 * - CACHE_SYMLINKS, PARALLEL_DIROPS, and writes up to MAX_WRITE in one request.
 * Locks are not offered, so the kernel keeps them local to the host.
 */
import { FUSE_KERNEL_MINOR, InitFlag, type InitRequest, type Unique } from '../../core/fuse/protocol.js';
import { initReply } from '../../core/fuse/replies.js';
import { MAX_WRITE } from './device.js';

const WANTED_FLAGS =
  InitFlag.ASYNC_READ |
  InitFlag.BIG_WRITES |
  InitFlag.AUTO_INVAL_DATA |
  InitFlag.DO_READDIRPLUS |
  InitFlag.PARALLEL_DIROPS |
  InitFlag.MAX_PAGES |
  InitFlag.CACHE_SYMLINKS |
  InitFlag.NO_OPENDIR_SUPPORT;

export function initAnswer(unique: Unique, offer: InitRequest): Buffer {
  return initReply(unique, Math.min(offer.minor, FUSE_KERNEL_MINOR), {
    maxReadahead: offer.maxReadahead,
    flags: offer.flags & WANTED_FLAGS,
    maxWrite: MAX_WRITE,
    maxPages: MAX_WRITE / 4096,
    // zkfs keeps times in milliseconds
    timeGranNs: 1_000_000,
  });
}
