/**
 * Writes of shared documents (a directory's metadata, the symlink table)
 * that lose races to other clients, against a real ZooKeeper: they read
 * the document again and try again for a span of time, however many
 * attempts that takes, then fail with a message that says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/adapters/logger.js';
import { commitWithRetry } from '../../src/adapters/zkfs/commit.js';
import { ttlFreshness } from '../../src/adapters/zkfs/node-cache.js';
import { ZkSession } from '../../src/adapters/zkfs/session.js';
import { ZkTree } from '../../src/adapters/zkfs/tree.js';
import { verifyMulti } from '../../src/adapters/zkfs/write-verify.js';
import { isZkError, ZkClient, type ZkError } from '../../src/adapters/zookeeper.js';
import { encodeMeta, parseMeta, withEntry } from '../../src/core/zkfs/attrs.js';
import { isFsError } from '../../src/core/zkfs/errors.js';
import { planRename } from '../../src/core/zkfs/rename-plan.js';
import { showsProof, WriteProofs } from '../../src/core/zkfs/write-proof.js';
import { type AclEntry, ZK_MAX_REQUEST_BYTES, type ZkOp } from '../../src/core/zkfs/zk-ops.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';

let zk: ZkServer;
/** The other client, which changes the document between our read and our write. */
let other: ZkClient;
let tree: ZkTree;

beforeAll(async () => {
  zk = await startZk();
  other = await ZkClient.connect({ connectString: zk.connectString });
  const session = await ZkSession.open({
    connectString: zk.connectString,
    reconnectTimeoutMs: 10_000,
    logger: createLogger({ level: 'error', write: () => {} }),
  });
  onCleanup('commit test session', () => session.close());
  tree = new ZkTree(session, '/race', ttlFreshness(1000), createLogger({ level: 'error', write: () => {} }));
  await other.create('/race', Buffer.alloc(0));
});
afterAll(async () => {
  await other?.close();
});

let serial = 0;
const OPEN_ACL: AclEntry[] = [{ perms: 31, scheme: 'world', id: 'anyone' }];

/** A new directory, named `prefix` and a number, with an empty metadata document. */
async function withDocument(prefix: string): Promise<string> {
  const dir = `/race/${prefix}${serial++}`;
  await other.create(dir, Buffer.alloc(0));
  await other.create(`${dir}/__zkfs__`, Buffer.from('{"entries":{}}'));
  return dir;
}

/**
 * A directory whose metadata document another client rewrites after each
 * of our reads for the first `losses` attempts; resolves with the attempts
 * our write took and what the document holds at the end.
 */
async function contended(losses: number, budgetMs?: number): Promise<{ attempts: number; doc: string }> {
  const dir = await withDocument('d');
  let attempts = 0;
  await commitWithRetry(
    tree,
    async (attempt) => {
      attempts = attempt + 1;
      const doc = attempt === 0 ? await tree.meta(dir) : await tree.freshMeta(dir);
      if (attempt < losses)
        await other.setData(`${dir}/__zkfs__`, Buffer.from(`{"entries":{},"o":${attempt}}`), -1);
      return [
        {
          op: 'setData',
          path: `${dir}/__zkfs__`,
          data: Buffer.from('{"entries":{},"ours":1}'),
          version: doc.version ?? -1,
        },
      ];
    },
    budgetMs === undefined ? {} : { budgetMs },
  );
  return { attempts, doc: (await other.getData(`${dir}/__zkfs__`)).data.toString() };
}

describe('a shared document another client keeps changing', () => {
  it('is written once a read of it is not overtaken, after more than eight lost races', async () => {
    // Eight attempts were all a write had: the ninth loss was an EIO for the program.
    const { attempts, doc } = await contended(12);
    expect(attempts).toBe(13);
    expect(doc).toBe('{"entries":{},"ours":1}');
  });

  it('fails with EIO naming the document once the time for trying is up', async () => {
    const started = Date.now();
    const failure = await contended(1_000_000, 300).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(isFsError(failure) && failure.code).toBe('EIO');
    expect(String((failure as Error).message)).toMatch(
      /^EIO: other clients changed \/race\/d\d+\/__zkfs__ before each of \d+ attempts in 0\.\d s; gave up$/,
    );
  });
});

