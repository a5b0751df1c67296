/**
 * The "t":"f" marks in directories' metadata documents (core/zkfs/file-marks.ts),
 * through real mounts: a directory filled through the mount keeps a small
 * document, and a file stays a file on every host however it is emptied,
 * even while another host drops its mark, or gives it data and drops its
 * mark while this one looks it up.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing } from '../fixtures/environment.js';
import { OP_GET_DATA, OP_MULTI, startZkProxy, type ZkProxy } from '../fixtures/zk-proxy.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import { eventually, mountZkfs, startZkWithClient, type ZkfsMount } from '../fixtures/zkfs-mount.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let zk: ZkServer;
let client: ZkClient;

beforeAll(async () => {
  ({ zk, client } = await startZkWithClient());
});

async function entries(dir: string): Promise<Record<string, Record<string, unknown>>> {
  return JSON.parse((await client.getData(`${dir}/__zkfs__`)).data.toString()).e;
}

async function mountNew(root: string): Promise<ZkfsMount> {
  await client.create(root, Buffer.alloc(0));
  return mountZkfs(zk.connectString, root);
}

/** A new tree `root` mounted twice: through a proxy that can hold this host's requests (a), and directly (b). */
async function twoHosts(root: string): Promise<{ proxy: ZkProxy; a: ZkfsMount; b: ZkfsMount }> {
  const proxy = await startZkProxy(zk.clientPorts[0] as number);
  await client.create(root, Buffer.alloc(0));
  return {
    proxy,
    a: await mountZkfs(proxy.connectString, root),
    b: await mountZkfs(zk.connectString, root),
  };
}

/** `stat -c '%n %F %s'` of `names` on a mount that has read nothing yet (another host). */
async function freshStat(root: string, names: string): Promise<string[]> {
  const other = await mountZkfs(zk.connectString, root);
  const out = await other.ok(`stat -c '%n %F %s' ${names}`);
  await other.unmount();
  return out.trim().split('\n');
}

