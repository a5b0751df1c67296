/**
 * Signatures read straight from the device with `blkid -p` (low-level
 * probing: no cache, no udev), on a whole device or on a byte range of it.
 *
 * Exports: `probe(device, { offset?, size? })` → `Probe`, `parseBlkidExport(text)`.
 */
import { run } from './exec.js';
import type { Logger } from './logger.js';

export interface Probe {
  /** KEY=value pairs: TYPE, USAGE, PTTYPE, PART_ENTRY_NAME, UUID, … (empty when nothing was found). */
  values: Record<string, string>;
  /** blkid found several conflicting signatures (exit code 8). */
  ambivalent: boolean;
}

/** Undoes blkid's export escaping (a backslash before unsafe characters, `\xHH`). */
function unescapeValue(value: string): string {
  return value.replace(/\\x([0-9a-fA-F]{2})|\\(.)/g, (_, hex: string | undefined, ch: string | undefined) =>
    hex !== undefined ? String.fromCharCode(Number.parseInt(hex, 16)) : (ch ?? ''),
  );
}

/** Parses `blkid -o export` output (one KEY=value per line). */
export function parseBlkidExport(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    values[line.slice(0, eq)] = unescapeValue(line.slice(eq + 1));
  }
  return values;
}

export interface ProbeOptions {
  /** Probe only `size` bytes starting at `offset` (a partition the kernel has not been told about). */
  offset?: number;
  size?: number;
  logger?: Logger;
}

export async function probe(device: string, options: ProbeOptions = {}): Promise<Probe> {
  const args = ['-p', '-o', 'export'];
  if (options.offset !== undefined) args.push('-O', String(options.offset));
  if (options.size !== undefined) args.push('-S', String(options.size));
  args.push(device);
  const result = await run('blkid', args, {
    okExitCodes: [2, 8],
    ...(options.logger ? { logger: options.logger } : {}),
    purpose: `probing ${device}`,
  });
  if (result.exitCode === 2) return { values: {}, ambivalent: false };
  const values = parseBlkidExport(result.stdout);
  delete values.DEVNAME;
  return { values, ambivalent: result.exitCode === 8 };
}
