/**
 * Signatures read straight from the device with `blkid -p` (low-level
 * probing: no cache, no udev), on a whole device or on a byte range of it.
 *
 * Exports: `probe(device, { offset?, size? })` → `Probe`, `parseBlkidExport(text)`,
 * `ProbeReadError`, `readErrorReason(stderr)`.
 */
import { formatCommand } from '../core/redact.js';
import { run, summaryLine, ToolError } from './exec.js';
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

/**
 * blkid could not read the device. `blkid -p` exits 2 both when it finds no
 * signature and when it cannot open the device (then it prints
 * `blkid: error: DEV: <cause>` on stderr), so exit code 2 alone never means
 * "nothing there": a disk blkid cannot read must not look blank. When reads
 * fail after the open (EIO), util-linux 2.38 exits 2 without a word: callers
 * that would take "nothing found" for blank read the disk themselves
 * (block-devices.ts inspectDisk).
 */
export class ProbeReadError extends ToolError {
  override readonly name: string = 'ProbeReadError';
  /** What went wrong, without the device name: "blkid: Input/output error". */
  readonly reason: string;

  constructor(device: string, reason: string, commandLine: string, exitCode: number, stderr: string) {
    super(`${device} cannot be read: ${reason}`, commandLine, exitCode, stderr);
    this.reason = reason;
  }
}

/** The cause blkid gives on stderr, as "blkid: <cause>" (its "error: DEV:" prefix dropped). */
export function readErrorReason(stderr: string): string {
  const line = summaryLine(stderr);
  const m = /^blkid: (?:error: )?(?:\S+: )?(.+)$/.exec(line);
  if (m) return `blkid: ${m[1]}`;
  return line === '' ? 'blkid failed' : `blkid: ${line}`;
}

export interface ProbeOptions {
  /** Probe only `size` bytes starting at `offset` (a partition the kernel has not been told about). */
  offset?: number;
  size?: number;
  logger?: Logger;
}

/**
 * Probes `device` (or a byte range of it). Throws ProbeReadError when blkid
 * ran but could not read the device (exit 2 with an error message, or any
 * other failing exit code); a missing blkid stays a plain ToolError.
 */
export async function probe(device: string, options: ProbeOptions = {}): Promise<Probe> {
  const args = ['-p', '-o', 'export'];
  if (options.offset !== undefined) args.push('-O', String(options.offset));
  if (options.size !== undefined) args.push('-S', String(options.size));
  args.push(device);
  const where = options.offset !== undefined ? `${device} at offset ${options.offset}` : device;
  let result: Awaited<ReturnType<typeof run>>;
  try {
    result = await run('blkid', args, {
      okExitCodes: [2, 8],
      ...(options.logger ? { logger: options.logger } : {}),
      purpose: `probing ${where}`,
    });
  } catch (error) {
    if (error instanceof ToolError && error.toolExitCode !== undefined) {
      const reason = readErrorReason(error.stderr);
      throw new ProbeReadError(where, reason, error.commandLine, error.toolExitCode, error.stderr);
    }
    throw error;
  }
  if (result.exitCode === 2) {
    // "Nothing found" is silent; anything on stderr means blkid could not read the device.
    if (result.stderr.trim() !== '') {
      throw new ProbeReadError(
        where,
        readErrorReason(result.stderr),
        formatCommand('blkid', args),
        2,
        result.stderr,
      );
    }
    return { values: {}, ambivalent: false };
  }
  const values = parseBlkidExport(result.stdout);
  delete values.DEVNAME;
  return { values, ambivalent: result.exitCode === 8 };
}