describe('a rename that loses races on the document and on its own target', () => {
  it('tries again after ten lost on the document and then one on the target, and is made', async () => {
    // Counted together, the ninth failure (the first on the target) was the last: rename(2) failed
    // with EEXIST in a busy directory.
    const dir = await withDocument('target');
    let attempts = 0;
    await commitWithRetry(
      tree,
      async (attempt) => {
        attempts = attempt + 1;
        const doc = attempt === 0 ? await tree.meta(dir) : await tree.freshMeta(dir);
        const target = await other.exists(`${dir}/n`);
        // Another host gets in between this read and the write: on the document, then on the target.
        if (attempt < 10)
          await other.setData(`${dir}/__zkfs__`, Buffer.from(`{"entries":{},"o":${attempt}}`), -1);
        else if (attempt === 10) await other.create(`${dir}/n`, Buffer.from('theirs'));
        const ops: ZkOp[] = target ? [{ op: 'delete', path: `${dir}/n`, version: target.version }] : [];
        ops.push(
          { op: 'create', path: `${dir}/n`, data: Buffer.from('mine'), acl: OPEN_ACL },
          {
            op: 'setData',
            path: `${dir}/__zkfs__`,
            data: Buffer.from('{"entries":{}}'),
            version: doc.version ?? -1,
          },
        );
        return ops;
      },
      { retryAlso: (error) => isZkError(error, 'NODE_EXISTS', 'NO_NODE') },
    );
    expect(attempts).toBe(12);
    expect((await other.getData(`${dir}/n`)).data.toString()).toBe('mine');
  });
});

describe('a create whose reply was lost, sent again', () => {
  const here = new WriteProofs();
  const there = new WriteProofs();
  /** The ops create() sends to make `name` in `dir`, over the document as read (version 0). */
  function createOps(dir: string, name: string, doc: Buffer, proof: string): ZkOp[] {
    const meta = encodeMeta(here.withProof(withEntry(parseMeta(doc), name, { t: 'f' }), proof));
    return [
      { op: 'create', path: `${dir}/${name}`, data: Buffer.alloc(0), acl: OPEN_ACL },
      {
        op: 'setData',
        path: `${dir}/__zkfs__`,
        data: meta,
        version: 0,
        proof: (now) => showsProof(now, proof),
      },
    ];
  }

  /** What another host's create of `name` writes, over the document as it is now. */
  async function createElsewhere(dir: string, name: string): Promise<void> {
    const now = await other.getData(`${dir}/__zkfs__`);
    const meta = there.withProof(withEntry(parseMeta(now.data), name, { t: 'f' }), there.issue());
    await other.multi([
      { op: 'create', path: `${dir}/${name}`, data: Buffer.alloc(0), acl: OPEN_ACL },
      { op: 'setData', path: `${dir}/__zkfs__`, data: encodeMeta(meta), version: now.stat.version },
    ]);
  }

  async function directory(): Promise<{ dir: string; doc: Buffer }> {
    const dir = `/race/lost${serial++}`;
    const doc = encodeMeta(parseMeta(undefined));
    await other.create(dir, Buffer.alloc(0));
    await other.create(`${dir}/__zkfs__`, doc);
    return { dir, doc };
  }

  it('counts as done when its token is in the document, though another host rewrote it since', async () => {
    const { dir, doc } = await directory();
    const ops = createOps(dir, 'mine', doc, here.issue());
    await other.multi(ops); // the send whose reply was lost
    await createElsewhere(dir, 'theirs');
    const again = await other.multi(ops).catch((e: unknown) => e);
    expect(isZkError(again, 'NODE_EXISTS')).toBe(true);
    // Not the bytes written any more, so only the token can tell.
    const written = ops[1]?.op === 'setData' ? ops[1].data : undefined;
    expect((await other.getData(`${dir}/__zkfs__`)).data.equals(written ?? Buffer.alloc(0))).toBe(false);
    // Confirmed: stats of what is its own result still (none here, the document was rewritten since).
    expect(await verifyMulti(ops)(other, again as ZkError)).toEqual([undefined, undefined]);
  });

  it('still fails when another host made the name: its create carries its own token', async () => {
    const { dir, doc } = await directory();
    const ops = createOps(dir, 'lock', doc, here.issue());
    await createElsewhere(dir, 'lock'); // the other host won the name
    const again = await other.multi(ops).catch((e: unknown) => e);
    expect(isZkError(again, 'NODE_EXISTS')).toBe(true);
    expect(await verifyMulti(ops)(other, again as ZkError)).toBeUndefined();
  });
});

