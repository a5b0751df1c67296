/**
 * Files deleted while a program holds them open, which on a local disk it
 * goes on reading until it closes them. The kernel keeps such a file's node
 * (by its id) until its last descriptor is closed, and asks the daemon for
 * its attributes and, once it has dropped the pages, its data. By path
 * there is nothing to answer with any more: this module keeps both, as
 * they were when the name went, from the moment the mount hears of the
 * deletion (its own unlink or rename over it, or another client's through
 * the watch) until the kernel forgets the node.
 *
 * A directory is kept too, by its attributes, for a program working in it
 * (its current directory): `stat .` and `cd ..` go on working (the kernel
 * checks the directory's permissions on the way out), and it lists nothing,
 * as a removed directory does on a local disk.
 *
 * A program may also open such a node after its name went: its path walk
 * reached the node just before the mount heard of the deletion (another
 * host replacing the file by a rename over it, many times a second). As on
 * a local disk, it opens the file it reached, as it was (fuse/ops.ts).
 *
 * The attributes kept are memory's, else the ones the kernel was last given
 * (core/fuse/node-table.ts), so they are always there. The data is only
 * what memory held. A program whose open JavaScript answered reads the
 * file's open buffer anyway. One whose open the native reader answered
 * (request-reader.ts), or the kernel on a read-only mount, reads the data
 * the cache held; should the cache have dropped it for room before the
 * deletion, such a read fails (ENOENT), as every read did before.
 */
import type { NodeTable } from '../../core/fuse/node-table.js';
import { S_IFDIR, S_IFMT, S_IFREG } from '../../core/zkfs/attrs.js';
import { FsError } from '../../core/zkfs/errors.js';
import { type FileAttr, withOpenChanges } from '../zkfs/attr-ops.js';
import type { OpenFile } from '../zkfs/open-files.js';
import type { LastSeen, ZkVfs } from '../zkfs/vfs.js';

/** A deleted file (or directory) as its open descriptors still see it. */
export interface Orphan {
  /** Its attributes, with no link left. */
  attr: FileAttr;
  /** A file's data, when memory held it. */
  data: Buffer | undefined;
  /** Its open buffer here, where a program writing to it keeps changes that cannot be written back. */
  open: OpenFile | undefined;
}

/** A name about to go, with what its node will still answer (see `gone`). */
export interface Leaving {
  id: number;
  path: string;
  orphan: Orphan | undefined;
}

export class Orphans {
  private readonly kept = new Map<number, Orphan>();

  constructor(
    private readonly nodes: NodeTable<FileAttr>,
    private readonly vfs: Pick<ZkVfs, 'lastSeen'>,
  ) {}

  /**
   * What the node at `path` will answer once the name is gone, taken now,
   * before a change drops it from memory (or `seen`, where memory may
   * already hold the node made again under the name); undefined when the
   * kernel holds no node there.
   */
  leaving(path: string, seen?: LastSeen): Leaving | undefined {
    // The mount's root stays the root, deleted or not: made again, it is the same directory.
    const id = path === '/' ? undefined : this.nodes.idOf(path);
    if (id === undefined) return undefined;
    return { id, path, orphan: this.orphanOf(id, seen ?? this.vfs.lastSeen(path)) };
  }

  /**
   * What node `id` answers once its name is gone: its attributes as memory
   * holds them, else as the kernel was last given them. Memory may lack them
   * when the name goes: another host's change to the directory's metadata
   * (which holds them) dropped them moments before, as a rename over a file
   * does, and they are read again only when asked for.
   */
  private orphanOf(id: number, seen: LastSeen | undefined): Orphan | undefined {
    const attr = seen?.attr ?? this.nodes.told(id);
    if (!attr) return undefined;
    const type = attr.mode & S_IFMT;
    if (type === S_IFDIR) return { attr: { ...attr, nlink: 0 }, data: undefined, open: undefined };
    if (type !== S_IFREG) return undefined;
    // A file open here holds its data too (read in when it was opened): a file made here and
    // renamed over another, then deleted, may be in no cache, and was given to the kernel empty.
    const data = seen?.data ?? seen?.open?.buffer.content();
    // The data memory holds is the node's latest; the size the kernel was given may be older.
    const size = seen?.attr || !data ? attr.size : data.length;
    return { attr: { ...attr, size, nlink: 0 }, data, open: seen?.open };
  }

  /**
   * The name of `leaving` is gone: its node answers from what was kept, and
   * a new file made under the name becomes a new node. Does nothing when the
   * name has meanwhile come to stand for another node.
   */
  gone(leaving: Leaving | undefined): void {
    if (!leaving || this.nodes.idOf(leaving.path) !== leaving.id) return;
    if (leaving.orphan) this.kept.set(leaving.id, leaving.orphan);
    this.nodes.removed(leaving.path);
  }

  /** The attributes of deleted node `id` (its size as a program writing to it here sees it). */
  attr(id: number): FileAttr {
    const { open, attr } = this.get(id);
    return withOpenChanges(open, attr);
  }

  /** Up to `length` bytes of deleted node `id` from `position`. */
  read(id: number, length: number, position: number): Buffer {
    const { data } = this.get(id);
    if (!data) throw new FsError('ENOENT', `node ${id} was deleted and its data was not in memory`);
    return data.subarray(position, position + length);
  }

  /** Whether node `id` is a deleted file kept here with its data, which an open of it can read. */
  readable(id: number): boolean {
    return this.kept.get(id)?.data !== undefined;
  }

  /** Whether node `id` is a deleted one kept here. */
  has(id: number): boolean {
    return this.kept.has(id);
  }

  /** The kernel let go of node `id`: nothing reads it any more. */
  forgotten(id: number): void {
    this.kept.delete(id);
  }

  private get(id: number): Orphan {
    const orphan = this.kept.get(id);
    if (!orphan) throw new FsError('ENOENT', `node ${id} is no longer in the tree`);
    return orphan;
  }
}
