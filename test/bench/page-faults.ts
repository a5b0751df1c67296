/**
 * What a page fault costs on this machine. Memory a program touches for
 * the first time is given to it one page at a time by the kernel, and what
 * that costs depends on the machine (about 10 us in the paravirtualised
 * guest this was written on, where every fault also passes through the
 * hypervisor). With the daemon's count of them (proc-stat.ts), the zkfs
 * bench says how much of a new mount's first walk went on its fresh memory.
 */
const PAGE = 4096;
const SIZE = 64 * 1024 * 1024;

/** Microseconds per first touch of a page: a new zeroed buffer written once (faults) less the same written again (none); best of three. */
export function pageFaultUs(): number {
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 3; run++) {
    // Large enough that the allocator maps fresh pages for it rather than reusing touched ones.
    const buffer = Buffer.alloc(SIZE);
    const first = process.hrtime.bigint();
    buffer.fill(1);
    const second = process.hrtime.bigint();
    buffer.fill(2);
    const third = process.hrtime.bigint();
    const faulting = Number(second - first) - Number(third - second);
    best = Math.min(best, faulting / 1000 / (SIZE / PAGE));
  }
  return Math.max(0, best);
}