describe('a rename or removal whose reply was lost, sent again, after another host used the name', () => {
  const here = new WriteProofs();
  const there = new WriteProofs();

  /** A directory holding files `names` (data: their names), each with an entry in its document. */
  async function directory(names: string[]): Promise<string> {
    const dir = `/race/names${serial++}`;
    let meta = parseMeta(undefined);
    for (const name of names) meta = withEntry(meta, name, { t: 'f' });
    await other.create(dir, Buffer.alloc(0));
    await other.create(`${dir}/__zkfs__`, encodeMeta(meta));
    for (const name of names) await other.create(`${dir}/${name}`, Buffer.from(name));
    return dir;
  }

  /** The multi a mount sends to rename `from` over `to` in `dir`, with `proofs`' token when given. */
  async function renameOps(dir: string, from: string, to: string, proofs?: WriteProofs): Promise<ZkOp[]> {
    const doc = await other.getData(`${dir}/__zkfs__`);
    const source = await other.getData(`${dir}/${from}`);
    const target = await other.exists(`${dir}/${to}`);
    const meta = {
      path: `${dir}/__zkfs__`,
      version: doc.stat.version,
      meta: parseMeta(doc.data),
      acl: OPEN_ACL,
    };
    const token = proofs?.issue();
    return planRename({
      from: `${dir}/${from}`,
      to: `${dir}/${to}`,
      nodes: [
        {
          rel: '',
          data: source.data,
          version: source.stat.version,
          mtimeMs: 0,
          acl: OPEN_ACL,
          ephemeral: false,
        },
      ],
      replace: target ? { version: target.version } : undefined,
      fromMeta: meta,
      toMeta: meta,
      maxBytes: ZK_MAX_REQUEST_BYTES,
      proof:
        proofs && token
          ? { mark: (m) => proofs.withProof(m, token), shows: (now) => showsProof(now, token) }
          : undefined,
    }).ops;
  }

  it('a rename counts as done though another host renamed over its target since', async () => {
    const dir = await directory(['mine', 'theirs', 'n']);
    const ops = await renameOps(dir, 'mine', 'n', here);
    await other.multi(ops); // the send whose reply was lost
    await other.multi(await renameOps(dir, 'theirs', 'n', there));
    const again = await other.multi(ops).catch((e: unknown) => e);
    expect(isZkError(again, 'NO_NODE', 'BAD_VERSION')).toBe(true);
    expect(await verifyMulti(ops)(other, again as ZkError)).toBeDefined();
    // Without the token, nothing left in ZooKeeper could tell: `mv` failed with ENOENT.
    const dir2 = await directory(['mine', 'theirs', 'n']);
    const bare = await renameOps(dir2, 'mine', 'n');
    await other.multi(bare);
    await other.multi(await renameOps(dir2, 'theirs', 'n', there));
    const again2 = await other.multi(bare).catch((e: unknown) => e);
    expect(await verifyMulti(bare)(other, again2 as ZkError)).toBeUndefined();
  });

  it('a rename not done still fails: another host renamed over the target before it', async () => {
    const dir = await directory(['mine', 'theirs', 'n']);
    const ops = await renameOps(dir, 'mine', 'n', here);
    await other.multi(await renameOps(dir, 'theirs', 'n', there));
    const again = await other.multi(ops).catch((e: unknown) => e);
    expect(isZkError(again, 'BAD_VERSION', 'NO_NODE')).toBe(true);
    expect(await verifyMulti(ops)(other, again as ZkError)).toBeUndefined();
    expect((await other.getData(`${dir}/mine`)).data.toString()).toBe('mine');
  });

  it('a removal counts as done, and is not done again to the file another host made by that name since', async () => {
    const dir = await directory(['f']);
    const doc = await other.getData(`${dir}/__zkfs__`);
    const token = here.issue();
    const ops: ZkOp[] = [
      { op: 'delete', path: `${dir}/f`, version: -1 },
      {
        op: 'setData',
        path: `${dir}/__zkfs__`,
        data: encodeMeta(here.withProof(withEntry(parseMeta(doc.data), 'f', undefined), token)),
        version: doc.stat.version,
        proof: (now) => showsProof(now, token),
      },
    ];
    await other.multi(ops); // the send whose reply was lost
    // Another host makes f anew, with its entry.
    const now = await other.getData(`${dir}/__zkfs__`);
    await other.multi([
      { op: 'create', path: `${dir}/f`, data: Buffer.from('new'), acl: OPEN_ACL },
      {
        op: 'setData',
        path: `${dir}/__zkfs__`,
        data: encodeMeta(withEntry(parseMeta(now.data), 'f', { t: 'f' })),
        version: now.stat.version,
      },
    ]);
    const again = await other.multi(ops).catch((e: unknown) => e);
    expect(isZkError(again, 'BAD_VERSION')).toBe(true);
    // Found done: the mount does not remove the new f, which a second try at the version read would.
    expect(await verifyMulti(ops)(other, again as ZkError)).toBeDefined();
    expect((await other.getData(`${dir}/f`)).data.toString()).toBe('new');
  });
});
