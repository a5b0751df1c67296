/**
 * Child lists as the cache keeps them: sorted by UTF-16 code units (what
 * Array.prototype.sort does), never changed in place.
 */

/** Where `name` is or would go in `list`. */
export function position(list: readonly string[], name: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid] as string) < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A copy of `list` with `name` in its place. */
export function insertSorted(list: readonly string[], name: string): string[] {
  const copy = list.slice();
  copy.splice(position(list, name), 0, name);
  return copy;
}

export function sortedIncludes(list: readonly string[], name: string): boolean {
  return list[position(list, name)] === name;
}
