/**
 * The FUSE_INIT handshake: which of the kernel's offers zkfs takes.
 * - READDIRPLUS always: listings carry attributes, so walks need no LOOKUPs;
 * - no OPENDIR: the kernel opens directories itself and caches listings;
 * - AUTO_INVAL_DATA: the kernel drops a file's pages when its mtime changes
 *   (besides the notifications kernel-notify.ts sends);
 * - CACHE_SYMLINKS, PARALLEL_DIROPS, and writes up to MAX_WRITE in one request.
 * - requests over io_uring, where the kernel offers it and the daemon has
 *   set its queues up (request-reader.ts).
 * Locks are not offered, so the kernel keeps them local to the host.
 */
import {
  FUSE_KERNEL_MINOR,
  InitFlag,
  InitFlag2,
  type InitRequest,
  type Unique,
} from '../../core/fuse/protocol.js';
import { initReply } from '../../core/fuse/replies.js';
import { MAX_WRITE } from './device.js';
import type { RequestRing } from './request-reader.js';

const WANTED_FLAGS =
  InitFlag.ASYNC_READ |
  InitFlag.BIG_WRITES |
  InitFlag.AUTO_INVAL_DATA |
  InitFlag.DO_READDIRPLUS |
  InitFlag.PARALLEL_DIROPS |
  InitFlag.MAX_PAGES |
  InitFlag.CACHE_SYMLINKS |
  InitFlag.NO_OPENDIR_SUPPORT;

/** Whether the kernel offers requests over io_uring. */
export function offersRing(offer: InitRequest): boolean {
  return (offer.flags2 & InitFlag2.OVER_IO_URING) !== 0;
}

/** The reply to `offer`; `ring`: take requests over io_uring (offered, and the queues are ready). */
export function initAnswer(unique: Unique, offer: InitRequest, ring = false): Buffer {
  const useRing = ring && offersRing(offer);
  return initReply(unique, Math.min(offer.minor, FUSE_KERNEL_MINOR), {
    maxReadahead: offer.maxReadahead,
    flags: (offer.flags & WANTED_FLAGS) | (useRing ? InitFlag.INIT_EXT : 0),
    flags2: useRing ? InitFlag2.OVER_IO_URING : 0,
    maxWrite: MAX_WRITE,
    maxPages: MAX_WRITE / 4096,
    // zkfs keeps times in milliseconds
    timeGranNs: 1_000_000,
  });
}

/**
 * Answers FUSE_INIT through `send`, taking requests over io_uring where the
 * kernel offers it and `ring` sets its queues up: before the answer, as the
 * kernel holds every request after it until each queue has taken an entry.
 */
export function answerInit(
  unique: Unique,
  offer: InitRequest,
  send: (message: Buffer) => unknown,
  ring: RequestRing | undefined,
): void {
  const useRing = offersRing(offer) && ring?.prepare() === true;
  send(initAnswer(unique, offer, useRing));
  if (useRing) ring?.start();
}
