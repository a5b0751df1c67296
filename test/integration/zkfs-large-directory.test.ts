/**
 * A directory of tens of thousands of names that other clients keep
 * changing (a queue, a registry of ephemeral nodes), once listed through
 * the mount: a burst of changes there must not stall the daemon. Each
 * change was patched into a copy of the whole cached list, a millisecond
 * or more apiece at this size, and a burst of thousands kept the daemon
 * from answering for seconds, long enough to lose its session.
 */
import { describe, expect, it } from 'vitest';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing } from '../fixtures/environment.js';
import { mountStatus, mountZkfs, startZkWithClient } from '../fixtures/zkfs-mount.js';

const LISTED = 50_000;
const BURST = 5_000;

/** Creates `dir/n<i>` for `count` values of i from `from`, 500 requests at a time. */
async function createMany(client: ZkClient, dir: string, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i += 500) {
    const batch: Promise<unknown>[] = [];
    for (let j = i; j < Math.min(from + count, i + 500); j++) {
      batch.push(client.create(`${dir}/n${String(j).padStart(7, '0')}`, Buffer.from('x')));
    }
    await Promise.all(batch);
  }
}

describe.skipIf(missing({ fuse: true }))('zkfs: a large directory other clients keep changing', () => {
  it(`keeps answering through a burst of ${BURST} creates in a listed directory of ${LISTED} names`, async () => {
    const { zk, client } = await startZkWithClient();
    await client.create('/big', Buffer.alloc(0));
    await createMany(client, '/big', 0, LISTED);
    const m = await mountZkfs(zk.connectString, '/');
    expect(await m.ok('ls big | wc -l')).toBe(`${LISTED}\n`);
    const before = await mountStatus(m.dir);

    await createMany(client, '/big', LISTED, BURST);
    // Every status request must be answered (zkfsctl gives the daemon 3 s) until the daemon has
    // heard of every change.
    let status = await mountStatus(m.dir);
    while (status.cache.notices < before.cache.notices + BURST) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      status = await mountStatus(m.dir);
    }
    expect(await m.ok('ls big | wc -l')).toBe(`${LISTED + BURST}\n`);
    status = await mountStatus(m.dir);
    expect(status.session.reconnects).toBe(before.session.reconnects);
    expect(status.session.expiries).toBe(before.session.expiries);
    await m.unmount();
  });
});
