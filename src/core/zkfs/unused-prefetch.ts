/**
 * Data read ahead that no program has used yet. Reading children's data
 * ahead pays while programs read it (`cat *`, `find | xargs cat`) and only
 * fills memory while they do not (`ls -l` of a large directory). So what
 * bounds it is the data read ahead and still unused: a node counts from when
 * it is read ahead until a program reads it or it is put into the kernel's
 * page cache for one; a node dropped from the cache unused stays counted,
 * as the waste it was. A walk that reads what it lists never reaches the
 * bound, however large the tree; a listing nobody reads stops at it.
 */
export class UnusedPrefetch<T extends object> {
  private unused = new WeakMap<T, number>();
  /** Bytes read ahead and not used (nodes dropped unused included). */
  bytes = 0;

  /** `node` was read ahead, `bytes` long. */
  add(node: T, bytes: number): void {
    if (this.unused.has(node)) return;
    this.unused.set(node, bytes);
    this.bytes += bytes;
  }

  /** A program read `node`, or it went to the kernel's page cache for one (no-op if not read ahead). */
  use(node: T): void {
    const bytes = this.unused.get(node);
    if (bytes === undefined) return;
    this.unused.delete(node);
    this.bytes -= bytes;
  }

  /** Starts counting again (reading ahead ran dry: what follows is a new walk). */
  reset(): void {
    this.unused = new WeakMap();
    this.bytes = 0;
  }
}
