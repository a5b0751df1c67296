/**
 * The watch-driven cache and the fault-tolerant session without FUSE,
 * against a real ZooKeeper: what is served from memory, how other clients'
 * changes arrive, memory bounds, connection loss and session expiry.
 */
import { createRequire } from 'node:module';
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applySetattr } from '../../src/adapters/fuse/setattr.js';
import { createLogger } from '../../src/adapters/logger.js';
import { asFsError } from '../../src/adapters/zkfs/commit.js';
import { NOT_CACHED } from '../../src/adapters/zkfs/resolve.js';
import { ZkSession } from '../../src/adapters/zkfs/session.js';
import { ZkVfs } from '../../src/adapters/zkfs/vfs.js';
import { WatchedTree } from '../../src/adapters/zkfs/watch-cache.js';
import { dropConnection } from '../../src/adapters/zkfs/zk-wire.js';
import { ZkClient, ZkError } from '../../src/adapters/zookeeper.js';
import { SetattrValid } from '../../src/core/fuse/protocol.js';
import { encodeMeta, parseMeta, S_IFREG, withEntry } from '../../src/core/zkfs/attrs.js';
import { encodeSymlinks, parseSymlinks } from '../../src/core/zkfs/symlinks.js';
import type { ZkOp } from '../../src/core/zkfs/zk-ops.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';

const require = createRequire(import.meta.url);
const zookeeper = require('node-zookeeper-client') as typeof import('node-zookeeper-client');

let zk: ZkServer;
let raw: ZkClient;
const OPEN_ACL = [{ perms: 31, scheme: 'world', id: 'anyone' }];
const logged: string[] = [];
const log = createLogger({ level: 'info', write: (l) => logged.push(l) });

beforeAll(async () => {
  zk = await startZk();
  raw = await ZkClient.connect({ connectString: zk.connectString });
});
afterAll(async () => {
  await raw?.close();
});

/**
 * The checking client gets a fresh session after each server restart: on a
 * loaded machine its old one can be lost with the server, and every later
 * test would then time out on a dead client instead of testing the mount.
 */
async function restartServer(): Promise<void> {
  await zk.start(0);
  await raw.close().catch(() => {});
  raw = await ZkClient.connect({ connectString: zk.connectString });
}

interface Mounted {
  session: ZkSession;
  tree: WatchedTree;
  vfs: ZkVfs;
  root: string;
}

/**
 * The filesystem as a mount serves it (hybrid mode, root's defaults) over
 * `cache`: a watched tree, or a time-limited cache without a watch.
 */
function vfsOver(session: ZkSession, cache: WatchedTree | { ttlMs: number }, root: string): ZkVfs {
  return new ZkVfs({
    client: session,
    root,
    mode: 'hybrid',
    readOnly: false,
    maxFileSize: 1048575,
    defaults: { uid: 0, gid: 0, umask: 0o022 },
    log,
    ...('ttlMs' in cache ? { cacheTtlMs: cache.ttlMs } : { tree: cache }),
  });
}

let counter = 0;
async function mount(options: { root?: string; cacheBytes?: number; reconnectTimeoutMs?: number } = {}) {
  const root = options.root ?? `/c${++counter}`;
  if (!(await raw.exists(root))) await raw.create(root, Buffer.alloc(0));
  const session = await ZkSession.open({
    connectString: zk.connectString,
    reconnectTimeoutMs: options.reconnectTimeoutMs ?? 20_000,
    sessionTimeoutMs: 4000,
    logger: log,
  });
  onCleanup(`session on ${root}`, () => session.close());
  const tree = new WatchedTree(session, root, log, {
    cacheBytes: options.cacheBytes ?? 8 << 20,
    fallbackTtlMs: 1000,
  });
  await tree.start();
  return { session, tree, vfs: vfsOver(session, tree, root), root } satisfies Mounted;
}

type Multi = ZkSession['multi'];

/**
 * Sends the session's next multi through `around`, given the real one (what
 * another client does just before it lands, or just after); later ones go
 * straight.
 */
function aroundNextMulti(
  m: Mounted,
  around: (send: Multi, ops: Parameters<Multi>[0]) => ReturnType<Multi>,
): void {
  const client = (m.session as unknown as { client: { multi: Multi } }).client;
  const multi = client.multi.bind(client);
  client.multi = (ops) => {
    client.multi = multi;
    return around(multi, ops);
  };
}

/**
 * Holds the session's next setData before it is sent until `letGo()`;
 * `reached` resolves once it is called.
 */
function holdNextSetData(m: Mounted): { reached: Promise<void>; letGo: () => void } {
  type SetData = ZkSession['setData'];
  const client = (m.session as unknown as { client: { setData: SetData } }).client;
  const setData = client.setData.bind(client);
  let letGo = () => {};
  let arrive = () => {};
  const held = new Promise<void>((resolve) => {
    letGo = resolve;
  });
  const reached = new Promise<void>((resolve) => {
    arrive = resolve;
  });
  client.setData = async (...args) => {
    client.setData = setData;
    arrive();
    await held;
    return setData(...args);
  };
  return { reached, letGo };
}

async function writeFile(vfs: ZkVfs, path: string, data: string | Buffer): Promise<void> {
  const { fh } = await vfs.create(path, 0o644);
  vfs.write(fh, Buffer.from(data), 0);
  await vfs.flush(fh);
  await vfs.release(fh);
}

async function readFile(vfs: ZkVfs, path: string): Promise<string> {
  const fh = await vfs.open(path, 0);
  const data = await vfs.read(fh, 1 << 21, 0);
  await vfs.release(fh);
  return data.toString();
}

/** Creates `dir` with `count` children n0, n1, … holding their own names, straight in ZooKeeper. */
async function createDir(dir: string, count: number): Promise<void> {
  await raw.create(dir, Buffer.alloc(0));
  await Promise.all(
    Array.from({ length: count }, (_, i) => raw.create(`${dir}/n${i}`, Buffer.from(`n${i}`))),
  );
}

/** Polls until `check` holds (notices arrive within milliseconds; the bound is generous). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Ends `session` from the server side: another connection takes it over with
 * its id and password and closes it. The session's own client may win it back
 * before the close arrives, so this repeats until the session was replaced.
 */
async function expireFromServer(session: ZkSession): Promise<void> {
  const expiries = session.counters.expiries;
  for (let attempt = 0; attempt < 10; attempt++) {
    const library = (session as unknown as { client: ZkClient }).client.library;
    const thief = zookeeper.createClient(zk.connectString, {
      sessionId: library.getSessionId(),
      sessionPassword: library.getSessionPassword(),
    } as never);
    // 'expired': the session is gone already (an earlier attempt closed it).
    const taken = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      thief.once('connected', () => {
        clearTimeout(timer);
        resolve(true);
      });
      thief.once('expired', () => {
        clearTimeout(timer);
        resolve(false);
      });
      thief.connect();
    });
    thief.close();
    try {
      await until(async () => session.counters.expiries > expiries, 'a new session', taken ? 5000 : 10_000);
      return;
    } catch {
      // won back before the close: try again
    }
  }
  throw new Error('could not expire the session from the server side');
}

/** The errno a failure means to a file tool (what the FUSE face returns). */
function errnoOf(error: unknown): string {
  return asFsError(error, 'test').code;
}

async function walk(vfs: ZkVfs, dir = '/'): Promise<string[]> {
  const out: string[] = [];
  for (const name of await vfs.readdir(dir)) {
    if (name === '.' || name === '..') continue;
    const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
    const attr = await vfs.getattr(path);
    if ((attr.mode & 0o170000) === 0o040000) out.push(...(await walk(vfs, path)));
    else out.push(`${path}=${await readFile(vfs, path)}`);
  }
  return out;
}

