/**
 * The steps shared by `simplectl mount` and the dynamic-mounts watcher:
 * choose disks for a volume, make chosen blank disks usable, number them, and
 * bring a mounted volume's disks in line with what is attached (add newcomers,
 * drop disks that left). All of it runs under the state lock.
 */
import { INLINE_PASSPHRASE_WARNING } from '../adapters/keys.js';
import type { HostIdentity } from '../adapters/machine.js';
import type { StateSession } from '../adapters/volume-state.js';
import {
  type AssignedDisk,
  assignDisks,
  ensureVolume,
  handOverMapper,
  type MountedDisk,
  releaseDisk,
  setMount,
  type VolumeRecord,
} from '../core/assignments.js';
import { type DiskReport, diskId, type InitialisedDisk } from '../core/disk-state.js';
import { OperationError } from '../core/errors.js';
import type { ChosenDisk, MatchResult } from '../core/match.js';
import { allocateNumbers } from '../core/numbering.js';
import { redactQuery, type VolumeQuery } from '../core/query.js';
import { layoutChanges, layoutEntries } from '../core/volume-layout.js';
import type { CommandContext } from './context.js';
import { matchQuery } from './match-query.js';
import { Undo } from './undo.js';
import { currentDiskseq, mountDisk, unmountDisk } from './volume-disks.js';
import { prepareDisk } from './volume-prepare.js';
import { changeSealedLayout } from './volume-root.js';
import { mappersInUse } from './volume-survey.js';

/** A volume as the assembly steps need it. */
export interface VolumeSpec {
  /** The volume's identity: the name exactly as given. */
  name: string;
  query: VolumeQuery;
  /** Settings given besides the name (plugin `-o`). */
  options: Record<string, string>;
  passphrase: string | null;
}

export interface AssembleContext {
  session: StateSession;
  host: HostIdentity;
  ctx: CommandContext;
}

/** The name to show in messages and results (any passphrase replaced by ***). */
export function shown(spec: VolumeSpec): string {
  return redactQuery(spec.name);
}

/** Which disks the volume gets from `disks`, tested against the query's passphrase. */
export async function chooseDisks(
  spec: VolumeSpec,
  disks: DiskReport[],
  ac: AssembleContext,
): Promise<MatchResult> {
  return matchQuery({ query: spec.query, disks, volume: spec.name, host: ac.host }, saidOnce(ac));
}

/**
 * The context for a handler the assembly passes the parsed query to. The
 * caller has read the passphrase, and warned about it if the volume name holds
 * it, already: said once, and never for one given beside the name (`-o`),
 * which the handler could not tell apart.
 */
export function saidOnce(ac: AssembleContext): CommandContext {
  const log = {
    ...ac.ctx.log,
    warn: (m: string) => (m === INLINE_PASSPHRASE_WARNING ? undefined : ac.ctx.log.warn(m)),
  };
  return { ...ac.ctx, log };
}

/** The error for a volume that cannot get min-disks disks; `detail` says why each other disk did not match. */
export function tooFewDisks(spec: VolumeSpec, match: MatchResult): OperationError {
  const lines = match.rejected.map((r) => `${r.disk.device}: ${r.reasons.join('; ') || 'does not match'}`);
  const found = match.chosen.length;
  return new OperationError(
    `volume ${shown(spec)} needs at least ${spec.query.minDisks} disk${spec.query.minDisks === 1 ? '' : 's'} ` +
      `labelled '${spec.query.label}'; only ${found} ${found === 1 ? 'is' : 'are'} available`,
    lines.length > 0 ? { detail: lines.join('\n') } : {},
  );
}

/** Makes each chosen disk an initialised disk of the query's label (initialising blank ones). */
export async function prepareChosen(
  spec: VolumeSpec,
  chosen: readonly ChosenDisk[],
  ac: AssembleContext,
): Promise<InitialisedDisk[]> {
  const ready: InitialisedDisk[] = [];
  for (const disk of chosen) ready.push(await prepareDisk(spec, disk, ac));
  return ready;
}

/**
 * Numbers for disks joining `volume` (numeric naming); existing members keep
 * theirs. Joining a volume in use (`live`), a newcomer avoids the numbers of the
 * volume's disks that left, while another is free: a disk that dropped out for a
 * moment must not find a stranger in its directory, where its container looks
 * for its data. A volume mounted afresh numbers from the lowest free number.
 */
