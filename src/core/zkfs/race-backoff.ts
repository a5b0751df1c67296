/**
 * When a write loses a race for a shared document (a directory's metadata,
 * the symlink table) to another host, it reads the document again and
 * tries again. Another host creating files in the same directory without a
 * pause wins most of those races: it learns of its own writes at once and
 * of ours only through its watch. So the loser keeps trying for a span of
 * time rather than a number of attempts (eight attempts left about one
 * create in 400 failing with EIO while two hosts each wrote 400 files into
 * one directory), and waits only a little between attempts: a longer wait
 * does not make the other host pause, it only lets it win more often.
 */

/** How long a write keeps trying after lost races before it fails (ms). */
export const RACE_BUDGET_MS = 30_000;

/** The longest wait between two attempts (ms). */
const MAX_WAIT_MS = 50;

/**
 * The wait before attempt `attempt + 1` (ms): random, so that hosts that
 * collided do not collide again, up to a limit that doubles from 2 ms
 * with each attempt and stops at MAX_WAIT_MS.
 */
export function raceWaitMs(attempt: number, random: () => number = Math.random): number {
  return random() * Math.min(MAX_WAIT_MS, 2 * 2 ** attempt);
}
