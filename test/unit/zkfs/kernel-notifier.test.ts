/**
 * The order in which KernelNotifier hands notifications to the kernel. The
 * kernel side is a recorder whose writes finish when the test says so, so
 * that the cases a real mount only meets by chance (a change arriving while
 * a page-cache store is still on its way) happen every time. The same code
 * against the real kernel is in zkfs-coherence.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/adapters/logger.js';
import { type KernelLink, KernelNotifier } from '../../../src/adapters/zkfs/kernel-notify.js';
import {
  FUSE_NOTIFY_INVAL_ENTRY,
  FUSE_NOTIFY_INVAL_INODE,
  FUSE_NOTIFY_STORE,
} from '../../../src/core/fuse/notifications.js';

interface Write {
  code: number;
  nodeId: number;
  finish(): void;
}

/** A kernel that knows `/d`, `/d/a` and `/d/b`, and finishes each write when told to. */
async function recorder(): Promise<{
  notifier: KernelNotifier;
  writes: Write[];
  settle(): Promise<void>;
  /** Finishes every write so far, `rounds` times over, letting those they release start. */
  drain(rounds: number): Promise<void>;
}> {
  const ids = new Map([
    ['/', 1],
    ['/d', 2],
    ['/d/a', 3],
    ['/d/b', 4],
    ['/e', 5],
  ]);
  const writes: Write[] = [];
  let probed = false;
  const record = (message: Buffer) =>
    new Promise<null>((resolve) => {
      writes.push({
        code: message.readInt32LE(4),
        nodeId: Number(message.readBigUInt64LE(16)),
        finish: () => resolve(null),
      });
    });
  const link: KernelLink = {
    nodeIdOf: (path) => ids.get(path),
    knownPaths: () => ids.keys(),
    notify: (message) => {
      if (!probed) {
        probed = true; // the probe for a name the kernel does not have
        return Promise.resolve(Object.assign(new Error('ENOENT'), { code: 'ENOENT' }));
      }
      return record(message);
    },
    store: record,
  };
  const notifier = await KernelNotifier.open(link, createLogger({ level: 'error', write: () => {} }));
  if (!notifier) throw new Error('the notifier refused the recorder');
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  const drain = async (rounds: number) => {
    for (let i = 0; i < rounds; i++) {
      for (const w of writes) w.finish();
      await settle();
    }
  };
  return { notifier, writes, settle, drain };
}

/** A little more than the notifier's window for gathering drops of a listing (LISTING_WINDOW_MS). */
const LISTING_WINDOW = 15;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const store = (nodeId: number) => (id: number) => {
  expect(id).toBe(nodeId);
  const m = Buffer.alloc(40);
  m.writeInt32LE(FUSE_NOTIFY_STORE, 4);
  m.writeBigUInt64LE(BigInt(nodeId), 16);
  return m;
};

