/**
 * `simplectl match-query QUERY`: which disks a volume query would get, in
 * what order and with what preparation, and why each other disk does not
 * match. Tests the query's passphrase against each encrypted candidate with
 * `cryptsetup open --test-passphrase` (nothing is mapped).
 *
 * Exports: `matchQuery(options, ctx)` → `MatchQueryResult`.
 */
import { testPassphrase } from '../adapters/cryptsetup.js';
import { summaryLine, ToolError } from '../adapters/exec.js';
import { queryPassphrase } from '../adapters/keys.js';
import { type HostIdentity, hostIdentity } from '../adapters/machine.js';
import { rereadPartitions } from '../adapters/partx.js';
import { type DiskReport, withShownAssignment } from '../core/disk-state.js';
import { type MatchResult, matchDisks } from '../core/match.js';
import { formatQuery, parseQuery, redactQuery, type VolumeQuery } from '../core/query.js';
import type { CommandContext } from './context.js';
import { savedAssignments, type VolumeStateScope } from './disk-assignments.js';
import { type ScanDisksOptions, scanDisks } from './scan-disks.js';

export interface MatchQueryOptions {
  /** A volume name, or a query parsed already. */
  query: string | VolumeQuery;
  /** The plugin's `-o` options, merged over the name (only when `query` is a string). */
  options?: Readonly<Record<string, string>>;
  /** Kernel-name globs limiting the scan (see scanDisks). */
  include?: readonly string[];
  /** The volume asking: disks already assigned to it count as available. */
  volume?: string;
  assignmentOf?: ScanDisksOptions['assignmentOf'];
  /**
   * Honour the disk assignments of this volume state, as a mount would: disks
   * another (exclusive) volume holds do not match; those of the volume named
   * `volume` (default: the query as given) do. Ignored with `assignmentOf` or `disks`.
   */
  volumeState?: VolumeStateScope;
  /** A scan done already (skips scanning). */
  disks?: readonly DiskReport[];
  host?: HostIdentity;
  env?: NodeJS.ProcessEnv;
}

export interface MatchQueryResult extends MatchResult {
  /** The volume name as given, passphrase redacted (the canonical query when none was given). */
  name: string;
  /** Canonical query, with the `-o` options merged in, passphrase redacted. */
  query: string;
  minDisks: number;
  maxDisks: number;
}

export async function matchQuery(options: MatchQueryOptions, ctx: CommandContext): Promise<MatchQueryResult> {
  const query =
    typeof options.query === 'string' ? parseQuery(options.query, options.options ?? {}) : options.query;
  const host = options.host ?? (await hostIdentity());
  const fromState = !options.disks && !options.assignmentOf && options.volumeState !== undefined;
  const assignmentOf =
    options.assignmentOf ?? (fromState ? await savedAssignments(options.volumeState!, ctx.log) : undefined);
  const volume =
    options.volume ?? (fromState && typeof options.query === 'string' ? options.query : undefined);
  const disks =
    options.disks ??
    (await scanDisks(
      { include: options.include ?? [], host, ...(assignmentOf ? { assignmentOf } : {}) },
      ctx,
    ));
  const passphrase = await queryPassphrase(query, {
    log: ctx.log,
    ...(typeof options.query === 'string' ? { name: options.query } : {}),
    ...(options.env ? { env: options.env } : {}),
  });
  const unlocks = new Map<string, boolean | string>();
  if (passphrase !== null) {
    for (const disk of disks) {
      if (disk.state !== 'initialised' || disk.label !== query.label || !disk.encrypted) continue;
      ctx.progress(`testing the passphrase on ${disk.device}`);
      // Without udev the kernel may not have the partition nodes yet.
      if (!disk.dataPartition.present) await rereadPartitions(disk.device, ctx.log);
      // One disk whose header cannot be read (no LUKS there after all) is that disk's rejection,
      // not the end of the match for every other disk of the label.
      const unlock = await testPassphrase(disk.dataPartition.device, passphrase, ctx.log).catch(
        (error: unknown) => unlockFailure(error),
      );
      unlocks.set(disk.device, unlock);
    }
  }
  const result = matchDisks(query, disks, host, { unlocks, ...(volume ? { volume } : {}) });
  return {
    name:
      typeof options.query === 'string' ? redactQuery(options.query) : formatQuery(query, { redact: true }),
    query: formatQuery(query, { redact: true }),
    minDisks: query.minDisks,
    maxDisks: query.maxDisks,
    ...shownAssignments(result),
  };
}

/** Why a passphrase test failed, in a rejection's words: what cryptsetup said, else the error. */
function unlockFailure(error: unknown): string {
  const said = error instanceof ToolError ? summaryLine(error.stderr) : '';
  return (said || (error instanceof Error ? error.message : String(error))).replace(/\.$/, '');
}

/** The result with every disk's assignment naming volumes masked (their names may hold passphrases). */
function shownAssignments(result: MatchResult): MatchResult {
  const show = <T extends DiskReport>(disk: T): T => withShownAssignment(disk, redactQuery);
  return {
    ...result,
    chosen: result.chosen.map((d) => show(d)),
    spare: result.spare.map((d) => show(d)),
    rejected: result.rejected.map((r) => ({ ...r, disk: show(r.disk) })),
  };
}
