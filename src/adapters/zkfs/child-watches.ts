/**
 * Child watches on the directories that hold a node this mount may not read.
 *
 * ZooKeeper 3.8.4 and later (and Debian's patched 3.8.0) tell a persistent
 * recursive watch nothing about a node whose ACL denies the session READ:
 * another client creating or deleting one left the mount listing the
 * directory as it was, for as long as the mount lasted. The directory
 * itself is readable, though, and a persistent watch on it alone reports
 * every change to its list of children, those nodes included. Such a watch
 * costs a notification for every child created or deleted there, readable
 * or not, so it is put only on directories where a read was refused (never
 * on the mount root: see watch-cache.ts, refused).
 *
 * A change no notice explains (ZooKeeper sends a readable child's creation
 * or deletion just before its parent's change of children) is one of those
 * nodes: the directory's listing is read again when next needed, and what
 * is held of the names refused there is dropped. A directory's first such
 * node still goes unlisted until the listing is read again for another
 * reason: nothing says in advance which directories will hold one.
 */
import { sortedIncludes } from '../../core/zkfs/sorted-names.js';

export interface ChildWatchHooks {
  /** Adds the watch for the current connection. */
  add(dir: string): Promise<void>;
  /** Whether the recursive watch is in place (no point, and no way, otherwise). */
  live(): boolean;
  /** Changes with every arming and every loss of the connection. */
  epoch(): number;
  /** The watch on `dir` is in place: what was listed before it may have missed a change. */
  armed(dir: string): void;
}

export class ChildWatches {
  /** Watched directories, each with the names in it whose reads were refused (while listed). */
  private readonly dirs = new Map<string, Set<string>>();

  constructor(private readonly hooks: ChildWatchHooks) {}

  get size(): number {
    return this.dirs.size;
  }

  /** A read of `name` in `dir` was refused: `dir`'s children are watched from now on, over reconnections too. */
  refused(dir: string, name: string): void {
    let names = this.dirs.get(dir);
    if (names === undefined) {
      names = new Set();
      this.dirs.set(dir, names);
      if (this.hooks.live()) this.arm(dir);
    }
    names.add(name);
  }

  /** The names in `dir` whose reads were refused: no notice speaks of them, so a change may be theirs. */
  unreadable(dir: string): string[] {
    return [...(this.dirs.get(dir) ?? [])];
  }

  /** `dir` was listed as holding `names` (sorted): refused names no longer among them are forgotten. */
  listed(dir: string, names: readonly string[]): void {
    const refused = this.dirs.get(dir);
    if (refused === undefined) return;
    for (const name of refused) if (!sortedIncludes(names, name)) refused.delete(name);
  }

  /** The connection is new (a server forgets its watches with it): every watch again. */
  rearm(): void {
    for (const dir of this.dirs.keys()) this.arm(dir);
  }

  private arm(dir: string): void {
    const epoch = this.hooks.epoch();
    this.hooks.add(dir).then(
      () => {
        if (epoch === this.hooks.epoch()) this.hooks.armed(dir);
      },
      // A lost connection: the next one arms it again (rearm); nothing else refuses a watch.
      () => {},
    );
  }
}
