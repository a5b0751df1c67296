/**
 * Requests a program's interruption may end (FUSE_INTERRUPT). The kernel
 * waits for the answer to a request the daemon has read, through SIGKILL
 * too: a program whose read waits for a lost connection could not be
 * stopped before --reconnect-timeout ran out. Requests that change nothing
 * (a lookup, a listing, a read, an open for reading) are tracked here while
 * they wait; ops.ts answers one EINTR when its program is interrupted while
 * ZooKeeper cannot be reached, and takes back what its late answer hands
 * out (node references, a handle) instead of sending it. Requests that
 * change something are seen through: once sent, their outcome is not known
 * until ZooKeeper answers. Pure.
 */
import type { Unique } from './protocol.js';

export class Interrupts {
  /** Request (its unique as a number) → whether it was interrupted. */
  private readonly waiting = new Map<number, boolean>();

  /** Request `unique` waits for its answer, and may be interrupted meanwhile. */
  track(unique: Unique): void {
    this.waiting.set(Number(unique), false);
  }

  /** Request `unique` has its answer: whether to send it (false: the program was answered EINTR). */
  settle(unique: Unique): boolean {
    const key = Number(unique);
    const interrupted = this.waiting.get(key) === true;
    this.waiting.delete(key);
    return !interrupted;
  }

  /**
   * The kernel asks to interrupt request `unique`: true when it is tracked
   * and not interrupted yet, and so is to be answered EINTR now.
   */
  interrupt(unique: Unique): boolean {
    const key = Number(unique);
    if (this.waiting.get(key) !== false) return false;
    this.waiting.set(key, true);
    return true;
  }

  /** Requests tracked now. */
  get size(): number {
    return this.waiting.size;
  }
}
