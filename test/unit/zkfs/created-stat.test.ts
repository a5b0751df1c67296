import { describe, expect, it } from 'vitest';
import { withCreatedStats } from '../../../src/adapters/zkfs/cache-patches.js';
import type { ZkStat } from '../../../src/adapters/zookeeper.js';
import type { ZkOp } from '../../../src/core/zkfs/zk-ops.js';

/** What a setData in the same transaction left: zxid 0x2a at time 5000. */
const docStat: ZkStat = {
  czxid: 3n,
  mzxid: 42n,
  pzxid: 3n,
  ctimeMs: 1000,
  mtimeMs: 5000,
  version: 7,
  cversion: 2,
  aversion: 0,
  ephemeralOwner: 0n,
  dataLength: 300,
  numChildren: 0,
};
const create = { op: 'create', path: '/d/f', data: Buffer.from('hello'), acl: [] } as const;
const doc: ZkOp = { op: 'setData', path: '/d/__zkfs__', data: Buffer.from('{}'), version: 6 };

describe("a created node's stat, from its transaction", () => {
  it('has the transaction zxid and time as its own, and nothing else yet', () => {
    const stats = withCreatedStats([create, doc], [undefined, docStat]);
    expect(stats?.[1]).toBe(docStat);
    expect(stats?.[0]).toEqual({
      czxid: 42n,
      mzxid: 42n,
      pzxid: 42n,
      ctimeMs: 5000,
      mtimeMs: 5000,
      version: 0,
      cversion: 0,
      aversion: 0,
      ephemeralOwner: 0n,
      dataLength: 5,
      numChildren: 0,
    });
  });

  it('is unknown when no op of the transaction left a stat', () => {
    expect(withCreatedStats([create], [undefined])?.[0]).toBeUndefined();
    expect(withCreatedStats([create, doc], undefined)?.[0]).toBeUndefined();
  });

  it('is unknown when the transaction also made something below it', () => {
    const child: ZkOp = { op: 'create', path: '/d/f/g', data: Buffer.alloc(0), acl: [] };
    expect(withCreatedStats([create, child, doc], [undefined, undefined, docStat])?.[0]).toBeUndefined();
    // A sibling whose name starts alike is not below it.
    const sibling: ZkOp = { op: 'create', path: '/d/fg', data: Buffer.alloc(0), acl: [] };
    expect(withCreatedStats([create, sibling, doc], [undefined, undefined, docStat])?.[0]).toBeDefined();
  });
});
