import { describe, expect, it } from 'vitest';
import { Interrupts } from '../../src/core/fuse/interrupts.js';

describe('interruptible requests', () => {
  it('answers an interrupted request once, drops its late answer, and forgets it', () => {
    const interrupts = new Interrupts();
    interrupts.track(7, 1000);
    expect(interrupts.waitingSince(7)).toBe(1000);
    expect(interrupts.interrupt(7)).toBe(true);
    expect(interrupts.waitingSince(7)).toBeUndefined();
    expect(interrupts.interrupt(7)).toBe(false); // the kernel may ask again: one EINTR is enough
    expect(interrupts.settle(7)).toBe(false);
    expect(interrupts.size).toBe(0);
  });

  it('leaves alone requests it does not track, and ones already answered', () => {
    const interrupts = new Interrupts();
    expect(interrupts.interrupt(3)).toBe(false);
    expect(interrupts.waitingSince(3)).toBeUndefined();
    interrupts.track(4n, 0);
    expect(interrupts.settle(4)).toBe(true);
    expect(interrupts.interrupt(4n)).toBe(false);
    expect(interrupts.size).toBe(0);
  });
});
