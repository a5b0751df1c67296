/**
 * How many directories to list ahead of a walk. A program's listing of a
 * directory lists the next sibling directory ahead of it; when the program
 * then lists one that was listed ahead, the walk is real and the window
 * doubles, up to a limit, as the kernel's readahead grows for a file read in
 * order. A listing the mount did not see coming starts again at one, so an
 * `ls` of one directory costs one speculative listing, not eight.
 */

/** Directories listed ahead at most, however long the walk has been going. */
export const LIST_AHEAD_MAX = 8;
/** Listed-ahead directories remembered; past it, a walk that was abandoned is forgotten. */
const REMEMBERED = 256;

export class ListAheadWindow {
  /** Directories listed ahead that no program has listed yet, with the window that listed them. */
  private readonly ahead = new Map<string, number>();

  constructor(private readonly max = LIST_AHEAD_MAX) {}

  /** A program listed `dir`: how many of the directories after it to list ahead now. */
  listed(dir: string): number {
    const earlier = this.ahead.get(dir);
    if (earlier === undefined) return 1;
    this.ahead.delete(dir);
    return Math.min(this.max, earlier * 2);
  }

  /** `dir` was listed ahead by a window of `window`. */
  listedAhead(dir: string, window: number): void {
    if (this.ahead.size >= REMEMBERED) this.ahead.clear();
    this.ahead.set(dir, window);
  }
}