describe('KernelNotifier order', () => {
  it('holds back an invalidation of a path until the store for it has landed', async () => {
    const { notifier, writes, settle } = await recorder();
    notifier.store('/d/a', store(3));
    await settle();
    expect(writes.map((w) => [w.code, w.nodeId])).toEqual([[FUSE_NOTIFY_STORE, 3]]);
    notifier.apply([{ path: '/d/a', entry: false }]);
    await settle();
    expect(writes).toHaveLength(1); // the invalidation waits
    writes[0]?.finish();
    await settle();
    expect(writes.map((w) => [w.code, w.nodeId])).toEqual([
      [FUSE_NOTIFY_STORE, 3],
      [FUSE_NOTIFY_INVAL_INODE, 3],
    ]);
    expect(notifier.counters.stored).toBe(1);
  });

  it('drops a store still waiting when its path is invalidated, and runs invalidations first', async () => {
    const { notifier, writes, settle, drain } = await recorder();
    // Two invalidations fill their slots and a third waits: stores wait behind it.
    notifier.apply([
      { path: '/d', entry: false },
      { path: '/', entry: false },
      { path: '/e', entry: false },
    ]);
    notifier.store('/d/a', store(3));
    notifier.store('/d/b', store(4));
    notifier.apply([{ path: '/d/a', entry: false }]);
    await settle();
    expect(writes.map((w) => w.nodeId)).toEqual([2, 1]);
    await drain(4);
    // /d/a: invalidated, never stored; /d/b: stored after the invalidations.
    expect(writes.map((w) => [w.code, w.nodeId])).toEqual([
      [FUSE_NOTIFY_INVAL_INODE, 2],
      [FUSE_NOTIFY_INVAL_INODE, 1],
      [FUSE_NOTIFY_INVAL_INODE, 5],
      [FUSE_NOTIFY_INVAL_INODE, 3],
      [FUSE_NOTIFY_STORE, 4],
    ]);
  });

  it('lets many stores be on their way at once, so they can go to the kernel as one batch', async () => {
    const { notifier, writes, settle, drain } = await recorder();
    notifier.store('/d/a', store(3));
    notifier.store('/d/b', store(4));
    notifier.store('/e', store(5));
    await settle();
    expect(writes.map((w) => [w.code, w.nodeId])).toEqual([
      [FUSE_NOTIFY_STORE, 3],
      [FUSE_NOTIFY_STORE, 4],
      [FUSE_NOTIFY_STORE, 5],
    ]);
    await drain(1);
    expect(notifier.counters.stored).toBe(3);
  });

  it('settles a path once its store has landed, at once when none is on its way, and drops a waiting one', async () => {
    const { notifier, writes, settle, drain } = await recorder();
    notifier.store('/d/a', store(3));
    await settle();
    let settled = false;
    const waiting = notifier.settled('/d/a').then(() => {
      settled = true;
    });
    await notifier.settled('/d/b'); // nothing on its way for it
    await settle();
    expect(settled).toBe(false);
    writes[0]?.finish();
    await waiting;
    expect(settled).toBe(true);

    // A store still waiting (behind an invalidation) is dropped, not sent after the change.
    notifier.apply([
      { path: '/d', entry: false },
      { path: '/', entry: false },
      { path: '/e', entry: false },
    ]);
    notifier.store('/d/b', store(4));
    await notifier.settled('/d/b');
    await drain(4);
    expect(writes.filter((w) => w.code === FUSE_NOTIFY_STORE).map((w) => w.nodeId)).toEqual([3]);
  });

  it('settles a path at once while only an invalidation of it is on its way, which may wait on the caller', async () => {
    // The kernel holds a dropped name's directory lock for it; a program holding that lock may be
    // waiting for the file's, held by a program whose truncate waits on settled().
    const { notifier, writes, settle, drain } = await recorder();
    notifier.apply([{ path: '/d/a', entry: true }]);
    await settle();
    expect(writes.map((w) => [w.code, w.nodeId])).toEqual([[FUSE_NOTIFY_INVAL_INODE, 3]]);
    await notifier.settled('/d/a');
    await drain(3);
  });

  it('drops only the listing of the directory for a name just made that the kernel does not hold', async () => {
    const { notifier, writes, drain } = await recorder();
    // Made elsewhere in /d (listed here): /d's listing at once, then once more, at the end of the
    // window, for the names made in it meanwhile (a data change of a new name drops nothing).
    notifier.apply([
      { path: '/d/new', entry: true, fresh: true },
      { path: '/d/new', entry: false, fresh: true },
      { path: '/d/other', entry: true, fresh: true },
    ]);
    notifier.apply([{ path: '/nowhere/new', entry: true, fresh: true }]); // nor its directory: nothing
    await drain(2);
    expect(writes.map((w) => [w.code, w.nodeId])).toEqual([[FUSE_NOTIFY_INVAL_INODE, 2]]);
    await sleep(LISTING_WINDOW);
    await drain(2);
    expect(writes.map((w) => [w.code, w.nodeId])).toEqual([
      [FUSE_NOTIFY_INVAL_INODE, 2],
      [FUSE_NOTIFY_INVAL_INODE, 2],
    ]);
    // A name gone is dropped from the kernel by name, though the node table let it go first.
    writes.length = 0;
    notifier.apply([{ path: '/d/gone', entry: true }]);
    await drain(2);
    expect(writes.map((w) => [w.code, w.nodeId])).toEqual([
      [FUSE_NOTIFY_INVAL_ENTRY, 2],
      [FUSE_NOTIFY_INVAL_INODE, 2],
    ]);
  });

  it("drops a listing once per window while another host's cp fills its directory, and at once after a quiet one", async () => {
    const { notifier, writes, drain } = await recorder();
    const made = () => writes.filter((w) => w.code === FUSE_NOTIFY_INVAL_INODE && w.nodeId === 2).length;
    // 40 names, one every millisecond or so, in a directory listed here; one in /e, listed too.
    const started = Date.now();
    for (let i = 0; i < 40; i++) {
      notifier.apply([{ path: `/d/f${i}`, entry: true, fresh: true }]);
      if (i === 20) notifier.apply([{ path: '/e/x', entry: true, fresh: true }]);
      await drain(1);
      await sleep(1);
    }
    const took = Date.now() - started;
    await sleep(LISTING_WINDOW);
    await drain(2);
    const during = made();
    // One at once, then at most one per 10 ms window, the last name's window ending with one.
    expect(during).toBeGreaterThanOrEqual(2);
    expect(during).toBeLessThanOrEqual(Math.ceil(took / 10) + 1);
    expect(during).toBeLessThan(40);
    expect(writes.filter((w) => w.nodeId === 5)).toHaveLength(1);
    // A quiet window later, the next name drops the listing at once.
    await sleep(LISTING_WINDOW);
    notifier.apply([{ path: '/d/late', entry: true, fresh: true }]);
    await drain(2);
    expect(made()).toBe(during + 1);
    notifier.close();
  });

  it('sends nothing for a store its builder no longer wants', async () => {
    const { notifier, writes, settle } = await recorder();
    notifier.store('/d/a', () => undefined);
    notifier.store('/nowhere', store(9)); // a path the kernel does not hold
    await settle();
    expect(writes).toEqual([]);
    expect(notifier.counters.stored).toBe(0);
  });

  it("fits a store to a node the kernel holds at the store's size or less, or at no size it was told", async () => {
    const held = new Map([[3, 912]]);
    const link: KernelLink = {
      nodeIdOf: () => undefined,
      knownPaths: () => [],
      notify: () => Promise.resolve(Object.assign(new Error('ENOENT'), { code: 'ENOENT' })),
      store: () => Promise.resolve(null),
      sizeHeld: (id) => held.get(id),
    };
    const notifier = await KernelNotifier.open(link, createLogger({ level: 'error', write: () => {} }));
    // 901 bytes over pages of a 912-byte file would keep its last 11 bytes.
    expect(notifier?.holdsAt(3, 901)).toBe(false);
    // Longer: the kernel grows the file to it.
    expect(notifier?.holdsAt(3, 913)).toBe(true);
    expect(notifier?.holdsAt(3, 912)).toBe(true);
    expect(notifier?.holdsAt(4, 901)).toBe(true);
  });

  it('says which names the kernel held no node of changed since a lookup began reading them', async () => {
    const { notifier } = await recorder();
    const before = notifier.mark();
    // Another host writes /d/new, and deletes /d/gone, while the kernel holds neither.
    notifier.apply([{ path: '/d/new', entry: false, fresh: true }]);
    notifier.apply([{ path: '/d/gone', entry: true }]);
    const after = notifier.mark();
    expect(notifier.changedSince('/d/new', before)).toBe(true);
    expect(notifier.changedSince('/d/gone', before)).toBe(true);
    expect(notifier.changedSince('/d/new', after)).toBe(false);
    expect(notifier.changedSince('/d/other', before)).toBe(false);
    // A change to a name the kernel holds reaches its node: no lookup needs to read again for it.
    notifier.apply([{ path: '/d/a', entry: false, fresh: true }]);
    expect(notifier.changedSince('/d/a', after)).toBe(false);
    // Past the changes it keeps, a lookup begun before the oldest kept counts any name as changed.
    for (let i = 0; i < 5000; i++) notifier.apply([{ path: `/d/f${i}`, entry: false, fresh: true }]);
    expect(notifier.changedSince('/d/other', before)).toBe(true);
    expect(notifier.changedSince('/d/other', notifier.mark())).toBe(false);
  });
});