export function numbersFor(
  spec: VolumeSpec,
  volume: VolumeRecord | undefined,
  joining: readonly InitialisedDisk[],
  live = false,
): Map<string, number | null> {
  const result = new Map<string, number | null>();
  if (spec.query.namingStyle !== 'numeric') {
    for (const d of joining) result.set(diskId(d), null);
    return result;
  }
  const members = Object.values(volume?.disks ?? {});
  const fresh = joining.filter((d) => volume?.disks[diskId(d)]?.number == null);
  for (const d of joining) {
    const n = volume?.disks[diskId(d)]?.number;
    if (n != null) result.set(diskId(d), n);
  }
  const numbered = allocateOrExplain(spec, members, joining, {
    taken: members.map((m) => m.number).filter((n): n is number => n !== null),
    wanted: fresh.map((d) => ({
      id: diskId(d),
      preferred:
        volume?.rememberedNumbers[diskId(d)] ??
        (spec.query.persistNumbering && /^\d+$/.test(d.numbering) ? Number(d.numbering) : null),
    })),
    limit: spec.query.maxDisks,
    // Numbers of the volume's disks that left (released, remembered for their return).
    reserved: live
      ? Object.entries(volume?.rememberedNumbers ?? {})
          .filter(([id]) => !volume?.disks[id] && !joining.some((d) => diskId(d) === id))
          .map(([, n]) => n)
      : [],
  });
  for (const [id, n] of numbered) result.set(id, n);
  return result;
}

/**
 * allocateNumbers, whose failure (max-disks' numbers all held, some by
 * disks of the volume not here now) is told as what it is, not as an
 * internal error.
 */
function allocateOrExplain(
  spec: VolumeSpec,
  members: readonly AssignedDisk[],
  joining: readonly InitialisedDisk[],
  options: Parameters<typeof allocateNumbers>[0],
): Map<string, number> {
  try {
    return allocateNumbers(options);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    const here = new Set(joining.map((d) => diskId(d)));
    const away = members.filter((m) => !here.has(m.id));
    const newcomers = joining.filter((d) => !members.some((m) => m.id === diskId(d)));
    throw new OperationError(
      `volume ${shown(spec)}: no disk number below max-disks ${spec.query.maxDisks} is left for ` +
        `${newcomers.map((d) => d.device).join(', ')}: ${away.length > 0 ? `disks of the volume not here hold them (${away.map((m) => `${m.id}, last seen as ${m.device}`).join('; ')}); if they are gone for good, release them (simplectl umount --release, or simplectl release VOLUME)` : 'its disks hold them all'}`,
      { cause: error },
    );
  }
}

/** Records `disks` as assigned to the volume (creating its record), with their numbers. */
export async function assign(
  spec: VolumeSpec,
  disks: readonly InitialisedDisk[],
  numbers: ReadonlyMap<string, number | null>,
  ac: AssembleContext,
): Promise<void> {
  const now = new Date().toISOString();
  let next = ensureVolume(ac.session.state, spec.name, spec.query.exclusive, now, spec.options);
  const rows = [];
  for (const d of disks) {
    rows.push({
      id: diskId(d),
      number: numbers.get(diskId(d)) ?? null,
      device: d.device,
      diskseq: await currentDiskseq(d.device),
    });
  }
  next = assignDisks(next, spec.name, rows, now);
  await ac.session.commit(next);
}

/** The directory entries of a mounted volume given its mounted disks. */
export function entriesFor(spec: VolumeSpec, volume: VolumeRecord, mounted: readonly { id: string }[]) {
  return layoutEntries(
    spec.query,
    mounted.map((m) => ({ id: m.id, number: volume.disks[m.id]?.number ?? null })),
  );
}

export interface SyncOutcome {
  added: MountedDisk[];
  removed: MountedDisk[];
}

/**
 * One pass of dynamic-mounts on a mounted volume: unmount (lazily) disks that
 * left and release them, then mount newly attached matching disks. `present`
 * are the disks in scope now (from survey()).
 */
