/**
 * Numbers of disks in a numerically named volume (`simple-0`, `simple-1`, …).
 * A disk that already has a number keeps it; a disk coming back gets the number
 * it had if that is still free; everything else gets the lowest free number
 * that no disk gone for now is remembered by, if there is one.
 * With a limit (max-disks), numbers stay below it so that persist-numbering's
 * directories 0 … max-disks−1 are the only ones that ever exist.
 */

export interface NumberRequest {
  /** Disk id to number. */
  id: string;
  /** A number this disk had before (remembered across release), if any. */
  preferred?: number | null;
}

export interface AllocateOptions {
  /** Numbers held by the volume's other disks. */
  taken: Iterable<number>;
  /** Disks needing a number, in the order they should get the lowest free ones. */
  wanted: readonly NumberRequest[];
  /** Numbers must be below this; 0 = no limit. */
  limit?: number;
  /**
   * Numbers remembered for the volume's disks that are gone for now: a
   * newcomer takes one only when the limit leaves no other, so a disk that
   * drops out for a moment finds its directory empty, not another disk in it.
   */
  reserved?: Iterable<number>;
}

/**
 * Gives each wanted disk a number. Preferred numbers are honoured first (in
 * request order) so that a returning disk is not pushed out of its old slot by
 * a newcomer listed before it. Throws when the limit leaves no free number:
 * callers cap the disk count at max-disks, so that means state was edited by hand.
 */
export function allocateNumbers(options: AllocateOptions): Map<string, number> {
  const limit = options.limit ?? 0;
  const used = new Set(options.taken);
  const result = new Map<string, number>();
  const fits = (n: number) => Number.isInteger(n) && n >= 0 && (limit === 0 || n < limit);
  for (const request of options.wanted) {
    const p = request.preferred;
    if (p !== undefined && p !== null && fits(p) && !used.has(p) && !result.has(request.id)) {
      used.add(p);
      result.set(request.id, p);
    }
  }
  const reserved = new Set(options.reserved ?? []);
  const lowestFree = (skipReserved: boolean): number | undefined => {
    for (let n = 0; limit === 0 || n < limit; n++) {
      if (!used.has(n) && !(skipReserved && reserved.has(n))) return n;
    }
    return undefined;
  };
  for (const request of options.wanted) {
    if (result.has(request.id)) continue;
    const n = lowestFree(true) ?? lowestFree(false);
    if (n === undefined) {
      throw new RangeError(`no free disk number below ${limit} for disk ${request.id}`);
    }
    used.add(n);
    result.set(request.id, n);
  }
  return result;
}
