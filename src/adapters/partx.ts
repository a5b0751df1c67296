/**
 * Partition tables through `partx`: read from the disk itself (so it works
 * before the kernel knows the partitions, and without udev), and pushed to
 * the kernel after a change (this kernel has no GPT parser of its own, and
 * hosts without udevd never re-read: shared/reference.md §4).
 *
 * Exports: `readPartitionTable(device)` → core's `PartitionFact[]`, `PartitionTableReadError`,
 * `parsePartxPairs(text)`, `rereadPartitions(device)`, `forgetPartitions(device)`, and the argv
 * they run: `rereadArgs(device)`, `forgetArgs(device)`.
 */
import { existsSync } from 'node:fs';
import type { PartitionFact } from '../core/disk-state.js';
import { formatCommand } from '../core/redact.js';
import { run, summaryLine, ToolError } from './exec.js';
import type { Logger } from './logger.js';

/**
 * partx ran but could not read the partition table of one disk: it could not
 * stat or open the device (gone since it was listed), or set up its prober.
 * The disk is unreadable; a scan records that and goes on with the others.
 */
export class PartitionTableReadError extends ToolError {
  override readonly name: string = 'PartitionTableReadError';
  /** partx's own words: "partx: cannot open /dev/loop5: No such device or address". */
  readonly reason: string;

  constructor(device: string, commandLine: string, exitCode: number, stderr: string) {
    const line = summaryLine(stderr);
    const reason = line === '' ? `partx failed with exit code ${exitCode}` : line;
    super(`the partition table of ${device} cannot be read: ${reason}`, commandLine, exitCode, stderr);
    this.reason = reason;
  }
}

function unescapePairValue(value: string): string {
  return value.replace(/\\x([0-9a-fA-F]{2})/g, (_, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
}

/** Parses `partx -P` output: KEY="value" pairs, one partition per line. */
export function parsePartxPairs(text: string): PartitionFact[] {
  const entries: PartitionFact[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields: Record<string, string> = {};
    for (const m of line.matchAll(/([A-Z]+)="((?:[^"\\]|\\.)*)"/g)) fields[m[1]!] = unescapePairValue(m[2]!);
    entries.push({
      number: Number(fields.NR),
      start: Number(fields.START),
      sectors: Number(fields.SECTORS),
      type: (fields.TYPE ?? '').toLowerCase(),
      name: fields.NAME ?? '',
      uuid: (fields.UUID ?? '').toLowerCase(),
    });
  }
  return entries;
}

/**
 * The partitions recorded on `device`; [] when it has a table without
 * partitions, null when it has none. Throws PartitionTableReadError when
 * partx ran and failed otherwise; a partx that cannot be started stays a
 * plain ToolError.
 */
export async function readPartitionTable(device: string, logger?: Logger): Promise<PartitionFact[] | null> {
  const args = ['-P', '-o', 'NR,START,SECTORS,TYPE,NAME,UUID', device];
  let result: Awaited<ReturnType<typeof run>>;
  try {
    result = await run('partx', args, {
      okExitCodes: [1],
      ...(logger ? { logger } : {}),
      purpose: `reading the partition table of ${device}`,
    });
  } catch (error) {
    if (error instanceof ToolError && error.toolExitCode !== undefined) {
      throw new PartitionTableReadError(device, error.commandLine, error.toolExitCode, error.stderr);
    }
    throw error;
  }
  if (result.exitCode === 1) {
    if (/failed to read partition table/.test(result.stderr)) return null;
    throw new PartitionTableReadError(device, formatCommand('partx', args), 1, result.stderr);
  }
  return parsePartxPairs(result.stdout);
}

/**
 * The argv (after `partx`) of the two runs rereadPartitions makes, in order
 * (`partprobe DEV` only if one fails). `-u` updates entries the kernel has;
 * `-a` adds missing ones. partx -u alone adds on current util-linux, but
 * older ones need -a, which fails when all exist.
 */
export function rereadArgs(device: string): [update: string[], add: string[]] {
  return [
    ['-u', device],
    ['-a', device],
  ];
}

/** The argv (after `partx`) forgetPartitions runs. */
export function forgetArgs(device: string): string[] {
  return ['-d', device];
}

/**
 * Tells the kernel about the partitions now on `device` (adds, updates and
 * removes nodes), falling back to partprobe; waits for udev when it runs.
 */
export async function rereadPartitions(device: string, logger?: Logger): Promise<void> {
  const opts = { ...(logger ? { logger } : {}), purpose: `re-reading the partition table of ${device}` };
  try {
    const [update, add] = rereadArgs(device);
    await run('partx', update, opts);
    await run('partx', add, { ...opts, okExitCodes: [1] });
  } catch (error) {
    logger?.debug(`partx failed, trying partprobe: ${(error as Error).message}`);
    await run('partprobe', [device], opts);
  }
  if (existsSync('/run/udev/control')) {
    await run('udevadm', ['settle', '--timeout=10'], { ...opts, okExitCodes: [1] }).catch(() => {});
  }
}

/** Drops the kernel's partition nodes of `device` (before rewriting its table). */
export async function forgetPartitions(device: string, logger?: Logger): Promise<void> {
  await run('partx', forgetArgs(device), {
    okExitCodes: [1],
    ...(logger ? { logger } : {}),
    purpose: `removing the old partitions of ${device} from the kernel`,
  });
}
