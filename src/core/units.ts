/**
 * Byte sizes as operators write them.
 *
 * Exports:
 * - `parseSize(text)`: "100G" → 100e9, "1GiB" → 2^30, "512" → 512; throws SizeError.
 * - `formatSize(bytes)`: the shortest exact spelling ("100G", "1Gi", "1234"); parseSize undoes it.
 * - `humanSize(bytes)`: an approximate reading for tables ("64.0 MiB").
 *
 * Decimal units (K, M, G, T, P, with or without a trailing B) are powers of
 * 1000; binary units (Ki … Pi, optionally KiB …) are powers of 1024
 * (shared/reference.md §1). Unit letters are case-insensitive except that
 * "b" alone is never accepted as a unit (bits are not bytes).
 */

const DECIMAL: Record<string, number> = { K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };
const BINARY: Record<string, number> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };
const ORDER = ['P', 'T', 'G', 'M', 'K'] as const;

/** A size that cannot be read; the message says what was wrong. */
export class SizeError extends Error {
  override readonly name = 'SizeError';
}

/** Parses a size with an optional unit into a whole number of bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(?:([kmgtpKMGTP])(i)?)?(B)?$/.exec(text.trim());
  if (!m) {
    throw new SizeError(
      `'${text}' is not a size (expected a number with an optional unit such as 500M, 100G, 1Ti or 4GiB)`,
    );
  }
  const [, number = '', letter, binary] = m;
  const unit = letter === undefined ? 1 : (binary ? BINARY : DECIMAL)[letter.toUpperCase()]!;
  const bytes = Number(number) * unit;
  if (!Number.isSafeInteger(Math.round(bytes))) throw new SizeError(`'${text}' is too large`);
  if (!Number.isInteger(bytes)) {
    throw new SizeError(`'${text}' is not a whole number of bytes`);
  }
  return bytes;
}

/** The shortest spelling that parseSize reads back as exactly `bytes`. */
export function formatSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new SizeError(`${bytes} is not a byte count`);
  if (bytes === 0) return '0';
  const candidates: string[] = [String(bytes)];
  for (const letter of ORDER) {
    const d = DECIMAL[letter]!;
    if (bytes % d === 0) candidates.push(`${bytes / d}${letter}`);
    const b = BINARY[letter]!;
    if (bytes % b === 0) candidates.push(`${bytes / b}${letter}i`);
  }
  return candidates.reduce((best, c) => (c.length < best.length ? c : best));
}

/** An approximate size for people, in binary units: "512 B", "64.0 MiB", "1.82 TiB". */
export function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let i = -1;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${units[i]}`;
}
