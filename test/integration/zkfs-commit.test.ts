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
import { ZkClient } from '../../src/adapters/zookeeper.js';
import { isFsError } from '../../src/core/zkfs/errors.js';
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

/**
 * A directory whose metadata document another client rewrites after each
 * of our reads for the first `losses` attempts; resolves with the attempts
 * our write took and what the document holds at the end.
 */
async function contended(losses: number, budgetMs?: number): Promise<{ attempts: number; doc: string }> {
  const dir = `/race/d${serial++}`;
  await other.create(dir, Buffer.alloc(0));
  await other.create(`${dir}/__zkfs__`, Buffer.from('{"entries":{}}'));
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
