/**
 * What a process (all its threads) has used so far, from /proc/PID/stat:
 * the bench reads a daemon's counters before and after a workload.
 */
import { readFileSync } from 'node:fs';

/** The fields after the command name: state, ppid, pgrp, … (proc(5) numbers them from 3). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name, in parentheses, may hold spaces: count fields after its closing one.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Page faults process `pid` has taken so far: minor and major (minflt, majflt). */
export function pageFaultsOf(pid: number): number {
  const fields = statFields(pid);
  return Number(fields[7]) + Number(fields[9]);
}

/** CPU time process `pid` has used so far, user and system (utime, stime), in milliseconds. */
export function cpuMsOf(pid: number, ticksPerSecond = 100): number {
  const fields = statFields(pid);
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
}
