/**
 * File contents through a real mount, driven by shell tools, in every mode
 * (dir mode writes a directory's `_zoo_data_`). Contents are compared byte
 * for byte with what ZooKeeper holds.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { itWhen } from '../fixtures/it-when.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import {
  dataPath,
  eventually,
  mountStatus,
  mountZkfs,
  sees,
  startBlockedWrite,
  startZkWithClient,
  waitUntilOpen,
  ZKFS_MODES,
  type ZkfsMount,
} from '../fixtures/zkfs-mount.js';

let zk: ZkServer;
let client: ZkClient;

beforeAll(async () => {
  ({ zk, client } = await startZkWithClient());
});

describe.skipIf(missing({ fuse: true })).each(ZKFS_MODES)('file contents in %s mode', (mode) => {
  let m: ZkfsMount;
  const root = `/files-${mode}`;
  const at = (name: string) => dataPath(mode, name);
  const prepare = async (name: string) => {
    if (mode === 'dir') await m.ok(`mkdir -p ${name}`);
  };
  const zkData = async (name: string) => (await client.getData(`${root}/${name}`)).data;

  beforeAll(async () => {
    m = await mountZkfs(zk.connectString, root, { mode });
  });

  it('writes with > and reads with cat, byte for byte', async () => {
    await prepare('greeting');
    await m.ok(`echo 'hello, world' > ${at('greeting')}`);
    expect((await m.read(at('greeting'))).toString()).toBe('hello, world\n');
    expect((await zkData('greeting')).toString()).toBe('hello, world\n');
  });

  it('keeps binary data with NUL bytes exactly, up to a megabyte', async () => {
    const src = join(scratchDir('zkfs-src'), 'blob');
    const bytes = Buffer.concat([Buffer.from([0, 0, 1, 255, 0, 10, 13, 0]), randomBytes(1_000_000)]);
    writeFileSync(src, bytes);
    await prepare('blob');
    await m.ok(`cp ${src} ${at('blob')} && cmp ${src} ${at('blob')}`);
    expect(await m.read(at('blob'))).toEqual(bytes);
    expect(await zkData('blob')).toEqual(bytes);
    expect(await m.ok(`stat -c %s ${at('blob')}`)).toBe(`${bytes.length}\n`);
  });

  it('writes at any offset with dd, appends with >>, truncates with truncate', async () => {
    await prepare('edit');
    const f = at('edit');
    await m.ok(`printf abcdef > ${f}`);
    await m.ok(`printf XY | dd of=${f} bs=1 seek=2 conv=notrunc status=none`);
    expect((await m.read(f)).toString()).toBe('abXYef');
    await m.ok(`printf Z | dd of=${f} bs=1 seek=10 conv=notrunc status=none`);
    expect(await m.read(f)).toEqual(Buffer.from('abXYef\0\0\0\0Z'));
    await m.ok(`echo one >> ${f}; echo two >> ${f}`);
    expect(await zkData('edit')).toEqual(Buffer.from('abXYef\0\0\0\0Zone\ntwo\n'));
    // A truncation without a write is published when the file is released,
    // which the kernel sends a moment after close() returns.
    const published = async (bytes: Buffer) =>
      eventually(
        async () => (await zkData('edit')).equals(bytes),
        `ZooKeeper holds ${JSON.stringify(bytes.toString())}`,
      );
    await m.ok(`truncate -s 3 ${f}`);
    expect((await m.read(f)).toString()).toBe('abX');
    await published(Buffer.from('abX'));
    await m.ok(`truncate -s 5 ${f}`);
    await published(Buffer.from('abX\0\0'));
    await m.ok(`: > ${f}`);
    await published(Buffer.alloc(0));
    expect(await m.ok(`wc -c < ${f}`)).toBe('0\n');
  });

  it('buffers an open file: a thousand one-byte writes reach ZooKeeper as one setData at close', async () => {
    await prepare('many');
    await m.ok(`printf start > ${at('many')}`);
    const before = (await client.exists(`${root}/many`))!.version;
    await m.ok(`head -c 1000 /dev/zero | tr '\\0' x | dd of=${at('many')} bs=1 status=none`);
    const after = await client.getData(`${root}/many`);
    expect(after.stat.version).toBe(before + 1);
    expect(after.data).toEqual(Buffer.alloc(1000, 'x'));
  });

  it('reports size and mtime from the znode stat', async () => {
    await prepare('stamp');
    await m.ok(`printf 12345 > ${at('stamp')}`);
    const stat = await client.exists(`${root}/stamp`);
    const out = (await m.ok(`stat -c '%s %Y' ${at('stamp')}`)).trim().split(' ');
    expect(Number(out[0])).toBe(5);
    expect(Number(out[1])).toBe(Math.floor(stat!.mtimeMs / 1000));
  });

  it('refuses a write that would overwrite a newer version with EIO, and logs why', async () => {
    await prepare('race');
    const f = at('race');
    await m.ok(`printf original > ${f}`);
    // dd opens the file (reading its version), then waits for its input.
    const dd = await startBlockedWrite(m, f, 4);
    await client.setData(`${root}/race`, Buffer.from('the other host'), -1);
    const r = await dd.finish('mine');
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('Input/output error');
    expect((await zkData('race')).toString()).toBe('the other host');
    expect(m.log()).toMatch(/write to \/race.* refused: another client changed it/);
  });

  it("refuses it too when a program here opened the file after the other host's change", async () => {
    await prepare('race-reopened');
    const f = at('race-reopened');
    await m.ok(`printf original > ${f}`);
    const dd = await startBlockedWrite(m, f, 4);
    await client.setData(`${root}/race-reopened`, Buffer.from('the other host'), -1);
    // That open read the new content into the buffer dd shares, and moved dd's check to its version.
    await sees(m, `cat ${f}`, 'the other host');
    const r = await dd.finish('mine');
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('Input/output error');
    expect((await zkData('race-reopened')).toString()).toBe('the other host');
    // The kernel's pages, which took dd's bytes as it wrote them, go with the refused write.
    await sees(m, `cat ${f}`, 'the other host');
  });

  it("truncates by path a file a program here holds open for reading, after another host's change", async () => {
    await prepare('held-truncate');
    const f = at('held-truncate');
    await m.ok(`printf original > ${f}`);
    const reader = execa('bash', ['-c', `exec 3<${f}; read -r _`], {
      cwd: m.dir,
      stdin: 'pipe',
      reject: false,
    });
    await waitUntilOpen(reader.pid!, join(m.dir, f));
    await client.setData(`${root}/held-truncate`, Buffer.from('the other host'), -1);
    await new Promise((resolve) => setTimeout(resolve, 300)); // heard of, not read
    // truncate(2) by path, not through a descriptor of its own as coreutils truncate does.
    const r = await m.sh(`python3 -c "import os; os.truncate('${f}', 3)"`);
    reader.stdin?.end('\n');
    await reader;
    expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect((await zkData('held-truncate')).toString()).toBe('the');
  });

  it("shows a reader opened after another host's append the line a writer opened before appends", async () => {
    await prepare('appended');
    const f = at('appended');
    await m.ok(`printf 'one\\n' > ${f}`);
    const writer = execa('bash', ['-c', `exec 3>>${f}; read -r _; echo three >&3`], {
      cwd: m.dir,
      stdin: 'pipe',
      reject: false,
    });
    await waitUntilOpen(writer.pid!, join(m.dir, f));
    await client.setData(`${root}/appended`, Buffer.from('one\ntwo\n'), -1);
    await sees(m, `cat ${f}`, 'one\ntwo\n');
    const reader = execa('bash', ['-c', `exec 4<${f}; read -r _; cat <&4`], {
      cwd: m.dir,
      stdin: 'pipe',
      reject: false,
    });
    await waitUntilOpen(reader.pid!, join(m.dir, f));
    writer.stdin?.end('\n');
    await writer;
    expect((await zkData('appended')).toString()).toBe('one\ntwo\nthree\n');
    reader.stdin?.end('\n');
    expect((await reader).stdout).toBe('one\ntwo\nthree');
  });

  itWhen(mode !== 'dir')('refuses regular files nowhere but dir mode', async () => {
    await m.ok('echo x > plain');
    expect((await zkData('plain')).toString()).toBe('x\n');
  });

  itWhen(mode === 'dir')('refuses a regular file that is not _zoo_data_ in dir mode', async () => {
    const r = await m.sh('echo x > plain');
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('Operation not supported');
    expect(await client.exists(`${root}/plain`)).toBeNull();
  });
});

describe.skipIf(missing({ fuse: true }))('file size limits', () => {
  it('refuses growth past --max-file-size with EFBIG and keeps the previous content whole', async () => {
    const m = await mountZkfs(zk.connectString, '/limit', { args: ['--max-file-size', '1000'] });
    await m.ok('head -c 1000 /dev/urandom > full');
    const before = (await client.getData('/limit/full')).data;
    expect(before.length).toBe(1000);
    const grow = await m.sh('echo more >> full');
    expect(grow.exitCode).not.toBe(0);
    expect(grow.stderr).toContain('File too large');
    const big = await m.sh('head -c 1500 /dev/zero | dd of=full bs=500 conv=notrunc status=none');
    expect(big.stderr).toContain('File too large');
    expect((await client.getData('/limit/full')).data).toEqual(before);
    const trunc = await m.sh('truncate -s 1001 full');
    expect(trunc.stderr).toContain('File too large');
    expect((await client.getData('/limit/full')).data).toEqual(before);
  });

  it("keeps a file writable by a program holding it open after another program's truncate past the limit", async () => {
    // The refused truncate changed nothing, yet marked the file every open here shares as too
    // large: the holder's line, and every later write while the file stayed open, failed at close.
    const m = await mountZkfs(zk.connectString, '/limit-held', { args: ['--max-file-size', '1000'] });
    const script = `
import os, subprocess
fd = os.open('log', os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
print(subprocess.run(['truncate', '-s', '1001', 'log'], capture_output=True).returncode)
os.write(fd, b'first\\n')
try:
    os.close(fd)
    print('closed')
except OSError as e:
    print('close:', e.strerror)
`;
    expect(await m.ok(`python3 -c "${script}"`)).toBe('1\nclosed\n');
    expect((await client.getData('/limit-held/log')).data.toString()).toBe('first\n');
  });

  it('refuses what one ZooKeeper request cannot carry at the default limit, without a partial file', async () => {
    const m = await mountZkfs(zk.connectString, '/serverlimit');
    const src = join(scratchDir('zkfs-src'), 'mib');
    writeFileSync(src, randomBytes(1024 * 1024));
    const r = await m.sh(`cp ${src} huge`);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('File too large');
    expect((await client.getData('/serverlimit/huge')).data.length).toBe(0);
    // The session survived (an oversized request would have cost the connection).
    await m.ok('printf ok > after');
    expect((await client.getData('/serverlimit/after')).data.toString()).toBe('ok');
  });
});

describe.skipIf(missing({ fuse: true }))('directory metadata limits', () => {
  it('refuses a new name its directory has no room for with ENOSPC, at once and keeping the session', async () => {
    // A metadata document near ZooKeeper's request limit, as some 50,000 names created through a
    // mount in one directory leave it: each entry is `"name":{"t":"f"}`.
    const names = Array.from({ length: 52_420 }, (_, i) => `e${String(i).padStart(6, '0')}`);
    await client.create('/fulldoc', Buffer.alloc(0));
    await fillDirectory('/fulldoc', names);
    await client.create('/fulldoc/__zkfs__', fullDoc(names));
    const m = await mountZkfs(zk.connectString, '/fulldoc');
    const name = 'n'.repeat(200);
    for (const script of [`touch ${name}`, `mkdir ${name}`]) {
      const r = await m.sh(script);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain('No space left on device');
    }
    expect(await client.exists(`/fulldoc/${name}`)).toBeNull();
    // Nothing oversized was sent: the server would have dropped the connection, again on every retry.
    expect((await mountStatus(m.dir)).session.reconnects).toBe(0);
    expect(m.log()).toContain('that document has no room left');
    // A name at the mount's root is logged as /name, not //name.
    expect(m.log()).toContain(`create /${name}: `);
    expect(m.log()).not.toContain(`//${name}`);
    await m.unmount();
  });
});

describe.skipIf(missing({ fuse: true }))(
  'what the deletions of a client that is not zkfs leave behind',
  () => {
    it('drops entries of names another client deleted when a name is added, so the document never outgrows its directory', async () => {
      // The same document, its names since deleted by a client that is not zkfs (it leaves the
      // document as it was): before, the empty directory refused every new name with ENOSPC.
      const names = Array.from({ length: 52_420 }, (_, i) => `e${String(i).padStart(6, '0')}`);
      await client.create('/gonedoc', Buffer.alloc(0));
      await client.create('/gonedoc/__zkfs__', fullDoc(names));
      const m = await mountZkfs(zk.connectString, '/gonedoc');
      const name = 'n'.repeat(200);
      await m.ok(`touch ${name} && mkdir d`);
      const doc = JSON.parse((await client.getData('/gonedoc/__zkfs__')).data.toString());
      expect(Object.keys(doc.e).sort()).toEqual(['d', name]);
      // The last create left its token there, proof that it went through should its reply be
      // lost; the one before it, answered, left with that write.
      expect(doc.cn).toEqual([expect.stringMatching(/^[0-9a-z]+-[0-9a-z]+$/)]);
      expect(m.log()).toContain('/: dropping 52420 metadata entries of names another client deleted');
      expect((await mountStatus(m.dir)).session.reconnects).toBe(0);
      await m.unmount();
    });

    it('keeps the entries of names still there, symbolic links among them, while dropping the gone ones', async () => {
      const m = await mountNew('/somegone');
      await m.ok(
        'mkdir -p sub && cd sub && touch kept gone1 gone2 && chmod 600 kept && ln -s kept link && touch -h -d @1000000000 link',
      );
      await client.remove('/somegone/sub/gone1', -1);
      await client.remove('/somegone/sub/gone2', -1);
      const entries = async () =>
        JSON.parse((await client.getData('/somegone/sub/__zkfs__')).data.toString()).e as Record<
          string,
          unknown
        >;
      // Another client's deletion alone leaves the document as it was.
      expect(Object.keys(await entries()).sort()).toEqual(['gone1', 'gone2', 'kept', 'link']);
      await m.ok('touch sub/new');
      const after = await entries();
      expect(Object.keys(after).sort()).toEqual(['kept', 'link', 'new']);
      expect(after.kept).toMatchObject({ t: 'f', m: 0o600 });
      expect(after.link).toMatchObject({ mt: 1_000_000_000_000 });
      expect((await m.ok('stat -c %a sub/kept')).trim()).toBe('600');
      expect((await m.ok('stat -c %Y sub/link')).trim()).toBe('1000000000');
      expect(m.log()).toContain('/sub: dropping 2 metadata entries of names another client deleted');
      await m.unmount();
    });

    it('shows no link of a directory another client deleted in one made again by its name', async () => {
      const m = await mountNew('/linksgone');
      const made =
        'mkdir -p live/site && ln -s ../../archive/cert1.pem live/site/cert.pem && ln -s x live/top';
      await m.ok(`${made} && ln -s y keep && mkdir moved`);
      const table = async () =>
        (await client.getData('/linksgone/__symlinks__')).data.toString().split('\n').sort();
      // zkCli's deleteall: the nodes go, the link table stays as it was.
      await deleteTree('/linksgone/live');
      expect(await table()).toEqual([
        '/keep=y',
        '/live/site/cert.pem=../../archive/cert1.pem',
        '/live/top=x',
      ]);
      await m.ok('mkdir live');
      expect(await m.ok('ls -A live')).toBe('');
      expect(await table()).toEqual(['/keep=y']);
      // Before, certbot making its link again failed with EEXIST.
      await m.ok('mkdir live/site && ln -s ../../archive/cert2.pem live/site/cert.pem');
      expect((await m.ok('readlink live/site/cert.pem')).trim()).toBe('../../archive/cert2.pem');
      expect(m.log()).toContain(
        '/live: dropping 2 symbolic links left below it by a directory another client deleted',
      );
      // The same when a directory is renamed to the name.
      await deleteTree('/linksgone/live');
      await m.ok('mv moved live');
      expect(await m.ok('ls -A live')).toBe('');
      expect(await table()).toEqual(['/keep=y']);
      await m.unmount();
    });

    it('drops the links of directories another client deleted the next time the link table is written', async () => {
      const m = await mountNew('/linkdirgone');
      await m.ok(
        'mkdir -p old/deep keep && ln -s a old/l1 && ln -s b old/deep/l2 && ln -s c keep/l3 && ln -s d top',
      );
      const table = async () =>
        (await client.getData('/linkdirgone/__symlinks__')).data.toString().split('\n').sort();
      await deleteTree('/linkdirgone/old');
      expect(await table()).toEqual(['/keep/l3=c', '/old/deep/l2=b', '/old/l1=a', '/top=d']);
      await m.ok('ln -s e keep/l4');
      expect(await table()).toEqual(['/keep/l3=c', '/keep/l4=e', '/top=d']);
      expect(m.log()).toContain(
        'dropping 2 symbolic links of 2 directories another client deleted (/old, /old/deep)',
      );
      expect((await m.ok('readlink keep/l3 keep/l4 top')).split('\n').filter(Boolean)).toEqual([
        'c',
        'e',
        'd',
      ]);
      await m.unmount();
    });
  },
);

/** A mount of `root`, a new empty node. */
async function mountNew(root: string): Promise<ZkfsMount> {
  await client.create(root, Buffer.alloc(0));
  return mountZkfs(zk.connectString, root);
}

