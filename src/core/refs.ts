/**
 * Reference counting of Docker mounts, per Mount `ID` (shared/reference.md §2).
 * The engine may send the same ID twice (it mounts once to copy image content
 * in), may Unmount an ID it never mounted, or may forget to Unmount across its
 * own restart; these transitions are pure so every case is table-tested.
 */
import { parseWholeNumberOption } from './whole-number-option.js';

/** Outstanding Mount calls per engine mount ID. Absent IDs have count 0; counts are never below 1. */
export type MountRefs = Readonly<Record<string, number>>;

/** Total outstanding mounts over every ID. */
export function totalRefs(refs: MountRefs): number {
  let total = 0;
  for (const count of Object.values(refs)) total += count;
  return total;
}

export interface AddRefResult {
  refs: MountRefs;
  /** True when nothing held the volume before: the caller must mount it. */
  first: boolean;
}

/**
 * The count of `id`. IDs are any string the engine (or anyone on the socket)
 * sends: one named like what every object has (constructor, __proto__) is
 * an ID like any other, never the object's own.
 */
function countOf(refs: MountRefs, id: string): number {
  return Object.hasOwn(refs, id) ? (refs[id] ?? 0) : 0;
}

/** `refs` with `id` counted `count` times (absent at 0), in their order, built so no name can set a prototype. */
function withCount(refs: MountRefs, id: string, count: number): MountRefs {
  const entries = Object.entries(refs).map(([key, n]): [string, number] => [key, key === id ? count : n]);
  if (!Object.hasOwn(refs, id)) entries.push([id, count]);
  return Object.fromEntries(entries.filter(([, n]) => n > 0));
}

/** One more Mount by `id`. */
export function addRef(refs: MountRefs, id: string): AddRefResult {
  return { refs: withCount(refs, id, countOf(refs, id) + 1), first: totalRefs(refs) === 0 };
}

export interface ReleaseRefResult {
  refs: MountRefs;
  /** False when `id` held nothing: the Unmount is ignored and the counts stay as they were. */
  known: boolean;
  /** True when this Unmount released the last reference: the caller must unmount. */
  last: boolean;
}

/** One Unmount by `id`. An unknown ID changes nothing, so no count ever drops below zero. */
export function releaseRef(refs: MountRefs, id: string): ReleaseRefResult {
  const count = countOf(refs, id);
  if (count <= 0) return { refs, known: false, last: false };
  const next = withCount(refs, id, count - 1);
  return { refs: next, known: true, last: totalRefs(next) === 0 };
}

/** What start-up must do to make the mount table agree with the saved references. */
export type ReconcileAction = 'none' | 'keep' | 'remount' | 'unmount' | 'forget';

/**
 * How start-up finds a volume's mount point: mounted and served, listed in the
 * mount table but without a server (a FUSE daemon that died: containers still
 * hold it), or not mounted at all.
 */
export type MountSeen = 'served' | 'dead' | 'absent';

/**
 * The mount table, not the saved references, says who can still hold a
 * volume (shared/reference.md §2). References to a volume whose mount is
 * gone altogether are stale: after a reboot no container survived (and the
 * engine sends no Unmount for them, but Mounts again under the same IDs),
 * and after an unmount by hand no container reaches a new mount there. They
 * are forgotten, not mounted again for nobody. A mount whose server died is
 * still held by its containers: it is mounted afresh.
 */
export function reconcileAction(refs: MountRefs, seen: MountSeen): ReconcileAction {
  const used = totalRefs(refs) > 0;
  if (seen === 'served') return used ? 'keep' : 'unmount';
  if (seen === 'dead') return used ? 'remount' : 'none';
  return used ? 'forget' : 'none';
}

/** Drops malformed entries (non-positive or non-integer counts) from refs read back from disk. */
export function sanitizeRefs(value: unknown): MountRefs {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  return Object.fromEntries(
    Object.entries(value).filter(
      ([, count]) => typeof count === 'number' && Number.isInteger(count) && count > 0,
    ),
  );
}

export interface UnheldCheck {
  refs: MountRefs;
  /** Whether the volume is mounted (a volume not mounted is start-up's or the next Mount's). */
  mounted: boolean;
  /** Time since the volume's last Mount was answered, or since the plugin started if later. */
  quietMs: number;
  /** How long a volume must go without a Mount first; 0 never releases. */
  timeoutMs: number;
  /**
   * Users of the mount: other mount namespaces holding it (a container's),
   * and processes in the plugin's own using it (the engine copying files in);
   * undefined when the plugin cannot tell.
   */
  holders: number | undefined;
}

/**
 * Whether a volume's references are ones the engine will never release: it
 * forgets them when it is killed and restarted (its containers die with it,
 * and it sends no Unmount for them), so they would keep the volume mounted
 * for good. They are, when the volume is mounted, nothing uses the
 * mount any more, and no Mount came for a while (between a Mount and the
 * start of its container nothing holds the mount yet).
 */
export function unheldRefs(check: UnheldCheck): boolean {
  return (
    totalRefs(check.refs) > 0 &&
    check.mounted &&
    check.timeoutMs > 0 &&
    check.quietMs >= check.timeoutMs &&
    check.holders === 0
  );
}

/** Seconds without a Mount before unheld references are released (serve-plugin --release-unheld). */
export const DEFAULT_RELEASE_UNHELD_S = 120;
const MAX_RELEASE_UNHELD_S = 86_400;

/** Parses --release-unheld: whole seconds from 0 (never) to a day. */
export function parseReleaseUnheld(value: string | number): number {
  return parseWholeNumberOption('--release-unheld', value, {
    unit: 'seconds',
    max: MAX_RELEASE_UNHELD_S,
    zero: 'never',
  });
}
