/**
 * What a mounted volume's root directory holds: one directory per disk,
 * `<basename><n>` (numeric naming) or `<basename><partition-uuid>` (uuid
 * naming), plus, with persist-numbering, an empty directory for every number
 * below max-disks that no disk fills. Pure: the mount code creates and removes
 * what `layoutEntries` and `layoutChanges` say.
 */

/** The query settings the layout depends on (field names as in core/query.ts VolumeQuery). */
export interface LayoutSettings {
  basename: string;
  namingStyle: 'numeric' | 'uuid';
  maxDisks: number;
  persistNumbering: boolean;
}

/** A disk as the layout sees it: its id (the data partition's UUID) and, for numeric naming, its number. */
export interface LayoutDisk {
  id: string;
  number: number | null;
}

export interface LayoutEntry {
  /** Directory name under the volume root. */
  name: string;
  /** The disk mounted there, or null for a persist-numbering placeholder. */
  diskId: string | null;
  number: number | null;
}

/** True when numbered placeholders are kept (persist-numbering with numeric naming and a max-disks). */
export function keepsPlaceholders(settings: LayoutSettings): boolean {
  return settings.persistNumbering && settings.namingStyle === 'numeric' && settings.maxDisks > 0;
}

/** A directory name must stay one path component. The query grammar already guarantees it; this guards state files. */
function checkComponent(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new RangeError(`'${name}' cannot be a directory name inside a volume`);
  }
  return name;
}

/** The directory name of one disk. */
export function diskDirName(settings: LayoutSettings, disk: LayoutDisk): string {
  if (settings.namingStyle === 'uuid') return checkComponent(`${settings.basename}${disk.id.toLowerCase()}`);
  if (disk.number === null)
    throw new RangeError(`disk ${disk.id} has no number in a numerically named volume`);
  return checkComponent(`${settings.basename}${disk.number}`);
}

/** Every directory of the volume root, disks and placeholders, in number (then name) order. */
export function layoutEntries(settings: LayoutSettings, disks: readonly LayoutDisk[]): LayoutEntry[] {
  const entries: LayoutEntry[] = disks.map((d) => ({
    name: diskDirName(settings, d),
    diskId: d.id,
    number: settings.namingStyle === 'numeric' ? d.number : null,
  }));
  if (keepsPlaceholders(settings)) {
    const filled = new Set(entries.map((e) => e.number));
    for (let n = 0; n < settings.maxDisks; n++) {
      if (!filled.has(n))
        entries.push({ name: diskDirName(settings, { id: '', number: n }), diskId: null, number: n });
    }
  }
  return entries.sort((a, b) =>
    a.number !== null && b.number !== null ? a.number - b.number : a.name.localeCompare(b.name),
  );
}

export interface LayoutChanges {
  /** Directories to create (absent now, needed after). */
  create: string[];
  /** Directories to remove (present now, not needed after). */
  remove: string[];
}

/** Directory names to create and remove to go from the `current` names to `next` entries. */
export function layoutChanges(current: readonly string[], next: readonly LayoutEntry[]): LayoutChanges {
  const have = new Set(current);
  const want = new Set(next.map((e) => e.name));
  return {
    create: [...want].filter((n) => !have.has(n)),
    remove: [...have].filter((n) => !want.has(n)),
  };
}
