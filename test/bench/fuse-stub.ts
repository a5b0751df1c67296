/**
 * A filesystem that serves the bench's tree (tree-shape.ts) from memory,
 * through zkfs's own FUSE layer (the device, its reader and polling, the
 * reply encoders) and nothing else: no cache, no ZooKeeper, no metadata.
 * Its warm walk is what the transport alone costs (the kernel's round trip
 * per open, the event loop turning once per request), so the bench can say
 * how much of zkfs's warm walk is zkfs's own work.
 *
 * It answers as a read-write zkfs mount answers a reader: OPEN with
 * KEEP_CACHE and NOFLUSH, the same attribute and entry lifetimes, listings
 * with attributes (READDIRPLUS); and, as zkfs does for a file it opened
 * from memory, it lets the native reader answer the next opens by itself.
 *
 * Run as its own process, as the daemon is: `tsx test/bench/fuse-stub.ts
 * DIR`. It prints `ready` once mounted and exits when unmounted.
 */
import { openFuseDevice } from '../../src/adapters/fuse/device.js';
import { ENOSYS, ERRNO } from '../../src/adapters/fuse/errno.js';
import { answerInit } from '../../src/adapters/fuse/init.js';
import { silentLogger } from '../../src/adapters/logger.js';
import { ArgReader, Op, OpenFlag, ROOT_ID, readHeader, readInit } from '../../src/core/fuse/protocol.js';
import {
  type Attr,
  attrReply,
  type DirEntry,
  dataReply,
  direntReply,
  direntSize,
  entryReply,
  errorReply,
  openReply,
} from '../../src/core/fuse/replies.js';
import { S_IFDIR, S_IFMT, S_IFREG } from '../../src/core/zkfs/attrs.js';
import { DEFAULT_ATTR_TIMEOUT_MS } from '../../src/core/zkfs/coherence-options.js';
import { DEFAULT_BUSY_POLL_US } from '../../src/core/zkfs/mount-options.js';
import { DIRS, FILES_PER_DIR, fileContent, names } from './tree-shape.js';

const VALID_S = DEFAULT_ATTR_TIMEOUT_MS / 1000;

interface Node {
  attr: Attr;
  data?: Buffer;
  /** A directory's entries, in listing order, and its names. */
  entries?: DirEntry[];
  byName?: Map<string, number>;
}

/** Node ids: the root, then the directories, then the files. */
function buildTree(): Map<number, Node> {
  const now = Date.now();
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const attr = (ino: number, mode: number, size: number, nlink: number): Attr => ({
    ino,
    size,
    mode,
    nlink,
    uid,
    gid,
    atimeMs: now,
    mtimeMs: now,
    ctimeMs: now,
  });
  const nodes = new Map<number, Node>();
  const dirEntries = (children: [string, number][]) => {
    const entries = children.map(
      ([name, id], i): DirEntry => ({
        name,
        nextOffset: i + 1,
        ino: id,
        mode: nodes.get(id)!.attr.mode & S_IFMT,
        nodeId: id,
        attr: nodes.get(id)!.attr,
      }),
    );
    return { entries, byName: new Map(children) };
  };
  const rootChildren: [string, number][] = [];
  for (let d = 0; d < DIRS; d++) {
    const dirId = 2 + d;
    const files: [string, number][] = [];
    for (let f = 0; f < FILES_PER_DIR; f++) {
      const id = 2 + DIRS + d * FILES_PER_DIR + f;
      const data = fileContent(d, f);
      nodes.set(id, { attr: attr(id, S_IFREG | 0o644, data.length, 1), data });
      files.push([names.file(f), id]);
    }
    nodes.set(dirId, { attr: attr(dirId, S_IFDIR | 0o755, 0, 2), ...dirEntries(files) });
    rootChildren.push([names.dir(d), dirId]);
  }
  nodes.set(ROOT_ID, { attr: attr(ROOT_ID, S_IFDIR | 0o755, 0, 2 + DIRS) });
  Object.assign(nodes.get(ROOT_ID)!, dirEntries(rootChildren));
  return nodes;
}

/** The entries of a listing from `offset` that fit in `size` bytes. */
function listing(entries: readonly DirEntry[], offset: number, size: number): DirEntry[] {
  const out: DirEntry[] = [];
  let used = 0;
  for (let i = offset; i < entries.length; i++) {
    const e = entries[i]!;
    used += direntSize(e, true);
    if (used > size) break;
    out.push(e);
  }
  return out;
}

async function main(dir: string): Promise<void> {
  const nodes = buildTree();
  const device = await openFuseDevice(
    {
      dir,
      fsname: 'volkit-bench-stub',
      subtype: 'volkitstub',
      allowOther: false,
      readOnly: false,
      busyPollUs: DEFAULT_BUSY_POLL_US,
      ioUring: true,
      log: silentLogger,
    },
    (send, fast, ring) => (buf, length) => {
      const h = readHeader(buf);
      const r = new ArgReader(buf, length);
      const u = h.unique;
      const node = nodes.get(h.nodeId);
      switch (h.opcode) {
        case Op.INIT:
          // As zkfs answers it (ops.ts): over io_uring where the kernel offers it.
          answerInit(u, readInit(buf, length), send, ring);
          return;
        case Op.FORGET:
        case Op.BATCH_FORGET:
        case Op.INTERRUPT:
          return;
        case Op.LOOKUP: {
          const id = node?.byName?.get(r.name());
          const child = id === undefined ? undefined : nodes.get(id);
          send(child ? entryReply(u, child.attr.ino, child.attr, VALID_S) : errorReply(u, ERRNO.ENOENT));
          return;
        }
        case Op.GETATTR:
          send(node ? attrReply(u, node.attr, VALID_S) : errorReply(u, ERRNO.ENOENT));
          return;
        case Op.OPEN: {
          const flags = r.u32();
          const openFlags = OpenFlag.KEEP_CACHE | OpenFlag.NOFLUSH;
          send(openReply(u, 1, openFlags));
          // The tree never changes: every open for reading may be answered natively from now on.
          if ((flags & 3) === 0) fast.allow(h.nodeId, openFlags);
          return;
        }
        case Op.READ: {
          r.skip(8);
          const offset = r.u64();
          const size = r.u32();
          const data = node?.data ?? Buffer.alloc(0);
          send(dataReply(u, data.subarray(offset, offset + size)));
          return;
        }
        case Op.READDIRPLUS: {
          r.skip(8);
          const offset = r.u64();
          const size = r.u32();
          send(direntReply(u, listing(node?.entries ?? [], offset, size), true, VALID_S));
          return;
        }
        case Op.RELEASE:
        case Op.RELEASEDIR:
        case Op.FLUSH:
        case Op.DESTROY:
          send(errorReply(u, 0));
          return;
        default:
          send(errorReply(u, ENOSYS));
      }
    },
  );
  console.log('ready');
  await device.ended;
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: fuse-stub.ts DIR');
  process.exit(2);
}
await main(dir);
