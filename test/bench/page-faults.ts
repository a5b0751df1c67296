/**
 * What a page fault costs on this machine, and how many a process has
 * taken. Memory a program touches for the first time is given to it one
 * page at a time by the kernel, and what that costs depends on the machine
 * (about 10 us in the paravirtualised guest this was written on, where
 * every fault also passes through the hypervisor). The zkfs bench uses both to say how
 * much of a new mount's first walk went on the daemon's fresh memory.
 */
import { readFileSync } from 'node:fs';

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

/** Page faults process `pid` (all its threads) has taken so far: minor and major, from /proc/PID/stat. */
export function pageFaultsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name, in parentheses, may hold spaces: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt, majflt.
  return Number(fields[7]) + Number(fields[9]);
}
