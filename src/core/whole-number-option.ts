/**
 * Options that take a whole number in a range whose 0 turns something off
 * (`--busy-poll`, `--release-unheld`): one reading and one message for all.
 */
import { UsageError } from './errors.js';

export interface WholeNumberRange {
  /** What the number counts, in the message: "seconds". */
  unit: string;
  max: number;
  /** What 0 means, in the message: "never". */
  zero: string;
}

/** Reads `value` of `option` (e.g. "--busy-poll"); throws a UsageError naming the range. */
export function parseWholeNumberOption(
  option: string,
  value: string | number,
  range: WholeNumberRange,
): number {
  const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > range.max) {
    throw new UsageError(
      `${option} '${value}' is not a whole number of ${range.unit} from 0 (${range.zero}) to ${range.max}`,
    );
  }
  return n;
}
