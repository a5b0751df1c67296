/**
 * Nodes deleted moments ago, by the watch's word. A rename over an
 * existing name (`mv new f`, how editors and certbot replace a file) is
 * one transaction that deletes `f` and creates it again, but its
 * notifications come one by one, and before the reply to the mount's own
 * rename: between them, memory says `f` is gone.
 * A lookup of such a name asks ZooKeeper instead, whose reply comes after
 * every notification of that transaction, so the program finds the new
 * file rather than ENOENT. A creation of the name ends that early; the
 * name is then one made again moments ago, until the window ends.
 */
export class RecentDeletions {
  /** When each name was deleted (ms), and whether made again since; oldest first: Map keeps insertion order. */
  private readonly at = new Map<string, { at: number; remade: boolean }>();

  constructor(
    /** How long after its deletion notice a name is asked about (ms). */
    private readonly windowMs: number,
    /** Names kept at most (a recursive delete of a large tree sends one notice per node). */
    private readonly limit = 4096,
  ) {}

  get size(): number {
    return this.at.size;
  }

  deleted(path: string, now: number): void {
    this.at.delete(path);
    this.at.set(path, { at: now, remade: false });
    if (this.at.size > this.limit) this.expire(now);
  }

  created(path: string): void {
    const entry = this.at.get(path);
    if (entry) entry.remade = true;
  }

  /**
   * Whether `path` was deleted less than the window ago, and not created
   * since. Names past the window go first, so the table empties once
   * deletions stop and `size` is 0 again: callers on a hot path ask only
   * while it is not.
   */
  within(path: string, now: number): boolean {
    this.expire(now);
    const entry = this.at.get(path);
    return entry !== undefined && !entry.remade;
  }

  /** Whether `path` was deleted and made again less than the window ago (replaced). */
  remade(path: string, now: number): boolean {
    this.expire(now);
    return this.at.get(path)?.remade === true;
  }

  /** Forgets names past the window, then the oldest beyond the limit: oldest first, as kept. */
  private expire(now: number): void {
    for (const [path, { at }] of this.at) {
      if (now - at < this.windowMs && this.at.size <= this.limit) break;
      this.at.delete(path);
    }
  }
}
