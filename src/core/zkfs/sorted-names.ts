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

/**
 * The longest list a change is patched into. Each patch copies the whole
 * list, and a directory of tens of thousands of names that other clients
 * keep changing (a queue, a registry of ephemeral nodes) cost a millisecond
 * or more per change in copying and collecting the copies: a burst of
 * changes stalled the mount for seconds, long enough to lose its session.
 * A longer list is read again when next needed instead; until then a name
 * looked up there that is not in memory costs a request. Up to this length
 * a copy takes well under a request's round trip (about 70 us here; past
 * about 12,000 names V8 allocates it apart, and it costs several times more).
 */
export const PATCH_LIMIT = 8192;

/**
 * A copy of `list` with `name` added (`delta` 1) or removed (-1), or
 * undefined when the list is longer than PATCH_LIMIT.
 */
export function patchedList(list: readonly string[], name: string, delta: 1 | -1): string[] | undefined {
  if (list.length > PATCH_LIMIT) return undefined;
  if (delta > 0) return insertSorted(list, name);
  const at = position(list, name);
  return list[at] === name ? list.slice(0, at).concat(list.slice(at + 1)) : list.slice();
}
