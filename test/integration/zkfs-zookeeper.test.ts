/** The ZooKeeper adapter against a real server: typed stats, errors, multi with real version checks, auth, timeouts. */
import { createHash } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/adapters/logger.js';
import { coalesceWrites, lastZxidSeen } from '../../src/adapters/zkfs/zk-wire.js';
import { isZkError, ZkClient } from '../../src/adapters/zookeeper.js';
import { OperationError } from '../../src/core/errors.js';
import { freePort } from '../fixtures/ports.js';
import { silentPort } from '../fixtures/silent-port.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';

function digestId(user: string, password: string): string {
  return `${user}:${createHash('sha1').update(`${user}:${password}`).digest('base64')}`;
}

describe('ZooKeeper adapter', () => {
  let zk: ZkServer;
  let client: ZkClient;

  beforeAll(async () => {
    zk = await startZk();
    client = await ZkClient.connect({ connectString: zk.connectString });
  });
  afterAll(async () => {
    await client?.close();
  });

  /**
   * A TCP proxy on a free loopback port in front of the test server: `wire`
   * gets each client's socket and a way to open its connection upstream
   * (not calling it leaves the client unanswered). `close` ends it all.
   */
  async function proxy(
    wire: (client: Socket, upstream: () => Socket) => void,
  ): Promise<{ port: number; close(): void }> {
    const held: Socket[] = [];
    const server = createServer((socket) => {
      held.push(socket);
      wire(socket, () => {
        const upstream = connect(zk.clientPorts[0] as number, '127.0.0.1');
        held.push(upstream);
        socket.on('error', () => upstream.destroy());
        upstream.on('error', () => socket.destroy());
        return upstream;
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      port: (server.address() as { port: number }).port,
      close() {
        server.close();
        for (const socket of held) socket.destroy();
      },
    };
  }

  it('creates, reads, updates and removes a node with binary data and a full stat', async () => {
    const data = Buffer.from([0, 1, 2, 0, 255]);
    await client.create('/a', data);
    const read = await client.getData('/a');
    expect(read.data).toEqual(data);
    expect(read.stat).toMatchObject({ version: 0, dataLength: 5, numChildren: 0, ephemeralOwner: 0n });
    expect(read.stat.mtimeMs).toBeGreaterThan(Date.UTC(2020, 0, 1));
    expect(typeof read.stat.czxid).toBe('bigint');
    const stat = await client.setData('/a', Buffer.from('x'), 0);
    expect(stat.version).toBe(1);
    await expect(client.setData('/a', Buffer.from('y'), 0)).rejects.toSatisfy((e) =>
      isZkError(e, 'BAD_VERSION'),
    );
    expect(await client.exists('/missing')).toBeNull();
    await expect(client.getData('/missing')).rejects.toSatisfy((e) => isZkError(e, 'NO_NODE'));
    await client.remove('/a', 1);
    expect(await client.exists('/a')).toBeNull();
  });

  it('checks version 0 inside multi (the library alone would send -1) and names the failing op', async () => {
    await client.create('/m', Buffer.from('v0'));
    await client.setData('/m', Buffer.from('v1'), -1);
    const attempt = client.multi([
      { op: 'create', path: '/m2', data: Buffer.alloc(0), acl: [] },
      { op: 'setData', path: '/m', data: Buffer.from('lost'), version: 0 },
    ]);
    await expect(attempt).rejects.toSatisfy(
      (e) => isZkError(e, 'BAD_VERSION') && e.opIndex === 1 && e.path === '/m',
    );
    expect(await client.exists('/m2')).toBeNull();
    expect((await client.getData('/m')).data.toString()).toBe('v1');
    await client.multi([
      { op: 'check', path: '/m', version: 1 },
      { op: 'create', path: '/m2', data: Buffer.from('ok'), acl: [] },
      { op: 'delete', path: '/m', version: 1 },
    ]);
    expect(await client.exists('/m')).toBeNull();
    expect((await client.getData('/m2')).data.toString()).toBe('ok');
  });

  it('writes and reads below the chroot of a connection string that has one, like any other request', async () => {
    await client.create('/jail', Buffer.alloc(0));
    const jailed = await ZkClient.connect({ connectString: `${zk.connectString}/jail` });
    try {
      await jailed.create('/n', Buffer.from('v0'));
      expect((await jailed.setData('/n', Buffer.from('v1'), 0)).version).toBe(1);
      await jailed.multi([
        { op: 'create', path: '/o', data: Buffer.from('o'), acl: [] },
        { op: 'setData', path: '/n', data: Buffer.from('v2'), version: 1 },
      ]);
      const [n, o] = await jailed.getDataMany(['/n', '/o']);
      expect([n, o].map((r) => (r instanceof Error ? r : r?.data.toString()))).toEqual(['v2', 'o']);
      expect((await client.getData('/jail/n')).data.toString()).toBe('v2');
      expect((await client.getData('/jail/o')).data.toString()).toBe('o');
      expect(await client.exists('/n')).toBeNull();
    } finally {
      await jailed.close();
    }
  });

  it('lists children and delivers watches', async () => {
    await client.create('/w', Buffer.alloc(0));
    const event = new Promise((resolve) => void client.getChildren('/w', resolve));
    await client.create('/w/c', Buffer.alloc(0));
    expect(await event).toEqual({ type: 'childrenChanged', path: '/w' });
    expect((await client.getChildren('/w')).children).toEqual(['c']);
  });

  it('sends digest credentials so ACL-protected nodes open, and reports NO_AUTH without them', async () => {
    const acl = [{ perms: 31, scheme: 'digest', id: digestId('alice', 's3cret') }];
    const alice = await ZkClient.connect({
      connectString: zk.connectString,
      auth: { user: 'alice', password: 's3cret' },
    });
    try {
      await alice.create('/secret', Buffer.from('hidden'), { acl });
      expect((await alice.getData('/secret')).data.toString()).toBe('hidden');
      expect((await alice.getAcl('/secret')).acl).toEqual(acl);
    } finally {
      await alice.close();
    }
    await expect(client.getData('/secret')).rejects.toSatisfy((e) => isZkError(e, 'NO_AUTH'));
  });

  it('gives up connecting to a server that is not there within the bound', async () => {
    const port = await freePort();
    const started = Date.now();
    await expect(
      ZkClient.connect({ connectString: `127.0.0.1:${port}`, connectTimeoutMs: 1500 }),
    ).rejects.toThrow(OperationError);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('leaves a server that takes the first connection but never answers it, and connects on the next try', async () => {
    // ZooKeeper 3.8 does this to connections that arrive while it loads its database.
    // The first connection to this port is held open and silent; later ones reach the real server.
    let first = true;
    const silentFirst = await proxy((socket, upstream) => {
      if (first) {
        first = false;
        return;
      }
      const server = upstream();
      socket.pipe(server).pipe(socket);
    });
    const lines: string[] = [];
    const started = Date.now();
    const late = await ZkClient.connect({
      connectString: `127.0.0.1:${silentFirst.port}`,
      sessionTimeoutMs: 4000,
      connectTimeoutMs: 20_000,
      logger: createLogger({ level: 'warn', write: (l) => lines.push(l) }),
    });
    try {
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(lines.join('\n')).toMatch(/took the connection but did not answer within 1333 ms; trying again/);
      expect(await late.exists('/')).not.toBeNull();
    } finally {
      await late.close();
      silentFirst.close();
    }
  });

  it('moves past a server that never accepts the connection to the next one in time', async () => {
    // The mount's defaults: a 30 s session and 10 s to connect. The library gives each server a
    // share of the session timeout (15 s of 30 s for two), more than the whole connect may take.
    const silent = await silentPort();
    const lines: string[] = [];
    // Shuffled with Math.random always 0, the servers keep their order: the silent one is tried first.
    const random = vi.spyOn(Math, 'random').mockReturnValue(0);
    const started = Date.now();
    try {
      const reached = await ZkClient.connect({
        connectString: `127.0.0.1:${silent.port},${zk.connectString}`,
        sessionTimeoutMs: 30_000,
        connectTimeoutMs: 10_000,
        logger: createLogger({ level: 'warn', write: (l) => lines.push(l) }),
      });
      random.mockRestore();
      try {
        expect(lines.join('\n')).toContain(
          `127.0.0.1:${silent.port} did not take the connection within 5000 ms; trying the next server`,
        );
        expect(Date.now() - started).toBeLessThan(9000);
        expect(await reached.exists('/')).not.toBeNull();
      } finally {
        await reached.close();
      }
    } finally {
      random.mockRestore();
      silent.close();
    }
  }, 20_000);

  it('reads many nodes with one request: data and stat of each, missing and unreadable ones as their errors', async () => {
    const reader = await ZkClient.connect({ connectString: zk.connectString });
    const owner = await ZkClient.connect({ connectString: zk.connectString });
    try {
      expect(reader.readsMany).toBe(true);
      await client.create('/many', Buffer.alloc(0));
      const big = Buffer.alloc(200 * 1024, 3); // a reply split over many socket reads
      const values = Array.from({ length: 50 }, (_, i) => (i === 7 ? big : Buffer.from(`node ${i}`)));
      await Promise.all(values.map((v, i) => client.create(`/many/n${i}`, v)));
      await client.create('/many/empty', Buffer.alloc(0));
      await client.setData('/many/n3', Buffer.from('node 3, again'), 0);
      owner.library.addAuthInfo('digest', Buffer.from('bob:pw'));
      await owner.create('/many/private', Buffer.from('no'), {
        acl: [{ perms: 31, scheme: 'digest', id: digestId('bob', 'pw') }],
      });
      const paths = [...values.map((_, i) => `/many/n${i}`), '/many/gone', '/many/empty', '/many/private'];
      const received = async () => Number(/Received: (\d+)/.exec(await zk.srvr(0))?.[1]);
      const before = await received();
      // Plain requests queued around it are answered in order around it.
      const [first, many, last] = await Promise.all([
        reader.getData('/many/n0'),
        reader.getDataMany(paths),
        reader.getData('/many/n1'),
      ]);
      // Three requests from this test, and srvr's own connection counts none.
      expect((await received()) - before).toBeLessThanOrEqual(4);
      expect(first.data.toString()).toBe('node 0');
      expect(last.data.toString()).toBe('node 1');
      expect(many).toHaveLength(paths.length);
      for (let i = 0; i < values.length; i++) {
        const node = many[i] as { data: Buffer; stat: { version: number } };
        const expected = i === 3 ? Buffer.from('node 3, again') : values[i];
        expect(node.data.equals(expected as Buffer)).toBe(true);
        expect(node.stat).toEqual((await reader.exists(paths[i] as string)) ?? undefined);
      }
      expect((many[3] as { stat: { version: number } }).stat.version).toBe(1);
      expect(many[50]).toSatisfy((e) => isZkError(e, 'NO_NODE'));
      expect((many[51] as { data: Buffer }).data).toEqual(Buffer.alloc(0));
      expect(many[52]).toSatisfy((e) => isZkError(e, 'NO_AUTH'));
      // The connection goes on as before.
      expect((await reader.getData('/many/n2')).data.toString()).toBe('node 2');
    } finally {
      await reader.close();
      await owner.close();
    }
  });

  it('knows the last transaction its connection saw, reads of many nodes at once included', async () => {
    const reader = await ZkClient.connect({ connectString: zk.connectString });
    try {
      await client.create('/seen', Buffer.alloc(0));
      await client.create('/seen/a', Buffer.from('a'));
      const a = await client.exists('/seen/a');
      // Another client's write, and the reader's only request: a read of many nodes at once.
      await client.setData('/seen/a', Buffer.from('b'), 0);
      expect(lastZxidSeen(reader.library)).toBeUndefined();
      const [read] = await reader.getDataMany(['/seen/a']);
      const stat = (read as { stat: { czxid: bigint; mzxid: bigint } }).stat;
      expect(stat.czxid).toBe(a?.czxid);
      expect(lastZxidSeen(reader.library)).toBeGreaterThanOrEqual(stat.mzxid);
      // A node created after that is newer than anything the reader has seen.
      await client.create('/seen/b', Buffer.alloc(0));
      const b = await client.exists('/seen/b');
      expect(b?.czxid).toBeGreaterThan(lastZxidSeen(reader.library) as bigint);
    } finally {
      await reader.close();
    }
  });

  it('reads one by one, and says so, when the server refuses to read many nodes at once (before 3.6)', async () => {
    // A proxy that answers multiRead requests the way an older server does: UNIMPLEMENTED.
    const older = await proxy((socket, upstream) => {
      const server = upstream();
      let pending = Buffer.alloc(0);
      let handshake = true;
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 4 && pending.length >= pending.readInt32BE(0) + 4) {
          const frame = pending.subarray(0, pending.readInt32BE(0) + 4);
          pending = pending.subarray(frame.length);
          if (!handshake && frame.readInt32BE(8) === 22) {
            const reply = Buffer.alloc(20);
            reply.writeInt32BE(16, 0);
            reply.writeInt32BE(frame.readInt32BE(4), 4); // its xid
            reply.writeInt32BE(-6, 16); // UNIMPLEMENTED
            socket.write(reply);
          } else {
            server.write(frame);
          }
          handshake = false;
        }
      });
      server.pipe(socket);
    });
    const lines: string[] = [];
    const old = await ZkClient.connect({
      connectString: `127.0.0.1:${older.port}`,
      logger: createLogger({ level: 'warn', write: (l) => lines.push(l) }),
    });
    try {
      await client.create('/older', Buffer.from('a'));
      expect(old.readsMany).toBe(true);
      const reads = await old.getDataMany(['/older', '/older-gone']);
      expect((reads[0] as { data: Buffer }).data.toString()).toBe('a');
      expect(reads[1]).toSatisfy((e) => isZkError(e, 'NO_NODE'));
      expect(old.readsMany).toBe(false);
      expect(lines.join('\n')).toMatch(/cannot read many nodes at once .*UNIMPLEMENTED.*reading one by one/);
      expect(((await old.getDataMany(['/older']))[0] as { data: Buffer }).data.toString()).toBe('a');
    } finally {
      await old.close();
      older.close();
    }
  });

  it('sends the requests of one event-loop turn in one write, large ones included, each answered in order (replies too)', async () => {
    const batch = await ZkClient.connect({ connectString: zk.connectString });
    try {
      coalesceWrites(batch.library);
      await batch.create('/batch', Buffer.alloc(0));
      const big = Buffer.alloc(300 * 1024, 7); // past the socket's 16 KiB buffer: written after a drain
      const order: number[] = [];
      const small = Array.from({ length: 200 }, (_, i) =>
        batch.create(`/batch/n${i}`, Buffer.from(`value ${i}`)).then(() => order.push(i)),
      );
      const socket = (
        batch.library as unknown as { connectionManager: { socket: { writableCorked: number } } }
      ).connectionManager.socket;
      expect(socket.writableCorked).toBe(1);
      const large = batch.create('/batch/big', big).then(() => order.push(200));
      const reads = Array.from({ length: 200 }, (_, i) => batch.getData(`/batch/n${i}`));
      await Promise.all([...small, large]);
      expect(order).toEqual(Array.from({ length: 201 }, (_, i) => i));
      expect((await Promise.all(reads)).map((r) => r.data.toString())).toEqual(
        Array.from({ length: 200 }, (_, i) => `value ${i}`),
      );
      expect((await batch.getData('/batch/big')).data).toEqual(big);
      // Large replies split over many reads, between small ones that share a read.
      const mixed = await Promise.all(
        Array.from({ length: 20 }, (_, i) => batch.getData(i % 2 ? '/batch/big' : `/batch/n${i}`)),
      );
      mixed.forEach((r, i) => {
        expect(r.data.equals(i % 2 ? big : Buffer.from(`value ${i}`))).toBe(true);
      });
      expect(socket.writableCorked).toBe(0);
    } finally {
      await batch.close();
    }
  });
});