describe('watch-driven cache', () => {
  it('answers repeated listings, stats and reads of unchanged nodes without a request', async () => {
    const m = await mount();
    await m.vfs.mkdir('/d', 0o755);
    for (let i = 0; i < 20; i++) await writeFile(m.vfs, `/d/f${i}`, `content ${i}`);
    const first = await walk(m.vfs);
    expect(first).toHaveLength(20);
    const before = m.session.counters.requests;
    expect(await walk(m.vfs)).toEqual(first);
    expect(await walk(m.vfs)).toEqual(first);
    expect(m.session.counters.requests).toBe(before);
    expect(m.tree.status()).toMatchObject({ mode: 'watch' });
    expect(m.tree.status().hitRate).toBeGreaterThan(0.5);
  });

  it("changes a file's mode, owner or times with one write, and keeps its directory in memory", async () => {
    const m = await mount();
    await m.vfs.mkdir('/d', 0o755);
    for (let i = 0; i < 3; i++) await writeFile(m.vfs, `/d/f${i}`, `content ${i}`);
    await walk(m.vfs);
    const before = m.session.counters.requests;
    await m.vfs.chmod('/d/f0', 0o600);
    await m.vfs.chown('/d/f1', 1234, 1234);
    await m.vfs.utimens('/d/f2', 1_000_000, 2_000_000);
    // One write each: the directory's document, written through.
    expect(m.session.counters.requests - before).toBe(3);
    const written = m.session.counters.requests;
    // What cp -a asks next, of the directory and of the next name, is still known.
    expect((await m.vfs.getattr('/d')).mode & 0o777).toBe(0o755);
    await expect(m.vfs.getattr('/d/f3')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await m.vfs.getattr('/d/f0')).mode & 0o777).toBe(0o600);
    expect(await m.vfs.getattr('/d/f1')).toMatchObject({ uid: 1234, gid: 1234 });
    expect((await m.vfs.getattr('/d/f2')).mtimeMs).toBe(2_000_000);
    expect((await walk(m.vfs)).sort()).toEqual(['/d/f0=content 0', '/d/f1=content 1', '/d/f2=content 2']);
    expect(m.session.counters.requests).toBe(written);
  });

  it('renames with RENAME_NOREPLACE (mv -n) failing with EEXIST on a name another host makes meanwhile, replacing nothing', async () => {
    const m = await mount();
    await writeFile(m.vfs, '/mine', 'mine');
    aroundNextMulti(m, async (send, ops) => {
      await raw.create(`${m.root}/taken`, Buffer.from('theirs'));
      return send(ops);
    });
    await expect(m.vfs.rename('/mine', '/taken', { noReplace: true })).rejects.toMatchObject({
      code: 'EEXIST',
    });
    expect((await raw.getData(`${m.root}/taken`)).data.toString()).toBe('theirs');
    expect(await readFile(m.vfs, '/mine')).toBe('mine');
    // A name that stays free is taken as usual.
    await m.vfs.rename('/mine', '/free', { noReplace: true });
    expect(await readFile(m.vfs, '/free')).toBe('mine');
  });

  it('never removes or moves a directory below which another host makes a link meanwhile, nor makes a link in one it removed', async () => {
    const a = await mount();
    const b = await mount({ root: a.root });
    await a.vfs.mkdir('/d', 0o755);
    await a.vfs.mkdir('/m', 0o755);
    await a.vfs.symlink('elsewhere', '/other-link'); // the table exists
    for (const dir of ['/d', '/m']) {
      await until(async () => (await b.vfs.getattr(dir).catch(() => undefined)) !== undefined, `${dir} on b`);
      aroundNextMulti(a, async (send, ops) => {
        await b.vfs.symlink('t', `${dir}/l`);
        return send(ops);
      });
      if (dir === '/d') await expect(a.vfs.rmdir('/d')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
      else await a.vfs.rename('/m', '/n');
    }
    expect(await b.vfs.readlink('/d/l')).toBe('t');
    // Moved with the directory, as if made before the move.
    await until(
      async () => (await b.vfs.readlink('/n/l').catch(() => undefined)) === 't',
      'the link moved along',
    );
    expect(parseSymlinks((await raw.getData(`${a.root}/__symlinks__`)).data).has('/m/l')).toBe(false);

    // The other way round: the directory goes while the link is on its way.
    await a.vfs.mkdir('/e', 0o755);
    await until(async () => (await b.vfs.getattr('/e').catch(() => undefined)) !== undefined, '/e on b');
    aroundNextMulti(b, async (send, ops) => {
      await a.vfs.rmdir('/e');
      return send(ops);
    });
    await expect(b.vfs.symlink('t', '/e/l')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(parseSymlinks((await raw.getData(`${a.root}/__symlinks__`)).data).has('/e/l')).toBe(false);
  });

  it("removes a link and its stored owner in one write, never another host's entry for a file made under its name right after", async () => {
    const a = await mount();
    const b = await mount({ root: a.root });
    await a.vfs.symlink('target', '/l', { uid: 1234, gid: 1234 }); // an owner other than the mount's
    await until(
      async () => (await b.vfs.getattr('/l').catch(() => undefined)) !== undefined,
      'the link on b',
    );
    aroundNextMulti(a, async (send, ops) => {
      const result = await send(ops);
      // The link gone, b makes an empty file under its name (stored as a file by its entry).
      await until(
        async () => (await b.vfs.getattr('/l').catch(() => undefined)) === undefined,
        'link gone on b',
      );
      await writeFile(b.vfs, '/l', '');
      return result;
    });
    await a.vfs.unlink('/l');
    await until(
      async () => (await a.vfs.getattr('/l').catch(() => undefined)) !== undefined,
      "b's file on a",
    );
    for (const m of [a, b]) expect((await m.vfs.getattr('/l')).mode & 0o170000).toBe(0o100000);
  });

  it('renames a file it has just written with one request, and never moves data gone stale', async () => {
    // rsync, certbot and editors write a temporary file, then rename it over the name.
    const m = await mount();
    const acl = [...OPEN_ACL, { perms: 1, scheme: 'ip', id: '127.0.0.2' }];
    await raw.create(`${m.root}/d`, Buffer.alloc(0), { acl });
    await writeFile(m.vfs, '/d/.f.tmp', 'new content');
    await writeFile(m.vfs, '/d/f', 'old content');
    const before = m.session.counters.requests;
    await m.vfs.rename('/d/.f.tmp', '/d/f');
    expect(m.session.counters.requests - before).toBe(1);
    expect((await raw.getData(`${m.root}/d/f`)).data.toString()).toBe('new content');
    expect((await raw.getAcl(`${m.root}/d/f`)).acl).toEqual(acl);
    expect(await raw.exists(`${m.root}/d/.f.tmp`)).toBeNull();
    expect(await readFile(m.vfs, '/d/f')).toBe('new content');

    // Another client's write lands after the move was built from memory, before it is sent: the
    // move is refused by ZooKeeper and built again from what the node holds now.
    await writeFile(m.vfs, '/d/.g.tmp', 'mine');
    aroundNextMulti(m, async (send, ops) => {
      await raw.setData(`${m.root}/d/.g.tmp`, Buffer.from('theirs'), -1);
      return send(ops);
    });
    await m.vfs.rename('/d/.g.tmp', '/d/g');
    expect((await raw.getData(`${m.root}/d/g`)).data.toString()).toBe('theirs');
    expect(await raw.exists(`${m.root}/d/.g.tmp`)).toBeNull();
    expect(await readFile(m.vfs, '/d/g')).toBe('theirs');
  });

  it("changes a file's owner alone without undoing another host's change of its group", async () => {
    const a = await mount();
    const b = await mount({ root: a.root });
    await writeFile(a.vfs, '/f', 'x');
    await a.vfs.chown('/f', 100, 200);
    await until(async () => (await b.vfs.getattr('/f')).gid === 200, 'the owner seen on b');
    // `chown 300 f` on b, with a's `chgrp 400 f` landing while b's request is on its way.
    let raced = false;
    const racing = new Proxy(b.vfs, {
      get(target, key, receiver) {
        if (key !== 'getattr') return Reflect.get(target, key, receiver);
        return async (path: string) => {
          const seen = await target.getattr(path);
          if (!raced) await a.vfs.chown('/f', -1, 400);
          raced = true;
          return seen;
        };
      },
    });
    await applySetattr(
      racing,
      { valid: SetattrValid.UID, fh: 0, size: 0, atimeMs: 0, mtimeMs: 0, mode: 0, uid: 300, gid: 0 },
      '/f',
    );
    await until(async () => (await a.vfs.getattr('/f')).uid === 300, "b's chown seen on a");
    expect(await a.vfs.getattr('/f')).toMatchObject({ uid: 300, gid: 400 });
  });

  it('writes times set before close with the data, in one request, and alone when the document moved meanwhile', async () => {
    const m = await mount();
    await m.vfs.mkdir('/d', 0o755);
    await writeFile(m.vfs, '/d/first', 'x');
    await walk(m.vfs);
    const copy = async (name: string, mtimeMs: number) => {
      const { fh } = await m.vfs.create(`/d/${name}`, 0o644);
      m.vfs.write(fh, Buffer.from(`content of ${name}`), 0);
      await m.vfs.utimens(`/d/${name}`, mtimeMs, mtimeMs); // futimens before close, as cp -a
      await m.vfs.flush(fh);
      await m.vfs.release(fh);
    };
    const before = m.session.counters.requests;
    await copy('one', 1_000_000);
    // The create, then the data with the times.
    expect(m.session.counters.requests - before).toBe(2);
    const stored = async (name: string) => ({
      data: (await raw.getData(`${m.root}/d/${name}`)).data.toString(),
      entry: parseMeta((await raw.getData(`${m.root}/d/__zkfs__`)).data).entries.get(name),
    });
    expect(await stored('one')).toEqual({
      data: 'content of one',
      entry: { t: 'f', at: 1_000_000, mt: 1_000_000, v: 1 },
    });
    expect((await m.vfs.getattr('/d/one')).mtimeMs).toBe(1_000_000);

    // Another host rewrites the document just before the write-back goes: the data go alone,
    // then the times, at the document as it is now.
    const client = (m.session as unknown as { client: ZkClient }).client;
    const multi = client.multi.bind(client);
    let race = false;
    client.multi = async (ops) => {
      if (race && ops.some((op) => op.path.endsWith('/two'))) {
        race = false;
        const doc = `${m.root}/d/__zkfs__`;
        const now = await raw.getData(doc);
        const meta = withEntry(parseMeta(now.data), 'theirs', { t: 'f', m: 0o600 });
        await raw.multi([
          { op: 'create', path: `${m.root}/d/theirs`, data: Buffer.alloc(0), acl: OPEN_ACL },
          { op: 'setData', path: doc, data: encodeMeta(meta), version: now.stat.version },
        ]);
      }
      return multi(ops);
    };
    const { fh } = await m.vfs.create('/d/two', 0o644);
    m.vfs.write(fh, Buffer.from('content of two'), 0);
    await m.vfs.utimens('/d/two', 3_000_000, 3_000_000);
    await m.vfs.chmod('/d/two', 0o640); // goes first, then the data, then the times
    race = true;
    await m.vfs.flush(fh);
    await m.vfs.release(fh);
    expect(race).toBe(false);
    expect(await stored('two')).toEqual({
      data: 'content of two',
      entry: { t: 'f', m: 0o640, at: 3_000_000, mt: 3_000_000, v: 1 },
    });
    expect((await stored('theirs')).entry).toEqual({ t: 'f', m: 0o600 });
    expect((await m.vfs.getattr('/d/two')).mtimeMs).toBe(3_000_000);
  });

  it("writes a mode and owner set before a new file's first write-back with its data, and at once on one written before", async () => {
    const m = await mount();
    await m.vfs.mkdir('/d', 0o755);
    await writeFile(m.vfs, '/d/first', 'x');
    await walk(m.vfs);
    const entry = async (name: string) =>
      parseMeta((await raw.getData(`${m.root}/d/__zkfs__`)).data).entries.get(name);
    // As cp -a does: made 0600, written, then its times, owner and mode, then closed.
    const before = m.session.counters.requests;
    const { fh } = await m.vfs.create('/d/new', 0o600);
    m.vfs.write(fh, Buffer.from('new content'), 0);
    await m.vfs.utimens('/d/new', 1_000_000, 1_000_000);
    await m.vfs.chown('/d/new', 1234, 1234);
    await m.vfs.chmod('/d/new', 0o640);
    // Shown here at once; other hosts still see the empty file as made.
    expect(await m.vfs.getattr('/d/new')).toMatchObject({ mode: S_IFREG | 0o640, uid: 1234, gid: 1234 });
    expect(await entry('new')).toEqual({ t: 'f', m: 0o600 });
    await m.vfs.flush(fh);
    await m.vfs.release(fh);
    // The create, then the data with all of it.
    expect(m.session.counters.requests - before).toBe(2);
    expect(await entry('new')).toEqual({
      t: 'f',
      m: 0o640,
      u: 1234,
      g: 1234,
      at: 1_000_000,
      mt: 1_000_000,
      v: 1,
    });
    expect((await raw.getData(`${m.root}/d/new`)).data.toString()).toBe('new content');
    expect(await m.vfs.getattr('/d/new')).toMatchObject({
      mode: S_IFREG | 0o640,
      uid: 1234,
      mtimeMs: 1_000_000,
    });

    // A file other hosts have seen written: its mode changes for them at once, data or not.
    const again = await m.vfs.open('/d/new', 1); // O_WRONLY
    m.vfs.write(again, Buffer.from('NEW'), 0);
    const written = m.session.counters.requests;
    await m.vfs.chmod('/d/new', 0o600);
    expect(m.session.counters.requests - written).toBe(1);
    expect((await entry('new'))?.m).toBe(0o600);
    await m.vfs.flush(again);
    await m.vfs.release(again);
    expect((await raw.getData(`${m.root}/d/new`)).data.toString()).toBe('NEW content');
  });

  it('knows the stat of a file it has just made without reading it: cp -a changes it before closing', async () => {
    const m = await mount();
    await m.vfs.mkdir('/d', 0o755);
    await writeFile(m.vfs, '/d/first', 'x'); // the directory has its document
    await walk(m.vfs);
    const before = m.session.counters.requests;
    const { fh } = await m.vfs.create('/d/new', 0o600);
    expect(m.session.counters.requests - before).toBe(1);
    // Worked out from the transaction's other op, and exactly what ZooKeeper holds.
    expect(m.tree.stats.peek(`${m.root}/d/new`)).toEqual(await raw.exists(`${m.root}/d/new`));
    expect((await m.vfs.getattr('/d/new')).mode & 0o777).toBe(0o600);
    await m.vfs.utimens('/d/new', 1_000_000, 2_000_000);
    await m.vfs.flush(fh);
    await m.vfs.release(fh);
    expect((await m.vfs.getattr('/d/new')).mtimeMs).toBe(2_000_000);
    // The create and the times: no read.
    expect(m.session.counters.requests - before).toBe(2);
  });

  it('opens a file it holds for reading without waiting, and with what open() would give', async () => {
    const m = await mount();
    await writeFile(m.vfs, '/f', 'one');
    await m.vfs.mkdir('/d', 0o755);
    expect(await readFile(m.vfs, '/f')).toBe('one');
    const requests = m.session.counters.requests;
    const fh = m.vfs.openCached('/f', 0);
    expect(fh).toBeTypeOf('number');
    expect((await m.vfs.read(fh as number, 100, 0)).toString()).toBe('one');
    // Nothing to write back: the handle is gone when release returns.
    expect(m.vfs.release(fh as number)).toBeUndefined();
    expect(m.vfs.openHandles).toBe(0);
    expect(m.session.counters.requests).toBe(requests);

    // A reader opened beside a writer shares its bytes, written back or not.
    const writer = await m.vfs.open('/f', 0o2);
    m.vfs.write(writer, Buffer.from('TWO'), 0);
    const reader = m.vfs.openCached('/f', 0) as number;
    expect((await m.vfs.read(reader, 100, 0)).toString()).toBe('TWO');
    await m.vfs.release(reader);
    await m.vfs.flush(writer);
    await m.vfs.release(writer);

    // Writing, a directory, a missing file: open() decides (and refuses).
    expect(m.vfs.openCached('/f', 0o1)).toBeUndefined();
    expect(m.vfs.openCached('/f', 0o2)).toBeUndefined();
    expect(m.vfs.openCached('/d', 0)).toBeUndefined();
    expect(m.vfs.openCached('/missing', 0)).toBeUndefined();
    await expect(m.vfs.open('/d', 0)).rejects.toMatchObject({ code: 'EISDIR' });

    // Another client's change: an open at once reads it as soon as the notice has come.
    await raw.setData(`${m.root}/f`, Buffer.from('three'), -1);
    await until(async () => {
      const h = m.vfs.openCached('/f', 0) ?? (await m.vfs.open('/f', 0));
      const seen = (await m.vfs.read(h, 100, 0)).toString();
      await m.vfs.release(h);
      return seen === 'three';
    }, 'the new content');
    expect(m.vfs.openCached('/f', 0)).toBeTypeOf('number');
  });

  it("answers a listing's attributes from memory once read together, as getattr() would", async () => {
    const m = await mount();
    await m.vfs.mkdir('/d', 0o750);
    await writeFile(m.vfs, '/d/f', 'one');
    await m.vfs.mkdir('/d/sub', 0o755);
    await m.vfs.chmod('/d/f', 0o600);
    await m.vfs.symlink('f', '/d/link');
    const paths = ['/d/f', '/d/sub', '/d/link', '/d/missing'];
    await m.vfs.preloadAttrs('/d', paths);
    const requests = m.session.counters.requests;
    // Plain files and directories at once, with the mode stored in the metadata document.
    expect(m.vfs.getattrCached('/d/f')).toEqual(await m.vfs.getattr('/d/f'));
    expect(m.vfs.getattrCached('/d/f')).toMatchObject({ mode: 0o100600, size: 3 });
    expect(m.vfs.getattrCached('/d/sub')).toEqual(await m.vfs.getattr('/d/sub'));
    expect(m.vfs.getattrCached('/d/missing')).toBeUndefined();
    expect(m.session.counters.requests).toBe(requests);
    // Links, the root and `_zoo_data_` are left to getattr().
    expect(m.vfs.getattrCached('/d/link')).toBe(NOT_CACHED);
    expect(m.vfs.getattrCached('/')).toBe(NOT_CACHED);
    expect(m.vfs.getattrCached('/d/_zoo_data_')).toBe(NOT_CACHED);
    // A writer's bytes not yet written back show in the size, as in getattr().
    const writer = await m.vfs.open('/d/f', 0o2);
    m.vfs.write(writer, Buffer.from('longer'), 0);
    expect(m.vfs.getattrCached('/d/f')).toMatchObject({ size: 6 });
    expect(m.vfs.getattrCached('/d/f')).toEqual(await m.vfs.getattr('/d/f'));
    await m.vfs.flush(writer);
    await m.vfs.release(writer);
    // Without a watch (time-limited caching), the same, and no read of a znode links and
    // `_zoo_data_` do not have.
    const timed = vfsOver(m.session, { ttlMs: 60_000 }, m.root);
    await timed.preloadAttrs('/d', ['/d/f']);
    expect(timed.getattrCached('/d/f')).toEqual(await timed.getattr('/d/f'));
    const before = m.session.counters.requests;
    await timed.preloadAttrs('/d', ['/d/link', '/d/_zoo_data_']);
    expect(m.session.counters.requests).toBe(before);
    // Another client's change: the attributes follow once its notice has come.
    await raw.setData(`${m.root}/d/f`, Buffer.from('four'), -1);
    await until(async () => {
      const attr = m.vfs.getattrCached('/d/f');
      return (attr === NOT_CACHED ? await m.vfs.getattr('/d/f') : attr)?.size === 4;
    }, 'the new size');
  });

  it('without a watch, a lookup tells a file that got data and lost its mark from an empty directory', async () => {
    // Kept for a time, the file's stat (empty) outlived its mark: another client gave it data and
    // dropped the mark, as another host's create does. The document read afresh, with the kept
    // stat, made it an empty node of no stored type: a directory.
    const m = await mount();
    const timed = vfsOver(m.session, { ttlMs: 60_000 }, m.root);
    await timed.release((await timed.create('/x', 0o644)).fh);
    expect(await timed.getattr('/x')).toMatchObject({ mode: S_IFREG | 0o644, size: 0 });
    await raw.setData(`${m.root}/x`, Buffer.from('data'), -1);
    const doc = parseMeta((await raw.getData(`${m.root}/__zkfs__`)).data);
    await raw.setData(`${m.root}/__zkfs__`, encodeMeta(withEntry(doc, 'x', undefined)), -1);
    // A file made here has the document read again; x's stat stays in memory.
    await timed.release((await timed.create('/y', 0o644)).fh);
    expect(await timed.getattr('/x')).toMatchObject({ mode: S_IFREG | 0o644, size: 4 });
  });

  it("sees another client's data changes, creations and deletions at once", async () => {
    const m = await mount();
    await writeFile(m.vfs, '/f', 'one');
    expect(await readFile(m.vfs, '/f')).toBe('one');
    await raw.setData(`${m.root}/f`, Buffer.from('two!'), -1);
    await until(async () => (await readFile(m.vfs, '/f')) === 'two!', 'the new content');
    expect((await m.vfs.getattr('/f')).size).toBe(4);
    await raw.create(`${m.root}/g`, Buffer.from('from raw'));
    await until(async () => (await m.vfs.readdir('/')).includes('g'), 'the new node listed');
    expect(await readFile(m.vfs, '/g')).toBe('from raw');
    await raw.remove(`${m.root}/g`, -1);
    await until(async () => !(await m.vfs.readdir('/')).includes('g'), 'the node gone');
    await expect(m.vfs.getattr('/g')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it("doubts a name it made when another client's deletion of it comes with its own notices, and asks whose it is", async () => {
    // A rename over the name by another host landing right after this mount's write, whose notices
    // come before that write's reply is acted on, and so are taken for its own.
    const m = await mount();
    let expected = m.tree.status().notices + 1;
    await raw.create(`${m.root}/doc`, Buffer.alloc(0));
    await until(async () => m.tree.status().notices >= expected, "the document's notice");
    const nothing = async () => {};
    const write = async (name: string, between = nothing, after = nothing) => {
      const ops: ZkOp[] = [
        { op: 'create', path: `${m.root}/${name}`, data: Buffer.from('mine'), acl: OPEN_ACL },
        { op: 'setData', path: `${m.root}/doc`, data: Buffer.from(name), version: -1 },
      ];
      const token = m.tree.begin(ops);
      await between();
      const stats = await raw.multi(ops);
      await after();
      await until(async () => m.tree.status().notices >= expected, 'the notices');
      m.tree.end(token, true, stats);
    };
    const replaced = (name: string) => async () => {
      await raw.remove(`${m.root}/${name}`, -1);
      await raw.create(`${m.root}/${name}`, Buffer.from('theirs'));
    };
    // Replaced right after: another file stands under the name now.
    expected += 4;
    await write('a', nothing, replaced('a'));
    expect(await m.tree.replacedSinceMade(`${m.root}/a`)).toBe(true);
    // Made and deleted by another client before this write landed: the name is this write's.
    expected += 4;
    await write('b', async () => {
      await raw.create(`${m.root}/b`, Buffer.from('theirs'));
      await raw.remove(`${m.root}/b`, -1);
    });
    expect(await m.tree.replacedSinceMade(`${m.root}/b`)).toBe(false);
    // No other client's deletion heard: no question asked.
    expected += 2;
    await write('c');
    expect(await m.tree.replacedSinceMade(`${m.root}/c`)).toBe(false);
    // A doubt nobody asked about is not the next node's made under that name.
    expected += 4;
    await write('d', nothing, replaced('d'));
    await raw.remove(`${m.root}/d`, -1);
    expected += 3;
    await write('d');
    expect(await m.tree.replacedSinceMade(`${m.root}/d`)).toBe(false);
  });

  it('gives a file another client replaced right after this mount made it to its handle alone', async () => {
    // Another host's `mv tmp f` landing just after this host's create of f: its notices come
    // before the create's reply is acted on (held back here until they are in).
    const O_EXCL = 0o200;
    const O_APPEND = 0o2000;
    const m = await mount();
    const replacedAfter = async (name: string, flags: number) => {
      aroundNextMulti(m, async (send, ops) => {
        const stats = await send(ops);
        const expected = m.tree.status().notices + 2;
        await raw.remove(`${m.root}/${name}`, -1);
        await raw.create(`${m.root}/${name}`, Buffer.from('theirs'));
        await until(async () => m.tree.status().notices >= expected, "the other client's notices");
        return stats;
      });
      const created = await m.vfs.create(`/${name}`, 0o644, flags);
      expect(created.gone?.open).toBeDefined();
      m.vfs.write(created.fh, Buffer.from('mine'), 0);
      return created.fh;
    };
    // Written back as to a file deleted elsewhere while open, never over the other file at the
    // version 0 both have: refused, and said so.
    const fh = await replacedAfter('f', O_EXCL);
    await expect(m.vfs.flush(fh)).rejects.toMatchObject({ code: 'EIO' });
    await m.vfs.release(fh);
    expect((await raw.getData(`${m.root}/f`)).data.toString()).toBe('theirs');
    expect(await readFile(m.vfs, '/f')).toBe('theirs');
    // Appends go after the other file, as to a log another host replaced.
    const appending = await replacedAfter('log', O_APPEND);
    await m.vfs.flush(appending);
    await m.vfs.release(appending);
    expect((await raw.getData(`${m.root}/log`)).data.toString()).toBe('theirsmine');
    // Nobody else touching the name: no question asked, nothing given away.
    const plain = await m.vfs.create('/g', 0o644);
    expect(plain.gone).toBeUndefined();
    await m.vfs.release(plain.fh);
  });

  it('asks again at write-back when whose file it made could not be asked at once', async () => {
    // As above, but ZooKeeper answers nothing while the question is out: the server is paused
    // until the question has timed out (the request time limit, not long enough to lose the
    // connection, so no watch gap).
    const m = await mount({ reconnectTimeoutMs: 1000 });
    await writeFile(m.vfs, '/seed', 'x');
    await m.vfs.mkdir('/fresh', 0o755);
    // Beside another file, the create leaves a stat naming its node; as the first file of a
    // directory it makes the document too, and leaves none. Renamed while open, the doubt goes
    // with it to the moved node.
    for (const [path, movedTo] of [['/f'], ['/fresh/f'], ['/g', '/g.moved']] as const) {
      const znode = `${m.root}${path}`;
      let resume = () => {};
      aroundNextMulti(m, async (send, ops) => {
        const stats = await send(ops);
        const expected = m.tree.status().notices + 2;
        await raw.remove(znode, -1);
        await raw.create(znode, Buffer.from('theirs'));
        await until(async () => m.tree.status().notices >= expected, "the other client's notices");
        resume = zk.pause(0);
        return stats;
      });
      const epoch = m.tree.watchEpoch;
      const created = await m.vfs.create(path, 0o644).finally(() => resume());
      expect(created.gone).toBeUndefined();
      expect(m.tree.watchEpoch).toBe(epoch);
      if (movedTo) await m.vfs.rename(path, movedTo);
      m.vfs.write(created.fh, Buffer.from('mine'), 0);
      await expect(m.vfs.flush(created.fh)).rejects.toMatchObject({ code: 'EIO' });
      await m.vfs.release(created.fh);
      expect((await raw.getData(`${m.root}${movedTo ?? path}`)).data.toString()).toBe('theirs');
    }
  });

  it('answers a create of a name another client made with ESTALE, or EEXIST for O_EXCL', async () => {
    // O_WRONLY|O_CREAT, as `echo x > f` opens; ESTALE has the kernel look the name up again and
    // open the file, as open(O_CREAT) opens a file that exists on a local disk.
    const O_CREAT_WRONLY = 0o101;
    const O_EXCL = 0o200;
    const m = await mount();
    await raw.create(`${m.root}/known`, Buffer.from('theirs'));
    await until(async () => (await m.vfs.readdir('/')).includes('known'), 'the new node listed');
    await expect(m.vfs.create('/known', 0o644, O_CREAT_WRONLY)).rejects.toMatchObject({ code: 'ESTALE' });
    await expect(m.vfs.create('/known', 0o644, O_CREAT_WRONLY | O_EXCL)).rejects.toMatchObject({
      code: 'EEXIST',
    });
    // Made after this mount last looked (a cache without a watch still says it is not there):
    // ZooKeeper refuses the create, and the answer is the same.
    const timed = vfsOver(m.session, { ttlMs: 60_000 }, m.root);
    expect(await timed.readdir('/')).not.toContain('late');
    await raw.create(`${m.root}/late`, Buffer.from('theirs'));
    await expect(timed.create('/late', 0o644, O_CREAT_WRONLY)).rejects.toMatchObject({ code: 'ESTALE' });
    await expect(timed.create('/late', 0o644, O_CREAT_WRONLY | O_EXCL)).rejects.toMatchObject({
      code: 'EEXIST',
    });
    // Nothing of ours was written over theirs.
    for (const name of ['known', 'late']) {
      expect((await raw.getData(`${m.root}/${name}`)).data.toString()).toBe('theirs');
    }
  });

  it('keeps child counts exact: a file that gains a child elsewhere becomes a directory here', async () => {
    const m = await mount();
    await writeFile(m.vfs, '/leaf', 'data');
    expect((await m.vfs.getattr('/leaf')).mode & 0o170000).toBe(0o100000);
    await raw.create(`${m.root}/leaf/child`, Buffer.from('x'));
    await until(
      async () => ((await m.vfs.getattr('/leaf')).mode & 0o170000) === 0o040000,
      'leaf shown as a directory',
    );
    expect(await m.vfs.readdir('/leaf')).toContain('child');
    await raw.remove(`${m.root}/leaf/child`, -1);
    await until(
      async () => ((await m.vfs.getattr('/leaf')).mode & 0o170000) === 0o100000,
      'leaf a file again',
    );
  });

  it("keeps child counts exact when a node's stat left memory and its data stayed", async () => {
    const m = await mount();
    await raw.create(`${m.root}/leaf`, Buffer.from('data'));
    await m.vfs.readdir('/');
    expect(await readFile(m.vfs, '/leaf')).toBe('data');
    // The memory budget lets the stat go and keeps the data, which carries a stat of its own.
    m.tree.stats.invalidate(`${m.root}/leaf`);
    await raw.create(`${m.root}/leaf/child`, Buffer.from('x'));
    // Notices come in order: once the next one is in, so is the child's.
    await raw.create(`${m.root}/mark`, Buffer.alloc(0));
    await until(async () => m.tree.children.peek(m.root)?.includes('mark') === true, 'mark heard of');
    // The listing of its parent brings the stat back from memory rather than from ZooKeeper.
    await m.vfs.readdir('/');
    expect((await m.vfs.getattr('/leaf')).mode & 0o170000).toBe(0o040000);
  });

  it('two mounts of one tree see each other within milliseconds', async () => {
    const a = await mount();
    const b = await mount({ root: a.root });
    await writeFile(a.vfs, '/shared', 'v0');
    await until(async () => (await b.vfs.readdir('/')).includes('shared'), 'b lists it');
    for (let i = 1; i <= 20; i++) {
      const fh = await a.vfs.open('/shared', 2);
      a.vfs.write(fh, Buffer.from(`v${i}`), 0);
      await a.vfs.flush(fh);
      await a.vfs.release(fh);
      const ms = await until(async () => (await readFile(b.vfs, '/shared')) === `v${i}`, `b reads v${i}`);
      expect(ms).toBeLessThan(1000);
    }
  });

  it('stays within its memory budget, evicting least recently used entries', async () => {
    const m = await mount({ cacheBytes: 64 * 1024 });
    const block = 'x'.repeat(1024);
    for (let i = 0; i < 150; i++) await writeFile(m.vfs, `/f${i}`, `${i}:${block}`);
    for (let i = 0; i < 150; i++) expect(await readFile(m.vfs, `/f${i}`)).toBe(`${i}:${block}`);
    const status = m.tree.status();
    expect(status.bytes).toBeLessThanOrEqual(64 * 1024);
    expect(status.evictions).toBeGreaterThan(0);
  });

  it('prefetches the stats and data of a listed directory in a few requests, so the walk after it needs none', async () => {
    const m = await mount();
    await createDir(`${m.root}/many`, 300);
    const start = m.session.counters.requests;
    const names = await m.vfs.readdir('/many');
    expect(names).toHaveLength(302);
    // Listed again while the first listing's children are on their way: none is asked for twice.
    expect(await m.vfs.readdir('/many')).toHaveLength(302);
    await until(async () => m.tree.status().prefetched >= 300, 'prefetch issued');
    // Give the pipelined replies a moment, then everything is in memory.
    await until(async () => {
      const before = m.session.counters.requests;
      for (let i = 0; i < 300; i++) await m.vfs.getattr(`/many/n${i}`);
      return m.session.counters.requests === before;
    }, 'all stats prefetched');
    // The listing, then the 300 children in batches (multiRead), not one request each.
    expect(m.session.counters.requests - start).toBeLessThanOrEqual(15);
    expect(m.tree.status().prefetched).toBe(300);
    const before = m.session.counters.requests;
    for (let i = 0; i < 300; i++) expect(await readFile(m.vfs, `/many/n${i}`)).toBe(`n${i}`);
    expect(m.session.counters.requests).toBe(before);
  });

  it("reads a new mount's listing's entries in batches when all their attributes are asked at once", async () => {
    const m = await mount();
    await createDir(`${m.root}/wide`, 300);
    const start = m.session.counters.requests;
    // As READDIRPLUS does: the names, then every entry's attributes in the same turn, before any
    // reply has told the mount how large its nodes are.
    const names = (await m.vfs.readdir('/wide')).filter((n) => n !== '.' && n !== '..');
    const attrs = await Promise.all(names.map((n) => m.vfs.getattr(`/wide/${n}`)));
    expect(attrs).toHaveLength(300);
    // One request per batch of the cautious first size (4 nodes), not one per entry.
    expect(m.session.counters.requests - start).toBeLessThanOrEqual(85);
    const before = m.session.counters.requests;
    for (let i = 0; i < 300; i += 37) expect(await readFile(m.vfs, `/wide/n${i}`)).toBe(`n${i}`);
    expect(m.session.counters.requests).toBe(before);
  });
});

describe('servers without persistent watches (before ZooKeeper 3.6)', () => {
  it('falls back to time-limited caching and says so', async () => {
    const root = `/c${++counter}`;
    await raw.create(root, Buffer.alloc(0));
    const session = await ZkSession.open({
      connectString: zk.connectString,
      reconnectTimeoutMs: 5000,
      logger: log,
    });
    onCleanup('old-server session', () => session.close());
    // What an old server answers to addWatch.
    session.addRecursiveWatch = () =>
      Promise.reject(Object.assign(new Error('UNIMPLEMENTED'), { name: 'UNIMPLEMENTED' }));
    const tree = new WatchedTree(session, root, log, { cacheBytes: 1 << 20, fallbackTtlMs: 300 });
    await tree.start();
    expect(tree.mode).toBe('ttl');
    expect(logged.join('\n')).toMatch(/no persistent watches/);
    const vfs = vfsOver(session, tree, root);
    await writeFile(vfs, '/f', 'one');
    expect((await vfs.getattr('/f')).size).toBe(3);
    await raw.setData(`${root}/f`, Buffer.from('three'), -1);
    const ms = await until(async () => (await vfs.getattr('/f')).size === 5, 'the change after the TTL');
    expect(ms).toBeLessThan(2000);
  });
});

describe('session faults', () => {
  it('waits through a server restart, then carries on with its watch in place', async () => {
    const m = await mount();
    await writeFile(m.vfs, '/f', 'before');
    await zk.kill(0);
    const pendingWrite = (async () => {
      const fh = await m.vfs.open('/f', 2);
      m.vfs.write(fh, Buffer.from('during'), 0);
      await m.vfs.flush(fh);
      await m.vfs.release(fh);
    })();
    const pendingRead = m.vfs.readdir('/');
    await new Promise((r) => setTimeout(r, 1500));
    await restartServer();
    await pendingWrite;
    expect(await pendingRead).toContain('f');
    expect((await raw.getData(`${m.root}/f`)).data.toString()).toBe('during');
    expect(m.session.counters.reconnects).toBeGreaterThanOrEqual(1);
    // One server: the log names it rather than "the other servers".
    expect(logged.join('\n')).toContain(`connection lost; reconnecting to ${zk.connectString},`);
    await until(async () => m.tree.status().mode === 'watch', 'watch set again');
    await raw.setData(`${m.root}/f`, Buffer.from('after'), -1);
    await until(async () => (await readFile(m.vfs, '/f')) === 'after', 'a change after the restart');
  });

  it('drops a connection whose handshake is never answered, as a starting ZooKeeper can leave it', async () => {
    const m = await mount();
    await writeFile(m.vfs, '/f', 'kept');
    await zk.kill(0);
    // ZooKeeper 3.8.0 accepts connections while it loads its database and leaves some of them open
    // and unanswered; this listener does that to every one, until the real server is back.
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    onCleanup('silent listener', () => {
      silent.close();
      for (const socket of held) socket.destroy();
    });
    await new Promise<void>((resolve) => silent.listen(zk.clientPorts[0], '127.0.0.1', resolve));
    const pendingRead = readFile(m.vfs, '/f');
    const since = logged.length;
    const dropped = /took the connection but did not answer within 1333 ms; trying again/;
    await until(
      async () => logged.slice(since).some((l) => dropped.test(l)),
      'an unanswered connection dropped',
    );
    silent.close();
    await restartServer();
    expect(await pendingRead).toBe('kept');
  });

  it('does not take a session closed under its watch request for an old server', async () => {
    const m = await mount();
    const since = logged.length;
    const addWatch = m.session.addRecursiveWatch.bind(m.session);
    let calls = 0;
    // What the server answers when the session is closed while the request is on its way.
    m.session.addRecursiveWatch = (path) =>
      calls++ === 0
        ? Promise.reject(Object.assign(new Error('SESSION_EXPIRED'), { name: 'SESSION_EXPIRED' }))
        : addWatch(path);
    dropConnection((m.session as unknown as { client: ZkClient }).client.library);
    await until(async () => calls > 1 && m.tree.status().mode === 'watch', 'the watch set again');
    expect(logged.slice(since).join('\n')).not.toMatch(/no persistent watches/);
  });

  it('gives up with ETIMEDOUT after the reconnect timeout', async () => {
    const m = await mount({ reconnectTimeoutMs: 1500 });
    await zk.kill(0);
    try {
      const started = Date.now();
      const error = await m.vfs.readdir('/nothing-cached').catch((e: unknown) => e);
      expect(errnoOf(error)).toBe('ETIMEDOUT');
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await restartServer();
    }
    await until(async () => m.session.state === 'connected', 'reconnected', 20_000);
    expect((await m.vfs.readdir('/')).sort()).toEqual(['.', '..']);
  });

  it('lets an operation that joined a read already waiting wait its own reconnect timeout, not what was left of that one', async () => {
    const timeoutMs = 8000;
    const m = await mount({ reconnectTimeoutMs: timeoutMs });
    await writeFile(m.vfs, '/a', 'a');
    await writeFile(m.vfs, '/b', 'b');
    await zk.kill(0);
    // Until the mount sees the connection gone, it still answers from memory.
    await until(async () => m.session.state !== 'connected', 'the connection seen lost', 10_000);
    let restarted = false;
    try {
      // Both need the link table, which nothing serves from memory while the watch is down: the
      // second lookup joins the read the first one started.
      const first = m.vfs.getattr('/a').catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, timeoutMs - 3000));
      const joinedAt = Date.now();
      const second = m.vfs.getattr('/b').then(
        (attr) => ({ attr, ms: Date.now() - joinedAt }),
        (error: unknown) => ({ error, ms: Date.now() - joinedAt }),
      );
      expect(errnoOf(await first)).toBe('ETIMEDOUT');
      // The server comes back within the second lookup's own timeout.
      await restartServer();
      restarted = true;
      const outcome = await second;
      expect(outcome).toMatchObject({ attr: { size: 1 } });
      // It waited past the first lookup's end (3 s after it joined) for the server.
      expect(outcome.ms).toBeGreaterThan(3000);
    } finally {
      if (!restarted) await restartServer();
    }
  });

  it('takes a create, removal, rename or link whose reply was lost as done when sent again, though another host rewrote its document meanwhile', async () => {
    const m = await mount();
    await writeFile(m.vfs, '/seed', 'x');
    const doc = `${m.root}/__zkfs__`;
    let others = 0;
    /** Another host's change to the directory: a file of its own, with its entry in the document. */
    const rewrite = async () => {
      const now = await raw.getData(doc);
      const name = `other${others++}`;
      const meta = withEntry(parseMeta(now.data), name, { t: 'f' });
      await raw.multi([
        { op: 'create', path: `${m.root}/${name}`, data: Buffer.alloc(0), acl: OPEN_ACL },
        { op: 'setData', path: doc, data: encodeMeta(meta), version: now.stat.version },
      ]);
    };
    let meanwhile = rewrite;
    // The multi goes through, then the connection drops before its reply, and another host
    // rewrites the document before the mount sends it again.
    const client = (m.session as unknown as { client: ZkClient }).client;
    const multi = client.multi.bind(client);
    let lose = 0;
    client.multi = async (ops) => {
      const stats = await multi(ops);
      if (lose === 0) return stats;
      lose--;
      await meanwhile();
      throw new ZkError('CONNECTION_LOSS', ops[0]?.path);
    };
    const confirmed = m.session.counters.confirmedWrites;
    lose = 1;
    const { fh } = await m.vfs.create('/mine', 0o644); // was EEXIST
    await m.vfs.release(fh);
    lose = 1;
    await m.vfs.mkdir('/dir', 0o755); // was EEXIST
    lose = 1;
    await m.vfs.unlink('/mine'); // was ENOENT
    lose = 1;
    await m.vfs.rmdir('/dir'); // was ENOENT
    await writeFile(m.vfs, '/new', 'replacement');
    lose = 1;
    await m.vfs.rename('/new', '/seed'); // was ENOENT, as editors and certbot replace files
    // A write-back that carries the times set before close (cp -a, tar), with the document.
    const timed = await m.vfs.create('/timed', 0o644);
    m.vfs.write(timed.fh, Buffer.from('kept'), 0);
    await m.vfs.utimens('/timed', 1_000_000, 2_000_000);
    lose = 1;
    await m.vfs.flush(timed.fh);
    await m.vfs.release(timed.fh);
    expect((await m.vfs.getattr('/timed')).mtimeMs).toBe(2_000_000);
    // A link, with another host's link made meanwhile: the table holds no token, but the link.
    meanwhile = async () => {
      const now = await raw.getData(`${m.root}/__symlinks__`).catch(() => undefined);
      const links = parseSymlinks(now?.data);
      links.set(`/theirs${others++}`, 'seed');
      await raw.setData(`${m.root}/__symlinks__`, encodeSymlinks(links), now?.stat.version ?? -1);
    };
    lose = 1;
    await m.vfs.symlink('seed', '/link'); // was EEXIST
    expect(await m.vfs.readlink('/link')).toBe('seed');
    lose = 1;
    await m.vfs.rename('/link', '/moved'); // was ENOENT
    expect(await m.vfs.readlink('/moved')).toBe('seed');
    expect(m.session.counters.confirmedWrites - confirmed).toBe(8);
    const others6 = ['other0', 'other1', 'other2', 'other3', 'other4', 'other5'];
    expect((await raw.getChildren(m.root)).children.sort()).toEqual([
      '__symlinks__',
      '__zkfs__',
      ...others6,
      'seed',
      'timed',
    ]);
    expect((await raw.getData(`${m.root}/seed`)).data.toString()).toBe('replacement');
    expect((await raw.getData(`${m.root}/timed`)).data.toString()).toBe('kept');
    // The other host's entries are all there: nothing was written twice over them.
    const entries = [...parseMeta((await raw.getData(doc)).data).entries.keys()].sort();
    expect(entries).toEqual([...others6, 'seed', 'timed']);
  });

  it('takes an append whose reply was lost as done when another host appended after it landed, and appends it once when it had not', async () => {
    const m = await mount();
    await writeFile(m.vfs, '/log', 'start\n');
    const log = `${m.root}/log`;
    // The write-back of `>> log` lands (or does not), another host appends, and the connection
    // drops before the reply: sent again, it finds another client's version.
    const client = (m.session as unknown as { client: ZkClient }).client;
    const setData = client.setData.bind(client);
    let lose: 'after it landed' | 'before it landed' | undefined;
    client.setData = async (path, data, version) => {
      const how = path === log ? lose : undefined;
      if (!how) return setData(path, data, version);
      lose = undefined;
      if (how === 'after it landed') await setData(path, data, version);
      const now = await raw.getData(path);
      await raw.setData(path, Buffer.concat([now.data, Buffer.from(`theirs, ${how}\n`)]), now.stat.version);
      throw new ZkError('CONNECTION_LOSS', path);
    };
    const append = async (line: string) => {
      const fh = await m.vfs.open('/log', 0o1 | 0o2000); // O_WRONLY | O_APPEND
      m.vfs.write(fh, Buffer.from(line), 0);
      await m.vfs.flush(fh); // was EIO, "conflicting write", though the first line was there
      await m.vfs.release(fh);
    };
    lose = 'after it landed';
    await append('mine 1\n');
    lose = 'before it landed';
    await append('mine 2\n');
    expect((await raw.getData(log)).data.toString()).toBe(
      'start\nmine 1\ntheirs, after it landed\ntheirs, before it landed\nmine 2\n',
    );
    expect(await readFile(m.vfs, '/log')).toBe(
      'start\nmine 1\ntheirs, after it landed\ntheirs, before it landed\nmine 2\n',
    );
  });

  it('does not take a cut whose reply was lost as done because the file still begins with what is left of it', async () => {
    // logrotate's copytruncate, or `truncate -s`, through a descriptor: what the cut sends is the
    // start of the old content, so the old content with another host's line after it begins with it
    // too, and only says the cut landed when it no longer begins with the old content.
    const m = await mount();
    const client = (m.session as unknown as { client: ZkClient }).client;
    const setData = client.setData.bind(client);
    const multi = client.multi.bind(client);
    let lose: { path: string; landed: boolean } | undefined;
    const theirs = async (path: string) => {
      const now = await raw.getData(path);
      await raw.setData(path, Buffer.concat([now.data, Buffer.from('theirs\n')]), now.stat.version);
    };
    client.setData = async (path, data, version) => {
      const how = lose?.path === path ? lose : undefined;
      if (!how) return setData(path, data, version);
      lose = undefined;
      if (how.landed) await setData(path, data, version);
      await theirs(path);
      throw new ZkError('CONNECTION_LOSS', path);
    };
    client.multi = async (ops) => {
      const how = lose && ops[0]?.path === lose.path ? lose : undefined;
      if (!how) return multi(ops);
      lose = undefined;
      if (how.landed) await multi(ops);
      await theirs(how.path);
      throw new ZkError('CONNECTION_LOSS', how.path);
    };
    const cut = async (name: string, size: number, landed: boolean) => {
      await writeFile(m.vfs, `/${name}`, 'kept\nold lines\n');
      const fh = await m.vfs.open(`/${name}`, 0o1); // O_WRONLY
      await m.vfs.ftruncate(fh, size);
      lose = { path: `${m.root}/${name}`, landed };
      await m.vfs.flush(fh);
      await m.vfs.release(fh);
      expect(lose, `${name}: the write-back was sent`).toBeUndefined();
      return (await raw.getData(`${m.root}/${name}`)).data.toString();
    };
    // Landed or not, the cut is made once and the other host's line stays: the old lines were doubled.
    expect(await cut('part-lost', 5, false)).toBe('kept\ntheirs\n');
    expect(await cut('part-landed', 5, true)).toBe('kept\ntheirs\n');
    expect(await cut('all-lost', 0, false)).toBe('theirs\n');
    expect(await cut('all-landed', 0, true)).toBe('theirs\n');
    client.setData = setData;
    client.multi = multi;
  });

  it('asks whether a write-back that timed out unanswered landed before it writes back again', async () => {
    // ZooKeeper took the write, then went away for longer than the reconnect timeout: the close
    // failed with ETIMEDOUT, and the release wrote back again once it was back.
    const m = await mount({ reconnectTimeoutMs: 300 });
    const client = (m.session as unknown as { client: ZkClient }).client;
    const setData = client.setData.bind(client);
    let away: { path: string; theirs: string | undefined; sent: boolean } | undefined;
    client.setData = async (path, data, version) => {
      if (away?.path !== path) return setData(path, data, version);
      if (!away.sent) {
        away.sent = true;
        await setData(path, data, version);
        const now = await raw.getData(path);
        if (away.theirs) await raw.setData(path, Buffer.concat([now.data, Buffer.from(away.theirs)]), -1);
      }
      throw new ZkError('CONNECTION_LOSS', path);
    };
    const timeOut = async (name: string, flags: number, text: string, at: number, theirs?: string) => {
      const fh = await m.vfs.open(`/${name}`, flags);
      m.vfs.write(fh, Buffer.from(text), at);
      away = { path: `${m.root}/${name}`, theirs, sent: false };
      await expect(m.vfs.flush(fh)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
      away = undefined;
      await m.vfs.release(fh);
      return (await raw.getData(`${m.root}/${name}`)).data.toString();
    };
    await writeFile(m.vfs, '/log', 'start\n');
    const appended = await timeOut('log', 0o1 | 0o2000, 'mine\n', 6, 'theirs\n'); // O_WRONLY | O_APPEND
    expect(appended).toBe('start\nmine\ntheirs\n'); // was appended again after theirs
    await writeFile(m.vfs, '/doc', 'start');
    expect(await timeOut('doc', 0o2, 'changed', 0)).toBe('changed'); // O_RDWR
    // Its own write was not taken for another client's: nothing was refused.
    expect(logged.join('\n')).not.toMatch(/write to \/doc refused/);
    client.setData = setData;

    // A log another host removed: appends here make it again (one multi with the directory's
    // document), which ZooKeeper took before it went away.
    m.tree.onDeleting = (znode) => () => m.vfs.deletedElsewhere(znode);
    const multi = client.multi.bind(client);
    let gone: 'no' | 'after this' | 'yes' = 'no';
    client.multi = async (ops) => {
      if (ops[0]?.path !== `${m.root}/rotated` || gone === 'no') return multi(ops);
      if (gone === 'after this') await multi(ops);
      gone = 'yes';
      throw new ZkError('CONNECTION_LOSS', ops[0].path);
    };
    await writeFile(m.vfs, '/rotated', 'old\n');
    const logger = await m.vfs.open('/rotated', 0o1 | 0o2000);
    await raw.remove(`${m.root}/rotated`, -1);
    await until(async () => !(await m.vfs.readdir('/')).includes('rotated'), 'the removal heard');
    m.vfs.write(logger, Buffer.from('line\n'), 4);
    gone = 'after this';
    await expect(m.vfs.flush(logger)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    client.multi = multi;
    await m.vfs.release(logger);
    expect((await raw.getData(`${m.root}/rotated`)).data.toString()).toBe('line\n'); // was twice
  });

  it('replaces a session closed by the server: watch rebuilt, stale entries dropped, open writes kept', async () => {
    const m = await mount();
    await writeFile(m.vfs, '/open', 'old');
    await writeFile(m.vfs, '/cached', 'old');
    expect(await readFile(m.vfs, '/cached')).toBe('old');
    const fh = await m.vfs.open('/open', 2);
    m.vfs.write(fh, Buffer.from('buffered across expiry'), 0);
    const oldId = m.session.sessionId;
    await raw.setData(`${m.root}/cached`, Buffer.from('changed while away'), -1);
    await expireFromServer(m.session);
    expect(m.session.sessionId).not.toBe(oldId);
    await until(async () => m.tree.status().mode === 'watch', 'watch set again');
    expect(await readFile(m.vfs, '/cached')).toBe('changed while away');
    await m.vfs.flush(fh);
    await m.vfs.release(fh);
    expect((await raw.getData(`${m.root}/open`)).data.toString()).toBe('buffered across expiry');
    await raw.setData(`${m.root}/cached`, Buffer.from('seen by the new watch'), -1);
    await until(
      async () => (await readFile(m.vfs, '/cached')) === 'seen by the new watch',
      'new watch works',
    );
    expect(logged.join('\n')).toMatch(/expired; opening a new one/);
  });

  it("keeps the version check across a rename here: another client's write before the move is not written over", async () => {
    // The moved node starts again at data version 0: a handle opened at version 0 of the old one
    // must not take it for its own.
    const m = await mount();
    await raw.create(`${m.root}/r`, Buffer.from('base'));
    const fh = await m.vfs.open('/r', 2);
    await raw.setData(`${m.root}/r`, Buffer.from('theirs'), -1);
    await until(async () => (await m.vfs.getattr('/r')).size === 6, 'the other write heard');
    await m.vfs.rename('/r', '/moved');
    expect((await raw.exists(`${m.root}/moved`))?.version).toBe(0);
    m.vfs.write(fh, Buffer.from('mine'), 0);
    await expect(m.vfs.flush(fh)).rejects.toMatchObject({ code: 'EIO' });
    await m.vfs.release(fh);
    expect((await raw.getData(`${m.root}/moved`)).data.toString()).toBe('theirs');

    // Appends alone still go on the end of what the node holds, as without the move.
    await raw.create(`${m.root}/log`, Buffer.from('a\n'));
    const appender = await m.vfs.open('/log', 2 | 0o2000);
    await raw.setData(`${m.root}/log`, Buffer.from('a\nb\n'), -1);
    await until(async () => (await m.vfs.getattr('/log')).size === 4, 'the other append heard');
    await m.vfs.rename('/log', '/log.1');
    m.vfs.write(appender, Buffer.from('c\n'), 2);
    await m.vfs.flush(appender);
    await m.vfs.release(appender);
    expect((await raw.getData(`${m.root}/log.1`)).data.toString()).toBe('a\nb\nc\n');
  });

  it('never writes a handle refused once over a file another host made again under its name at the version it had', async () => {
    // An editor's save refused (another host wrote first): the editor keeps the file open and
    // saves again after the other host replaced the file, whose new node reached the data
    // version the editor's buffer was of.
    const m = await mount();
    // As the FUSE layer does (adapters/fuse.ts).
    m.tree.onDeleting = (znode) => () => m.vfs.deletedElsewhere(znode);
    await writeFile(m.vfs, '/f', 'start');
    const version = (await raw.exists(`${m.root}/f`))?.version;
    const fh = await m.vfs.open('/f', 2); // O_RDWR
    m.vfs.write(fh, Buffer.from('mine'), 0);
    await raw.setData(`${m.root}/f`, Buffer.from('theirs'), -1);
    await expect(m.vfs.flush(fh)).rejects.toMatchObject({ code: 'EIO' });
    // The same after a write-back that found the node gone.
    const gone = await m.vfs.open('/f', 2);
    m.vfs.write(gone, Buffer.from('mine too'), 0);
    await raw.remove(`${m.root}/f`, -1);
    await until(async () => !(await m.vfs.readdir('/')).includes('f'), 'the deletion heard');
    await expect(m.vfs.flush(gone)).rejects.toMatchObject({ code: 'EIO' });
    await raw.create(`${m.root}/f`, Buffer.from('new'));
    for (let v = 0; v < (version ?? 0); v++) await raw.setData(`${m.root}/f`, Buffer.from('newer'), -1);
    expect((await raw.exists(`${m.root}/f`))?.version).toBe(version);
    await until(async () => (await readFile(m.vfs, '/f')) !== 'theirs', 'the new file heard');
    m.vfs.write(fh, Buffer.from(' and more'), 4);
    await expect(m.vfs.flush(fh)).rejects.toMatchObject({ code: 'EIO' });
    await m.vfs.release(fh);
    m.vfs.write(gone, Buffer.from(' and more'), 8);
    await expect(m.vfs.flush(gone)).rejects.toMatchObject({ code: 'EIO' });
    await m.vfs.release(gone);
    expect((await raw.getData(`${m.root}/f`)).data.toString()).toBe(version ? 'newer' : 'new');
  });

  it('lets no write-back cross a rename or removal here of the file moved, replaced or removed', async () => {
    // A close waiting for ZooKeeper (here: its setData held before it is sent) and a rename by
    // another program on this host: the close's bytes land first, and go with the move.
    const m = await mount();
    /** Closes `fh` with its setData held until `op` has begun and had time to land, if it would. */
    const closeDuring = async (fh: number, op: () => Promise<void>): Promise<void> => {
      const { letGo } = holdNextSetData(m);
      const closed = m.vfs.flush(fh);
      const done = op();
      await new Promise((resolve) => setTimeout(resolve, 200));
      letGo();
      await closed;
      await done;
    };
    await writeFile(m.vfs, '/w', 'old');
    const fh = await m.vfs.open('/w', 2);
    m.vfs.write(fh, Buffer.from('new!'), 0);
    await closeDuring(fh, () => m.vfs.rename('/w', '/w.moved'));
    expect((await raw.getData(`${m.root}/w.moved`)).data.toString()).toBe('new!');
    // The file writes on under its new name.
    m.vfs.write(fh, Buffer.from('more'), 4);
    await m.vfs.flush(fh);
    await m.vfs.release(fh);
    expect((await raw.getData(`${m.root}/w.moved`)).data.toString()).toBe('new!more');
    expect(await raw.exists(`${m.root}/w`)).toBeNull();

    // The file renamed over: its close lands on its own node, at version 0 as the node moved in
    // will be, before the move replaces it, not on the moved-in node after it.
    await raw.create(`${m.root}/target`, Buffer.from('target'));
    await writeFile(m.vfs, '/incoming', 'incoming');
    const over = await m.vfs.open('/target', 2);
    m.vfs.write(over, Buffer.from('closing'), 0);
    await closeDuring(over, () => m.vfs.rename('/incoming', '/target'));
    await m.vfs.release(over);
    expect((await raw.getData(`${m.root}/target`)).data.toString()).toBe('incoming');

    // Removed here meanwhile, and made again: the close lands on the old file before it goes, and
    // the new file is not written over (both at version 0).
    await raw.create(`${m.root}/doomed`, Buffer.from('old'));
    const doomed = await m.vfs.open('/doomed', 2);
    m.vfs.write(doomed, Buffer.from('last words'), 0);
    await closeDuring(doomed, () => m.vfs.unlink('/doomed'));
    await writeFile(m.vfs, '/doomed', 'reborn');
    await m.vfs.release(doomed);
    expect((await raw.getData(`${m.root}/doomed`)).data.toString()).toBe('reborn');
  });

  it('lets no truncate by path of a file not open here cross a rename here', async () => {
    // truncate(2) reads the node and writes it at the version read; a node a rename moves in is at
    // version 0 too, so a cut landing after the move would put the old file's head in it. Through
    // FUSE the kernel keeps a rename of the file itself from overlapping; a directory swapped
    // (mv d d.old && mv d.new d) is not.
    const m = await mount();
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    await m.vfs.mkdir('/d', 0o755);
    await writeFile(m.vfs, '/d/f', 'target');
    await m.vfs.mkdir('/d.new', 0o755);
    await writeFile(m.vfs, '/d.new/f', 'incoming');
    const { reached, letGo } = holdNextSetData(m);
    const cut = m.vfs.truncate('/d/f', 3);
    await reached;
    let swapped = false;
    const swap = (async () => {
      await m.vfs.rename('/d', '/d.old');
      await m.vfs.rename('/d.new', '/d');
      swapped = true;
    })();
    await sleep(200);
    expect(swapped, 'the swap waits for the cut on its way').toBe(false);
    letGo();
    await cut;
    await swap;
    expect((await raw.getData(`${m.root}/d/f`)).data.toString()).toBe('incoming');
    expect((await raw.getData(`${m.root}/d.old/f`)).data.toString()).toBe('tar');

    // One that comes while a rename is on its way waits for it, then cuts the file moved in.
    await writeFile(m.vfs, '/next', 'replacement');
    let cutting: Promise<void> | undefined;
    aroundNextMulti(m, async (send, ops) => {
      const held = holdNextSetData(m);
      cutting = m.vfs.truncate('/d/f', 2);
      await Promise.race([held.reached, sleep(200)]);
      const result = await send(ops);
      held.letGo();
      return result;
    });
    await m.vfs.rename('/next', '/d/f');
    await cutting;
    expect((await raw.getData(`${m.root}/d/f`)).data.toString()).toBe('re');
  });

  it('writes back what a handle wrote while its own flush was on its way', async () => {
    // Another thread of the program writes through the descriptor while fsync() waits.
    const m = await mount();
    await writeFile(m.vfs, '/threads', 'x');
    const fh = await m.vfs.open('/threads', 2);
    m.vfs.write(fh, Buffer.from('one '), 0);
    const { reached, letGo } = holdNextSetData(m);
    const synced = m.vfs.flush(fh);
    await reached;
    m.vfs.write(fh, Buffer.from('two'), 4);
    letGo();
    await synced;
    await m.vfs.flush(fh);
    await m.vfs.release(fh);
    expect((await raw.getData(`${m.root}/threads`)).data.toString()).toBe('one two');
  });

  it('keeps appending to the name after another host removed the log, when this host makes it again', async () => {
    // logrotate's `create` (or the program reopening with O_CREAT) on this host, after the log was
    // rotated away elsewhere: the logger still holding the old one appends to the new file.
    const O_APPEND = 0o2000;
    const m = await mount();
    // As the FUSE face wires it (fuse.ts): another client's deletion reaches the files open on it.
    m.tree.onDeleting = (znode) => () => m.vfs.deletedElsewhere(znode);
    await writeFile(m.vfs, '/app.log', 'one\n');
    const logger = await m.vfs.open('/app.log', 1 | O_APPEND);
    await raw.remove(`${m.root}/app.log`, -1);
    await until(async () => !(await m.vfs.readdir('/')).includes('app.log'), 'the removal heard');
    const made = await m.vfs.create('/app.log', 0o644);
    await m.vfs.release(made.fh);
    m.vfs.write(logger, Buffer.from('two\n'), 4);
    await m.vfs.flush(logger);
    await m.vfs.release(logger);
    expect((await raw.getData(`${m.root}/app.log`)).data.toString()).toBe('two\n');
  });

  it("removes a directory's _zoo_data_ without dropping what files open below it write", async () => {
    const m = await mount();
    await m.vfs.mkdir('/dd', 0o755);
    await writeFile(m.vfs, '/dd/_zoo_data_', 'directory data');
    const { fh } = await m.vfs.create('/dd/kept', 0o644);
    m.vfs.write(fh, Buffer.from('kept'), 0);
    await m.vfs.unlink('/dd/_zoo_data_');
    await m.vfs.flush(fh);
    await m.vfs.release(fh);
    expect((await raw.getData(`${m.root}/dd`)).data.length).toBe(0);
    expect((await raw.getData(`${m.root}/dd/kept`)).data.toString()).toBe('kept');
  });

  it('removes or renames over a directory whose _zoo_data_ is open here only once nothing is written to it, and never writes into one made again', async () => {
    const m = await mount();
    await m.vfs.mkdir('/rd', 0o755);
    const { fh } = await m.vfs.create('/rd/_zoo_data_', 0o644);
    await m.vfs.mkdir('/rd/child', 0o755);
    m.vfs.write(fh, Buffer.from('kept'), 0);
    // Written and not yet closed, as a listing shows it: not empty.
    await expect(m.vfs.rmdir('/rd')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await m.vfs.rmdir('/rd/child');
    await expect(m.vfs.rmdir('/rd')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await m.vfs.mkdir('/other', 0o755);
    await expect(m.vfs.rename('/other', '/rd')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    // A refused rmdir leaves the file as it was: its close writes.
    await m.vfs.flush(fh);
    expect((await raw.getData(`${m.root}/rd`)).data.toString()).toBe('kept');
    await m.vfs.release(fh);

    // Removed while open and clean, then made again: what the old handle writes goes nowhere.
    await m.vfs.mkdir('/rd2', 0o755);
    const late = await m.vfs.create('/rd2/_zoo_data_', 0o644);
    await m.vfs.rmdir('/rd2');
    await m.vfs.mkdir('/rd2', 0o755);
    m.vfs.write(late.fh, Buffer.from('late'), 0);
    await m.vfs.flush(late.fh);
    await m.vfs.release(late.fh);
    expect((await raw.getData(`${m.root}/rd2`)).data.toString()).toBe('');
  });

  it('keeps the version check across expiry: a conflicting write made meanwhile is refused', async () => {
    const m = await mount();
    await writeFile(m.vfs, '/v', 'base');
    const fh = await m.vfs.open('/v', 2);
    m.vfs.write(fh, Buffer.from('mine'), 0);
    await raw.setData(`${m.root}/v`, Buffer.from('theirs'), -1);
    await expireFromServer(m.session);
    await expect(m.vfs.flush(fh)).rejects.toMatchObject({ code: 'EIO' });
    await m.vfs.release(fh);
    expect((await raw.getData(`${m.root}/v`)).data.toString()).toBe('theirs');
  });
});
