/**
 * READDIR and READDIRPLUS answers. The kernel reads a listing in pieces that
 * fit its buffer, passing back the offset where the last one stopped; the
 * names are taken once, at offset 0, and the rest of the reads continue that
 * snapshot. With READDIRPLUS every entry carries its node and attributes, so
 * `ls -l` and `find` need no LOOKUP afterwards.
 */
import { childPath, type NodeTable } from '../../core/fuse/node-table.js';
import type { ArgReader, RequestHeader } from '../../core/fuse/protocol.js';
import { type DirEntry, direntReply, direntSize } from '../../core/fuse/replies.js';
import { S_IFMT, S_IFREG } from '../../core/zkfs/attrs.js';
import type { FileAttr } from '../zkfs/attr-ops.js';
import { NOT_CACHED } from '../zkfs/resolve.js';
import type { ZkVfs } from '../zkfs/vfs.js';
import { readOutsideGaps } from './gap-deletions.js';

/** An inode number no node has: for an entry that vanished between the listing and its attributes. */
const GONE_INO = 0xffffffff;

export class Listings {
  /** A directory's names as listed at offset 0, for the reads that continue it. */
  private readonly snapshots = new Map<number, string[]>();

  constructor(
    private readonly vfs: ZkVfs,
    private readonly nodes: NodeTable<FileAttr>,
    private readonly validS: () => number,
    /**
     * Told of each regular file handed out with its attributes, with where
     * changes stood (`since`) before they were read: ops.ts lets the native
     * reader answer its opens for reading, unless something changed since.
     */
    private readonly handedOut: {
      since(): number;
      file(nodeId: number, path: string, since: number): void;
    },
    /** Pending while names the kernel held across a watch gap are being checked (ops.ts). */
    private readonly gapSettled: () => Promise<void> | undefined = () => undefined,
  ) {}

  /** The reply to a READDIR(PLUS) of directory node `h.nodeId` at `dir`; `r` is at its arguments. */
  async reply(h: RequestHeader, r: ArgReader, dir: string, plus: boolean): Promise<Buffer> {
    r.u64(); // fh: none, the kernel opens directories itself
    const offset = r.u64();
    const size = r.u32();
    const since = this.handedOut.since();
    let names = this.snapshots.get(h.nodeId);
    if (offset === 0 || !names) {
      names = await this.vfs.readdir(dir); // '.' and '..' first
      this.snapshots.set(h.nodeId, names);
    }
    const chosen: DirEntry[] = [];
    let used = 0;
    for (let i = offset; i < names.length; i++) {
      // Every field set from the start: entries that gain fields later take shapes of their own.
      const e: DirEntry = {
        name: names[i] as string,
        nextOffset: i + 1,
        ino: h.nodeId,
        mode: 0o040000,
        nodeId: 0,
        attr: undefined,
      };
      const bytes = direntSize(e, plus);
      if (used + bytes > size) break;
      used += bytes;
      chosen.push(e);
    }
    if (chosen.length === 0) {
      this.snapshots.delete(h.nodeId);
      return direntReply(h.unique, [], plus, this.validS());
    }
    const children = chosen.filter((e) => e.name !== '.' && e.name !== '..');
    const paths = children.map((e) => childPath(dir, e.name));
    const attrs = plus ? await this.handingOut(dir, paths) : await this.attrsOf(dir, paths);
    children.forEach((e, i) => {
      const attr = attrs[i];
      if (!attr) {
        e.mode = 0;
        e.ino = GONE_INO;
        return;
      }
      const path = paths[i] as string;
      e.mode = attr.mode;
      if (plus) {
        // The kernel takes a reference to each node handed out this way, as with LOOKUP.
        e.nodeId = this.nodes.lookup(path, attr);
        e.ino = e.nodeId;
        e.attr = {
          ino: e.nodeId,
          size: attr.size,
          mode: attr.mode,
          nlink: attr.nlink,
          uid: attr.uid,
          gid: attr.gid,
          atimeMs: attr.atimeMs,
          mtimeMs: attr.mtimeMs,
          ctimeMs: attr.ctimeMs,
        };
        if ((attr.mode & S_IFMT) === S_IFREG) this.handedOut.file(e.nodeId, path, since);
      } else {
        e.ino = this.nodes.idOf(path) ?? GONE_INO;
      }
    });
    return direntReply(h.unique, chosen, plus, this.validS());
  }

  /**
   * The attributes of `paths` for READDIRPLUS, which hands their nodes to
   * the kernel as a lookup does, with what ops.ts checks there: a name the
   * kernel holds waits for the checks of a watch gap; entries read while
   * the watch was down or came back are read again once it is back (one
   * read then may be of a node since replaced unheard of); and entries
   * another client changed meanwhile are read again.
   */
  private async handingOut(dir: string, paths: readonly string[]): Promise<(FileAttr | undefined)[]> {
    const checks = this.gapSettled();
    if (checks) await checks;
    const { value: attrs, mark } = await readOutsideGaps(this.vfs, this.gapSettled, () =>
      this.attrsOf(dir, paths),
    );
    await this.rereadChanged(paths, attrs, mark);
    return attrs;
  }

  /**
   * Reads again the attributes of entries another client changed while
   * they were read: the change's notice found no node of them in the
   * kernel to drop, and the kernel would keep what was read before it for
   * --attr-timeout (as for a lookup, ops.ts).
   */
  private async rereadChanged(
    paths: readonly string[],
    attrs: (FileAttr | undefined)[],
    mark: number | undefined,
  ): Promise<void> {
    const changed: number[] = [];
    for (let i = 0; i < paths.length; i++)
      if (this.vfs.changedSince(paths[i] as string, mark)) changed.push(i);
    await Promise.all(
      changed.map(async (i) => {
        attrs[i] = await this.vfs.getattr(paths[i] as string).catch(() => undefined);
      }),
    );
  }

  /**
   * The kernel let go of directory node `id`: a listing it stopped reading
   * midway (`ls | head`) will never be continued.
   */
  forgotten(id: number): void {
    this.snapshots.delete(id);
  }

  /**
   * The attributes of `paths`, entries of `dir`; undefined for one that is
   * gone or could not be read. Answered from memory where it holds them;
   * the rest are read together, and asked for one by one (with getattr's
   * own errors and waits) only if memory still lacks them then.
   */
  private async attrsOf(dir: string, paths: readonly string[]): Promise<(FileAttr | undefined)[]> {
    const attrs: (FileAttr | undefined | typeof NOT_CACHED)[] = paths.map((p) => this.vfs.getattrCached(p));
    const missing: number[] = [];
    for (let i = 0; i < attrs.length; i++) if (attrs[i] === NOT_CACHED) missing.push(i);
    if (missing.length > 0) {
      await this.vfs.preloadAttrs(
        dir,
        missing.map((i) => paths[i] as string),
      );
      const slow: Promise<void>[] = [];
      for (const i of missing) {
        const path = paths[i] as string;
        attrs[i] = this.vfs.getattrCached(path);
        if (attrs[i] !== NOT_CACHED) continue;
        slow.push(
          this.vfs.getattr(path).then(
            (attr) => {
              attrs[i] = attr;
            },
            () => {
              attrs[i] = undefined;
            },
          ),
        );
      }
      await Promise.all(slow);
    }
    return attrs as (FileAttr | undefined)[];
  }
}
