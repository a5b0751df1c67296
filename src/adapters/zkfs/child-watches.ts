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
 * or not, so it is put only on directories where a read was refused.
 *
 * A directory's first unreadable node still goes unseen until a program
 * reads it (or the listing is read again for another reason): nothing says
 * in advance which directories will hold one.
 */
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
  private readonly dirs = new Set<string>();

  constructor(private readonly hooks: ChildWatchHooks) {}

  /** Whether `dir` has (or is getting) a child watch. */
  has(dir: string): boolean {
    return this.dirs.has(dir);
  }

  get size(): number {
    return this.dirs.size;
  }

  /** Watches `dir`'s children from now on, over reconnections too. */
  want(dir: string): void {
    if (this.dirs.has(dir)) return;
    this.dirs.add(dir);
    if (this.hooks.live()) this.arm(dir);
  }

  /** The connection is new (a server forgets its watches with it): every watch again. */
  rearm(): void {
    for (const dir of this.dirs) this.arm(dir);
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
