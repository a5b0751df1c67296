/**
 * Requests a program's interruption may end (FUSE_INTERRUPT). The kernel
 * waits for the answer to a request the daemon has read, through SIGKILL
 * too: a program whose read waits for a lost connection could not be
 * stopped before --reconnect-timeout ran out. Requests that change nothing
 * (a lookup, a listing, a read, an open for reading) are tracked here while
 * they wait; ops.ts answers one EINTR when its program is interrupted and
 * it waits for ZooKeeper in vain (the connection is lost, or the request
 * is slow), and takes back what its late answer hands out (node
 * references, a handle) instead of sending it. Requests that change
 * something are seen through: once sent, their outcome is not known until
 * ZooKeeper answers. Pure.
 */
import type { Unique } from './protocol.js';

interface Waiting {
  /** When the request came (ms). */
  since: number;
  interrupted: boolean;
}

export class Interrupts {
  /** Request (its unique as a number) → how it waits. */
  private readonly waiting = new Map<number, Waiting>();

  /** Request `unique` waits for its answer, since `now`, and may be interrupted meanwhile. */
  track(unique: Unique, now: number): void {
    this.waiting.set(Number(unique), { since: now, interrupted: false });
  }

  /** Request `unique` has its answer: whether to send it (false: the program was answered EINTR). */
  settle(unique: Unique): boolean {
    const key = Number(unique);
    const interrupted = this.waiting.get(key)?.interrupted === true;
    this.waiting.delete(key);
    return !interrupted;
  }

  /** Since when request `unique` waits, while it is tracked and not interrupted; else undefined. */
  waitingSince(unique: Unique): number | undefined {
    const waiting = this.waiting.get(Number(unique));
    return waiting && !waiting.interrupted ? waiting.since : undefined;
  }

  /**
   * The kernel asks to interrupt request `unique`: true when it is tracked
   * and not interrupted yet, and so is to be answered EINTR now.
   */
  interrupt(unique: Unique): boolean {
    const waiting = this.waiting.get(Number(unique));
    if (!waiting || waiting.interrupted) return false;
    waiting.interrupted = true;
    return true;
  }

  /** Requests tracked now. */
  get size(): number {
    return this.waiting.size;
  }
}
