/**
 * Whether a write whose reply was lost took effect after all. A write sent
 * again after a connection loss fails when the first one did go through
 * (BAD_VERSION, NODE_EXISTS, NO_NODE); these read the node back and answer
 * the original write's result when ZooKeeper holds exactly what it wrote,
 * or undefined when the failure is real (session.ts).
 */
import type { AclEntry, ZkOp } from '../../core/zkfs/zk-ops.js';
import { isZkError, type MultiStats, type ZkClient, type ZkError, type ZkStat } from '../zookeeper.js';

/**
 * A read back that found no node: the write is not there. Any other failure
 * goes on: lost to the connection, the read says nothing of the write.
 */
function missing(error: unknown): undefined {
  if (isZkError(error, 'NO_NODE')) return undefined;
  throw error;
}

/**
 * Whether ZooKeeper shows every effect of `ops`: the stats of the nodes it
 * wrote, read back (MultiStats, by op; undefined for the ops it did not
 * need to read), or undefined when it does not.
 */
async function multiApplied(client: ZkClient, ops: readonly ZkOp[]): Promise<MultiStats | undefined> {
  const proven = ops.find((op) => (op.op === 'create' || op.op === 'setData') && op.proof !== undefined);
  if (proven) return provenApplied(client, ops, proven);
  const last = new Map(ops.map((op, i) => [op.path, i]));
  const stats: (ZkStat | undefined)[] = ops.map(() => undefined);
  for (const [i, op] of ops.entries()) {
    if (op.op === 'check') continue;
    // A rename over a name deletes the old node and creates the new one: the last op on a path is its effect.
    if (last.get(op.path) !== i) continue;
    if (op.op === 'delete') {
      if (await client.exists(op.path)) return undefined;
      continue;
    }
    // A version below -1 (any) is one no node has: ZooKeeper refused it wherever it went.
    if (op.op === 'setData' && op.version < -1) return undefined;
    const now = await client.getData(op.path).catch(missing);
    if (!now) return undefined;
    if (!now.data.equals(op.data) && op.applied?.(now.data) !== true) return undefined;
    if (op.op === 'setData' && op.version >= 0 && now.stat.version <= op.version) return undefined;
    // Read after the write: only what this write set, with no later change, is its result.
    if (op.op === 'setData' && now.data.equals(op.data) && now.stat.version === op.version + 1)
      stats[i] = now.stat;
  }
  return stats;
}

/**
 * A multi that wrote its token into a document (write-proof.ts): applied
 * exactly when the document shows the token. Its other nodes are not looked
 * at: other hosts may have renamed over, removed or made them since. No
 * stats: what the multi wrote may have been rewritten since.
 */
async function provenApplied(
  client: ZkClient,
  ops: readonly ZkOp[],
  proven: ZkOp,
): Promise<MultiStats | undefined> {
  if (proven.op !== 'create' && proven.op !== 'setData') return undefined;
  const now = await client.getData(proven.path).catch(missing);
  return now && proven.proof?.(now.data) === true ? ops.map(() => undefined) : undefined;
}

export function verifyCreate(
  path: string,
  data: Buffer,
  options: { acl?: readonly AclEntry[]; ephemeral?: boolean },
) {
  return async (client: ZkClient, error: ZkError): Promise<string | undefined> => {
    if (error.zkName !== 'NODE_EXISTS' || options.ephemeral) return undefined;
    const now = await client.getData(path);
    return now.data.equals(data) ? path : undefined;
  };
}

export function verifySetData(path: string, data: Buffer, version: number) {
  return async (client: ZkClient, error: ZkError): Promise<ZkStat | undefined> => {
    // A version below -1 (any) is one no node has: the first send was refused too.
    if (error.zkName !== 'BAD_VERSION' || version < -1) return undefined;
    const now = await client.getData(path);
    return now.data.equals(data) && now.stat.version > version ? now.stat : undefined;
  };
}

export function verifyRemove() {
  return async (_client: ZkClient, error: ZkError): Promise<true | undefined> =>
    error.zkName === 'NO_NODE' ? true : undefined;
}

export function verifyMulti(ops: readonly ZkOp[]) {
  return async (client: ZkClient, error: ZkError): Promise<MultiStats | undefined> => {
    if (!isZkError(error, 'BAD_VERSION', 'NODE_EXISTS', 'NO_NODE')) return undefined;
    return multiApplied(client, ops);
  };
}