describe.skipIf(missing({ fuse: true }))('file type marks', () => {
  it('keeps the document of a directory filled through the mount to the files still empty', async () => {
    const m = await mountNew('/marks-fill');
    await m.ok('mkdir src d && for i in $(seq 1 300); do echo "line $i" > src/f$i; done && cp -r src/. d/');
    // Before, each of the 300 creates rewrote every earlier file's mark: the last document
    // held 300 entries, and all of them together came to some 700 KiB sent to ZooKeeper.
    for (const dir of ['src', 'd']) {
      const doc = await client.getData(`/marks-fill/${dir}/__zkfs__`);
      expect(doc.data.length).toBeLessThan(200);
      expect(Object.keys(await entries(`/marks-fill/${dir}`)).length).toBeLessThanOrEqual(2);
    }
    // Every file is still a regular file with its content, here and on another host.
    expect((await m.ok('find d -type f | wc -l')).trim()).toBe('300');
    const other = await mountZkfs(zk.connectString, '/marks-fill');
    expect((await other.ok('find d -type f | wc -l; cat d/f150')).trim()).toBe('300\nline 150');
    await other.unmount();
    await m.unmount();
  });

  it('marks a file again however it is emptied, so it stays a file on every host', async () => {
    const m = await mountNew('/marks-empty');
    await m.ok('for f in a b c e keep; do printf data > $f; done && touch z && chmod 600 keep');
    // z's create dropped the marks of the files holding data; keep's mode keeps its entry.
    expect(Object.keys(await entries('/marks-empty')).sort()).toEqual(['keep', 'z']);
    await m.ok(
      [
        ': > a', // opened with O_TRUNC and closed: written back empty
        'truncate -s 0 b', // truncate(2) of a file nobody has open
        'cp /dev/null c', // cp over an existing file
        // Emptied with times set before the close (as cp -a and tar do): the times go with it.
        `python3 -c "import os; fd = os.open('e', os.O_WRONLY | os.O_TRUNC); os.utime(fd, (1e9, 1e9)); os.close(fd)"`,
        ': > keep',
      ].join(' && '),
    );
    const expected = ['a', 'b', 'c', 'e', 'keep', 'z'].map((name) => `${name} regular empty file 0`);
    expect(await freshStat('/marks-empty', 'a b c e keep z')).toEqual(expected);
    expect((await m.ok("stat -c '%n %F %s' a b c e keep z")).trim().split('\n')).toEqual(expected);
    const after = await entries('/marks-empty');
    for (const name of ['a', 'b', 'c', 'e', 'keep']) expect(after[name]).toMatchObject({ t: 'f' });
    expect(after.keep).toMatchObject({ m: 0o600 });
    expect(after.e).toMatchObject({ mt: 1e12 });
    await m.unmount();
  });

  it('keeps the mark of a file another host empties while this one would drop it', async () => {
    const a = await mountNew('/marks-race');
    const b = await mountZkfs(zk.connectString, '/marks-race');
    const n = 20;
    await a.ok(`for i in $(seq 1 ${n}); do printf data > f$i; done`);
    // b has read them (their data and the directory's document), marks and all.
    await b.ok(`cat f* > /dev/null`);
    // Each create on a may drop the marks of files b empties at the same moment.
    for (let i = 1; i <= n; i++) await Promise.all([b.ok(`: > f${i}`), a.ok(`touch g${i}`)]);
    const names = Array.from({ length: n }, (_, i) => `f${i + 1}`);
    const expected = names.map((name) => `${name} regular empty file 0`);
    expect(await freshStat('/marks-race', names.join(' '))).toEqual(expected);
    const doc = await entries('/marks-race');
    for (const name of names) expect(doc[name]).toMatchObject({ t: 'f' });
    await b.unmount();
    await a.unmount();
  });

  it('creates a file beside a dozen marked files it may not read, keeping their marks', async () => {
    // A check needs leave to read its node: each of these fails. One failing op is named per
    // attempt, so dropping the others' marks on the next one ran the create out of attempts.
    const alice = createHash('sha1').update('alice:pw').digest('base64');
    const secret = [{ perms: 31, scheme: 'digest', id: `alice:${alice}` }];
    const names = Array.from({ length: 12 }, (_, i) => `s${i}`);
    await client.create('/marks-acl', Buffer.alloc(0));
    for (const name of names)
      await client.create(`/marks-acl/${name}`, Buffer.from('secret'), { acl: secret });
    const marks = Object.fromEntries(names.map((name) => [name, { t: 'f' }]));
    await client.create('/marks-acl/__zkfs__', Buffer.from(JSON.stringify({ zkfs: 1, e: marks })));
    const m = await mountZkfs(zk.connectString, '/marks-acl');
    expect((await m.ok('ls | wc -l')).trim()).toBe('12');
    await m.ok('printf x > new');
    expect(await client.exists('/marks-acl/new')).not.toBeNull();
    const doc = await entries('/marks-acl');
    for (const name of names) expect(doc[name]).toEqual({ t: 'f' });
    await m.unmount();
  });

  it("empties a file at once where the directory's document is read-only to the mount", async () => {
    // The mark cannot be written there: the data go alone, as they did before marks were dropped
    // (before this, the document's refusal was retried as a lost race for half a minute, then EIO).
    await client.create('/marks-rodoc', Buffer.alloc(0));
    await client.create('/marks-rodoc/f', Buffer.from('data'));
    await client.create('/marks-rodoc/__zkfs__', Buffer.from('{"zkfs":1,"e":{}}'), {
      acl: [{ perms: 1, scheme: 'world', id: 'anyone' }],
    });
    const m = await mountZkfs(zk.connectString, '/marks-rodoc');
    await m.ok(': > f');
    // A truncation alone is written back at release, which close does not wait for.
    const emptied = async () => (await client.getData('/marks-rodoc/f')).data.length === 0;
    await eventually(emptied, 'f emptied in ZooKeeper', 5000);
    expect(m.log()).not.toContain('error');
    await m.unmount();
  });

  it('keeps the mark when the file was emptied after this host saw its data, before its create landed', async () => {
    // The create's transaction is held on its way while another host empties the file: the
    // mark's drop rests on data that is gone by the time it lands, and must fail with it.
    const { proxy, a, b } = await twoHosts('/marks-late');
    await a.ok('printf data > f');
    proxy.holdRequests(OP_MULTI);
    const touch = a.sh('touch g');
    await proxy.holding();
    await b.ok(': > f');
    await eventually(
      async () => (await client.getData('/marks-late/f')).data.length === 0,
      'f emptied',
      5000,
    );
    proxy.releaseRequests();
    expect((await touch).exitCode).toBe(0);
    expect(await freshStat('/marks-late', 'f g')).toEqual([
      'f regular empty file 0',
      'g regular empty file 0',
    ]);
    expect((await entries('/marks-late')).f).toEqual({ t: 'f' });
    await b.unmount();
    await a.unmount();
  });

  it('tells a file from a directory when it gets data and loses its mark while a lookup reads the document', async () => {
    // A lookup here had the file's stat (empty) and then read the directory's document, which
    // by then had lost the mark: the file had data, and another host's create dropped the mark.
    // The old stat and the new document made it an empty node with no type: a directory, and
    // `rm` of it failed with EISDIR (`npm run stress`, after a session expired).
    const { proxy, a, b } = await twoHosts('/marks-lookup');
    await b.ok('set -C && : > x');
    expect(await a.ok('stat -c %F x')).toBe('regular empty file\n');
    // The kernel lets go of x; memory here keeps its stat.
    writeFileSync('/proc/sys/vm/drop_caches', '2');
    const doc = await client.getData('/marks-lookup/__zkfs__');
    // Another host's change to the document: it is read again here, and that read waits.
    proxy.holdRequests(OP_GET_DATA);
    await client.setData('/marks-lookup/__zkfs__', doc.data, -1);
    await proxy.holding();
    const lookup = a.sh('stat -c %F x');
    await sleep(300); // the lookup waits for the document
    await client.setData('/marks-lookup/x', Buffer.from('data'), -1);
    const { e, ...rest } = JSON.parse(doc.data.toString());
    const { x: _mark, ...others } = e;
    await client.setData('/marks-lookup/__zkfs__', Buffer.from(JSON.stringify({ ...rest, e: others })), -1);
    await sleep(300); // their notices heard
    proxy.releaseRequests();
    expect((await lookup).stdout).toBe('regular file\n');
    expect(await a.ok('cat x; rm x; ls')).toBe('data');
    await b.unmount();
    await a.unmount();
  });
});
