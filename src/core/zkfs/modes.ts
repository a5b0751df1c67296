/**
 * How a znode appears in the mount, per mode (shared/reference.md §3):
 *
 * - dir:    every znode is a directory; each lists `_zoo_data_`, its data.
 *           Regular files can only be `_zoo_data_`.
 * - file:   a znode with children is a directory, one without is a file —
 *           except that a znode made by mkdir here stays a directory while
 *           empty (otherwise mkdir could not succeed: the kernel checks that
 *           the new entry is a directory).
 * - hybrid: files created as files stay files and directories stay
 *           directories, on every host, because the type is stored in
 *           ZooKeeper (attrs.ts). Without a stored type a znode with children
 *           or with empty data is a directory, else a file.
 *
 * In every mode a znode with children is a directory, so data are never
 * hidden behind a file that cannot list them. In file and hybrid mode a
 * directory whose znode has data also lists `_zoo_data_`.
 */

export const ZKFS_MODES = ['hybrid', 'dir', 'file'] as const;
export type ZkfsMode = (typeof ZKFS_MODES)[number];

export type NodeKind = 'file' | 'dir';

export interface NodeFacts {
  numChildren: number;
  dataLength: number;
  /** The type recorded in ZooKeeper when the node was created here, if any. */
  storedType?: NodeKind | undefined;
}

export function isZkfsMode(value: string): value is ZkfsMode {
  return (ZKFS_MODES as readonly string[]).includes(value);
}

/** Whether a znode is shown as a file or a directory. The mount root is always a directory. */
export function nodeKind(mode: ZkfsMode, facts: NodeFacts): NodeKind {
  if (mode === 'dir' || facts.numChildren > 0) return 'dir';
  if (mode === 'file') return facts.storedType === 'dir' ? 'dir' : 'file';
  if (facts.storedType) return facts.storedType;
  return facts.dataLength === 0 ? 'dir' : 'file';
}

/** Whether a directory lists its `_zoo_data_` pseudo-file. */
export function showsDataFile(mode: ZkfsMode, dataLength: number): boolean {
  return mode === 'dir' || dataLength > 0;
}

/** Whether regular files (other than `_zoo_data_`) may be created. */
export function allowsRegularFiles(mode: ZkfsMode): boolean {
  return mode !== 'dir';
}