export async function syncMountedVolume(
  spec: VolumeSpec,
  present: DiskReport[],
  ac: AssembleContext,
): Promise<SyncOutcome> {
  const { ctx } = ac;
  const volume = ac.session.state.volumes[spec.name];
  const mount = volume?.mount;
  if (!volume || !mount) return { added: [], removed: [] };
  const root = mount.dir;
  // Each disk present, as `id device`. A copy of a mounted disk attached since makes both
  // rejected (rejectSharedIds), which is no reason to take the mounted one away.
  const here = new Set<string>();
  for (const d of present) {
    const id = d.state === 'initialised' ? diskId(d) : d.state === 'rejected' ? d.sharedId : undefined;
    if (id !== undefined) here.add(`${id} ${d.device}`);
  }

  // Disks that left: their device is gone, detaching, holds another disk now, or holds new
  // media under the same name (a changed diskseq: unplugged and plugged back between passes).
  const removed: MountedDisk[] = [];
  for (const m of Object.values(mount.disks)) {
    const recorded = volume.disks[m.id]?.diskseq ?? null;
    const seq = await currentDiskseq(m.device);
    const replaced = recorded !== null && seq !== null && seq !== recorded;
    if (!here.has(`${m.id} ${m.device}`) || replaced) removed.push(m);
  }
  let state = ac.session.state;
  for (const m of removed) {
    ctx.log.info(`volume ${shown(spec)}: disk ${m.id} (${m.device}) left; unmounting ${m.mountPoint}`);
    const others = releaseDisk(state, spec.name, m.id);
    const inUse = mappersInUse(others);
    await unmountDisk(m, { lazy: true, mapperInUse: (x) => inUse.has(x) }, ctx);
    // A mapping another volume still reads through stays open: it becomes that volume's to close.
    state = m.mapper !== null ? handOverMapper(others, m.mapper) : others;
  }
  if (removed.length > 0) {
    const after = state.volumes[spec.name]!;
    const remaining = Object.values(after.mount?.disks ?? {});
    const before = [...Object.values(mount.disks).map((m) => m.dirName), ...mount.placeholders];
    const entries = entriesFor(spec, after, remaining);
    await changeSealedLayout(root, layoutChanges(before, entries), ctx);
    state = setMount(state, spec.name, {
      ...after.mount!,
      placeholders: entries.filter((e) => e.diskId === null).map((e) => e.name),
    });
    await ac.session.commit(state);
  }

  // Newcomers: chosen by the matcher (members first, up to max-disks) and not mounted yet.
  const match = await chooseDisks(spec, present, ac);
  const mountedIds = new Set(Object.keys(ac.session.state.volumes[spec.name]?.mount?.disks ?? {}));
  const joining = match.chosen.filter((d) => d.state !== 'initialised' || !mountedIds.has(diskId(d)));
  if (joining.length === 0) return { added: [], removed };
  const ready = await prepareChosen(spec, joining, ac);
  const added = await addToMountedVolume(spec, ready, ac);
  return { added, removed };
}

/** Assigns, numbers and mounts `disks` into the already sealed root of a mounted volume. */
export async function addToMountedVolume(
  spec: VolumeSpec,
  disks: readonly InitialisedDisk[],
  ac: AssembleContext,
): Promise<MountedDisk[]> {
  const { ctx } = ac;
  const numbers = numbersFor(spec, ac.session.state.volumes[spec.name], disks, true);
  await assign(spec, disks, numbers, ac);
  const volume = ac.session.state.volumes[spec.name]!;
  const mount = volume.mount!;
  const existing = Object.values(mount.disks);
  const entries = entriesFor(spec, volume, [...existing, ...disks.map((d) => ({ id: diskId(d) }))]);
  const before = [...existing.map((m) => m.dirName), ...mount.placeholders];
  await changeSealedLayout(mount.dir, layoutChanges(before, entries), ctx);
  const added: MountedDisk[] = [];
  for (const disk of disks) {
    const entry = entries.find((e) => e.diskId === diskId(disk))!;
    const undo = new Undo();
    try {
      added.push(
        await mountDisk(
          {
            disk,
            root: mount.dir,
            dirName: entry.name,
            passphrase: spec.passphrase,
            mapperInUse: (name) => mappersInUse(ac.session.state).has(name),
          },
          ctx,
          undo,
        ),
      );
      ctx.log.info(`volume ${shown(spec)}: added ${disk.device} as ${entry.name}`);
    } catch (error) {
      await undo.run(ctx.log);
      // Leave it unassigned so the next pass (or another volume) may try again.
      await ac.session.commit(releaseDisk(ac.session.state, spec.name, diskId(disk)));
      ctx.log.error(`volume ${shown(spec)}: could not add ${disk.device}: ${(error as Error).message}`);
    }
  }
  const now = ac.session.state.volumes[spec.name]!;
  const mountedNow = [...existing, ...added];
  const finalEntries = entriesFor(spec, now, mountedNow);
  await changeSealedLayout(
    mount.dir,
    layoutChanges(
      entries.map((e) => e.name),
      finalEntries,
    ),
    ctx,
  );
  await ac.session.commit(
    setMount(ac.session.state, spec.name, {
      ...now.mount!,
      disks: Object.fromEntries(mountedNow.map((m) => [m.id, m])),
      placeholders: finalEntries.filter((e) => e.diskId === null).map((e) => e.name),
    }),
  );
  return added;
}
