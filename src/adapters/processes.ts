/**
 * Whether a recorded process still runs, read from /proc: the one check
 * behind lock holders, volume watchers and zkfs mount daemons (zkfsctl
 * status and umount, and the plugin), so they all agree on what "alive" means.
 *
 * Exports: `processStartTime(pid)`, `isProcessAlive(pid, startTime?)`.
 */
import { readFileSync } from 'node:fs';

/** Fields of /proc/<pid>/stat after the command name (field 3 onwards), or undefined. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Start time of a process, or undefined when it does not exist. */
export function processStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/**
 * True when `pid` runs and is the same process that was recorded (not a
 * recycled pid). A zombie counts as dead: where nothing reaps orphans it stays
 * in /proc long after it exited.
 */
export function isProcessAlive(pid: number, startTime?: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const fields = statFields(pid);
  if (fields === undefined || fields[0] === 'Z' || fields[0] === 'X') return false;
  return startTime === undefined || startTime === fields[19];
}