/** Deletes `path` and everything below it, as zkCli's deleteall does. */
async function deleteTree(path: string): Promise<void> {
  const { children } = await client.getChildren(path);
  for (const child of children) await deleteTree(`${path}/${child}`);
  await client.remove(path, -1);
}

/** Creates `names` under `dir` with no data, a few thousand to a request. */
async function fillDirectory(dir: string, names: readonly string[]): Promise<void> {
  const batches: Promise<unknown>[] = [];
  for (let i = 0; i < names.length; i += 2000) {
    const ops = names
      .slice(i, i + 2000)
      .map((name) => ({ op: 'create' as const, path: `${dir}/${name}`, data: Buffer.alloc(0), acl: [] }));
    batches.push(client.multi(ops));
  }
  await Promise.all(batches);
}

/** A metadata document recording each of `names` as a file. */
function fullDoc(names: readonly string[]): Buffer {
  return Buffer.from(`{"zkfs":1,"e":{${names.map((name) => `"${name}":{"t":"f"}`).join(',')}}}`);
}

// dir mode has no regular files but _zoo_data_, which always exists.
describe.skipIf(missing({ fuse: true })).each(['hybrid', 'file'] as const)('new files in %s mode', (mode) => {
  it('shows a file just created with its mode, empty and stamped now, before anything is written', async () => {
    const root = `/fresh-${mode}`;
    const m = await mountZkfs(zk.connectString, root, { mode });
    const started = Math.floor(Date.now() / 1000);
    const out = await m.ok("umask 027; exec 3> fresh; stat -c '%a %s %Y %F' fresh; exec 3>&-");
    const [perms, size, mtime, ...type] = out.trim().split(' ');
    expect([perms, size, type.join(' ')]).toEqual(['640', '0', 'regular empty file']);
    expect(Math.abs(Number(mtime) - started)).toBeLessThanOrEqual(5);
    expect((await client.exists(`${root}/fresh`))?.dataLength).toBe(0);
  });
});
