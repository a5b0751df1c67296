/**
 * `simplectl scan-disks`: every whole disk (or exactly those `include`
 * names), classified as blank, initialised or rejected.
 *
 * Exports: `scanDisks(options, ctx)` → `DiskReport[]`, `inspectAndClassify(device, host, ctx)`.
 * The volume layer passes `assignmentOf` to mark disks its state assigns to volumes; the CLI
 * passes `volumeState` to show them.
 */
import { inspectDisk, listBlockDevices } from '../adapters/block-devices.js';
import { type HostIdentity, hostIdentity } from '../adapters/machine.js';
import type { SysBlockDevice } from '../adapters/sysfs.js';
import {
  classifyDisk,
  type DiskAssignment,
  type DiskReport,
  rejectSharedIds,
  withShownAssignment,
} from '../core/disk-state.js';
import { redactQuery } from '../core/query.js';
import type { CommandContext } from './context.js';
import { savedAssignments, type VolumeStateScope } from './disk-assignments.js';

export interface ScanDisksOptions {
  /** Kernel-name globs; when non-empty, exactly the matching whole devices (loop devices too). */
  include?: readonly string[];
  /** This host (read from the system when absent). */
  host?: HostIdentity;
  /** Which volumes hold a disk, from the volume layer's state; null/undefined when none. */
  assignmentOf?: (disk: DiskReport) => DiskAssignment | null | undefined;
  /**
   * Show which volume holds each disk, as this volume state says (names with
   * any passphrase masked). Ignored when `assignmentOf` is given.
   */
  volumeState?: VolumeStateScope;
}

/** Inspects and classifies one disk (a path, kernel name or sysfs entry). */
export async function inspectAndClassify(
  disk: string | SysBlockDevice,
  host: HostIdentity,
  ctx: CommandContext,
  assignmentOf?: ScanDisksOptions['assignmentOf'],
): Promise<DiskReport> {
  const facts = await inspectDisk(disk, { logger: ctx.log });
  const report = classifyDisk(facts, host);
  report.model = facts.model;
  report.assignment = assignmentOf?.(report) ?? null;
  return report;
}

export async function scanDisks(options: ScanDisksOptions, ctx: CommandContext): Promise<DiskReport[]> {
  const host = options.host ?? (await hostIdentity());
  const devices = await listBlockDevices({ include: options.include ?? [] });
  ctx.log.debug(`scan-disks: ${devices.length} device(s): ${devices.map((d) => d.name).join(' ')}`);
  const assignment =
    options.assignmentOf ??
    (options.volumeState ? await savedAssignments(options.volumeState, ctx.log) : undefined);
  const reports: DiskReport[] = [];
  for (const device of devices) {
    ctx.progress(`probing ${device.device}`);
    reports.push(await inspectAndClassify(device, host, ctx, assignment));
  }
  const checked = rejectSharedIds(reports);
  return options.assignmentOf ? checked : checked.map((r) => withShownAssignment(r, redactQuery));
}
