/**
 * The first step of every volume operation: scan the disks in scope, bring
 * the saved state in line with the machine (core/assignments.ts reconcile),
 * and mark each scanned disk with the volumes that hold it. Runs under the
 * state lock; commits only when reconciliation changed something.
 */
import * as cryptsetup from '../adapters/cryptsetup.js';
import { blockDeviceFacts, isPresent } from '../adapters/disk-watch.js';
import type { HostIdentity } from '../adapters/machine.js';
import { isVolumeRoot } from '../adapters/mount.js';
import { type MountEntry, mountAt, readMountTable } from '../adapters/mountinfo.js';
import { isProcessAlive } from '../adapters/processes.js';
import { canonicalDir } from '../adapters/real-path.js';
import type { StateSession } from '../adapters/volume-state.js';
import {
  assignmentOf,
  type HostFacts,
  handOverMapper,
  reconcile,
  type VolumesState,
} from '../core/assignments.js';
import { type DiskReport, diskId } from '../core/disk-state.js';
import { errorMessage } from '../core/errors.js';
import { kernelName } from '../core/names.js';
import { redactQuery } from '../core/query.js';
import type { CommandContext } from './context.js';
import { scanDisks } from './scan-disks.js';

export interface SurveyScope {
  /** Kernel-name globs of the devices to consider (`--include`); empty = every whole disk. */
  include: readonly string[];
  host: HostIdentity;
}

export interface Survey {
  /** Disks in scope, present and not being detached, with `assignment` filled from the state. */
  disks: DiskReport[];
  /** The mount table as read at the start. */
  table: MountEntry[];
}

/** sysfs presence and diskseq of every device the state mentions, plus those scanned. */
async function deviceSeqs(devices: Iterable<string>): Promise<Map<string, number | null | undefined>> {
  const seqs = new Map<string, number | null | undefined>();
  for (const device of new Set(devices)) {
    const facts = await blockDeviceFacts(kernelName(device));
    seqs.set(device, isPresent(facts) ? (facts.diskseq ?? null) : undefined);
  }
  return seqs;
}

/** The machine, as reconcile() asks about it. */
export async function hostFacts(
  state: VolumesState,
  disks: readonly DiskReport[],
  table: readonly MountEntry[],
): Promise<HostFacts> {
  const recorded = Object.values(state.volumes).flatMap((v) => Object.values(v.disks).map((d) => d.device));
  const seqs = await deviceSeqs([...recorded, ...disks.map((d) => d.device)]);
  const located = new Map<string, { device: string; diskseq: number | null }>();
  const held = new Map<string, string | null>();
  for (const disk of disks) {
    if (disk.state === 'initialised') {
      located.set(diskId(disk), { device: disk.device, diskseq: seqs.get(disk.device) ?? null });
      held.set(disk.device, diskId(disk));
    } else if (disk.state === 'blank') held.set(disk.device, null);
    // A copy of a disk (rejected, sharing its id) is that disk as far as anyone can tell.
    else if (disk.state === 'rejected' && disk.sharedId !== undefined) held.set(disk.device, disk.sharedId);
  }
  const realDirs = new Map<string, string>();
  for (const v of Object.values(state.volumes)) {
    if (v.mount) realDirs.set(v.mount.dir, await canonicalDir(v.mount.dir));
  }
  return {
    isVolumeRoot: (dir) => isVolumeRoot(mountAt(table, dir)),
    realDir: (dir) => realDirs.get(dir) ?? dir,
    isMounted: (path) => mountAt(table, path) !== undefined,
    deviceSeq: (device) => seqs.get(device),
    locate: (id) => located.get(id),
    heldBy: (device) => held.get(device),
    isWatcherAlive: (w) => isProcessAlive(w.pid, w.startTime),
  };
}

/** Mapper names still used by some mount in the state. */
export function mappersInUse(state: VolumesState): Set<string> {
  const used = new Set<string>();
  for (const v of Object.values(state.volumes)) {
    for (const d of Object.values(v.mount?.disks ?? {})) {
      if (d.mapper) used.add(d.mapper);
      // A volume sharing a mapping another one opened records only its source.
      if (d.source.startsWith('/dev/mapper/')) used.add(d.source.slice('/dev/mapper/'.length));
    }
  }
  return used;
}

/** Scans, reconciles and annotates; see the module comment. */
export async function survey(
  session: StateSession,
  scope: SurveyScope,
  ctx: CommandContext,
): Promise<Survey> {
  const table = await readMountTable();
  const scanned = await scanDisks({ include: scope.include, host: scope.host }, ctx);
  const facts = await hostFacts(session.state, scanned, table);
  const result = reconcile(session.state, facts, { show: redactQuery });
  for (const note of result.notes) ctx.log.info(note);
  if (result.notes.length > 0) await session.commit(result.state);
  const used = mappersInUse(session.state);
  for (const mapper of result.orphanMappers) {
    if (used.has(mapper)) {
      // Another volume reads through it, having found it open: that one closes it now.
      const handed = handOverMapper(session.state, mapper);
      if (handed !== session.state) await session.commit(handed);
      continue;
    }
    await cryptsetup.close(mapper, ctx.log).catch((error) => {
      ctx.log.debug(`mapper ${mapper} of a forgotten mount not closed: ${errorMessage(error)}`);
    });
  }
  const disks: DiskReport[] = [];
  for (const disk of scanned) {
    // A loop device detached while busy is still listed until released: it is leaving, not a candidate.
    if (!isPresent(await blockDeviceFacts(disk.name))) continue;
    disk.assignment = disk.state === 'initialised' ? assignmentOf(session.state, diskId(disk)) : null;
    disks.push(disk);
  }
  return { disks, table };
}
