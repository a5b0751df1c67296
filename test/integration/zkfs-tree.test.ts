/**
 * Directories, renames, symbolic links, attributes and extended attributes
 * through a real mount, with the messages tools print, in every mode.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing } from '../fixtures/environment.js';
import { itWhen } from '../fixtures/it-when.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import {
  dataPath,
  eventually,
  mountZkfs,
  startZkWithClient,
  ZKFS_MODES,
  type ZkfsMount,
} from '../fixtures/zkfs-mount.js';

let zk: ZkServer;
let client: ZkClient;

beforeAll(async () => {
  ({ zk, client } = await startZkWithClient());
});

describe.skipIf(missing({ fuse: true })).each(ZKFS_MODES)('directory tree in %s mode', (mode) => {
  let m: ZkfsMount;
  const root = `/tree-${mode}`;
  /** Shell that makes file `p` with content `c` (in dir mode: directory p with _zoo_data_). */
  const put = (p: string, c: string) =>
    `${mode === 'dir' ? `mkdir -p '${p}' && ` : ''}printf '${c}' > '${dataPath(mode, p)}'`;
  const cat = (p: string) => `cat '${dataPath(mode, p)}'`;
  const zkString = async (p: string) => (await client.getData(`${root}/${p}`)).data.toString();

  beforeAll(async () => {
    m = await mountZkfs(zk.connectString, root, { mode });
  });

  it('makes and lists nested directories, and removes them as tools expect', async () => {
    await m.ok(`mkdir -p a/b/c && ${put('a/b/c/leaf', 'L')}`);
    const found = await m.ok('find a | sort');
    if (mode === 'dir') {
      // Every directory lists its data pseudo-file in dir mode.
      expect(found).toBe(
        'a\na/_zoo_data_\na/b\na/b/_zoo_data_\na/b/c\na/b/c/_zoo_data_\na/b/c/leaf\na/b/c/leaf/_zoo_data_\n',
      );
    } else {
      expect(found).toBe('a\na/b\na/b/c\na/b/c/leaf\n');
    }
    const rmdir = await m.sh('rmdir a');
    expect(rmdir.stderr).toBe("rmdir: failed to remove 'a': Directory not empty\n");
    const mkdir = await m.sh('mkdir a');
    expect(mkdir.stderr).toBe("mkdir: cannot create directory 'a': File exists\n");
    const missingDir = await m.sh('rmdir nothing');
    expect(missingDir.stderr).toContain('No such file or directory');
    await m.ok('rm -r a');
    expect(await m.ok('ls -A')).not.toContain('a\n');
    expect(await client.exists(`${root}/a`)).toBeNull();
  });

  it('renames a whole tree with mv, keeping contents and modes', async () => {
    await m.ok(`mkdir -p t/u && ${put('t/u/f', 'payload')} && chmod 700 t/u`);
    await m.ok('mv t v');
    expect(await m.ok(cat('v/u/f'))).toBe('payload');
    expect(await m.ok('stat -c %a v/u')).toBe('700\n');
    expect(await client.exists(`${root}/t`)).toBeNull();
    expect(await zkString('v/u/f')).toBe('payload');
    await m.ok('mkdir -p w && mv v w/');
    expect(await m.ok(cat('w/v/u/f'))).toBe('payload');
  });

  it('renames atomically: a concurrent reader of the directory never sees both names or neither', async () => {
    await m.ok(`mkdir -p flip/x && ${put('flip/x/y', 'z')} && mv flip/x flip/a`);
    let flipping = true;
    const seen = new Set<string>();
    const reader = (async () => {
      while (flipping) {
        const { children } = await client.getChildren(`${root}/flip`);
        seen.add(children.filter((c) => c === 'a' || c === 'b').join('+'));
      }
    })();
    await m.ok('for i in $(seq 15); do mv flip/a flip/b && mv flip/b flip/a; done');
    flipping = false;
    await reader;
    expect([...seen].sort()).toEqual(['a', 'b']);
    expect(await m.ok(cat('flip/a/y'))).toBe('z');
  });

  itWhen(mode !== 'dir')('replaces an existing file on mv and keeps the moved mtime', async () => {
    await m.ok(`${put('newer', 'v2')} && ${put('older', 'v1')} && touch -d @1500000000 newer`);
    await m.ok('mv newer older');
    expect(await m.ok('cat older; stat -c %Y older')).toBe('v21500000000\n');
    expect(await m.ok('ls')).not.toMatch(/^newer$/m);
    const intoDir = await m.sh('mkdir -p dd && mv older dd');
    expect(intoDir.exitCode).toBe(0);
    expect(await m.ok('cat dd/older')).toBe('v2');
  });

  it('falls back to copying when a tree is too large for one transaction (EXDEV)', async () => {
    const files = [0, 1, 2].map((i) => put(`big/f${i}`, ''));
    await m.ok(`mkdir -p big && ${files.join(' && ')}`);
    for (let i = 0; i < 3; i++) {
      const target = mode === 'dir' ? `big/f${i}/_zoo_data_` : `big/f${i}`;
      await m.ok(`head -c 400000 /dev/zero | tr '\\0' '${i}' > ${target}`);
    }
    await m.ok('mv big big2');
    expect(await m.ok('ls big2 | sort')).toBe(mode === 'dir' ? '_zoo_data_\nf0\nf1\nf2\n' : 'f0\nf1\nf2\n');
    expect((await client.getData(`${root}/big2/f2`)).data).toEqual(Buffer.alloc(400000, '2'));
    expect(await client.exists(`${root}/big`)).toBeNull();
    expect(m.log()).toContain('EXDEV');
  });

  it('makes symbolic links in the old __symlinks__ format and moves them with their own targets', async () => {
    await m.ok(`mkdir -p s && ${put('s/target', 'through the link')}`);
    await m.ok('ln -s target s/link && ln -s s s2');
    expect(await m.ok('readlink s/link')).toBe('target\n');
    expect(await m.ok(mode === 'dir' ? 'cat s/link/_zoo_data_' : 'cat s/link')).toBe('through the link');
    expect(await m.ok('ls -l s/link')).toMatch(/^l.* s\/link -> target$/m);
    expect((await m.ok('ls s2/')).split('\n')).toContain('link');
    await m.ok('mv s/link s/moved');
    expect(await m.ok('readlink s/moved')).toBe('target\n');
    const table = await zkString('__symlinks__');
    expect(table.split('\n').sort()).toEqual(['/s/moved=target', '/s2=s']);
    await m.ok('mv s s3');
    expect(await m.ok('readlink s3/moved')).toBe('target\n');
    await m.ok('rm s3/moved s2');
    expect(await zkString('__symlinks__')).toBe('');
    expect(await m.ok('ls -A')).not.toContain('__symlinks__');
  });

  it('reads links written by the old tool, = in targets included, and escapes = in names', async () => {
    const table = `${root}/__symlinks__`;
    const { stat } = await client.getData(table);
    await client.setData(table, Buffer.from('/old=/etc/hostname\n/eq=a=b=c'), stat.version);
    // Another client's change: visible once this mount's cache (1 s) has expired.
    await eventually(
      async () => (await m.sh('readlink old eq')).stdout === '/etc/hostname\na=b=c\n',
      'links seen',
    );
    await m.ok("ln -s 'x=y' 'we=ird'");
    expect(await m.ok("readlink 'we=ird'")).toBe('x=y\n');
    expect((await zkString('__symlinks__')).split('\n')).toContain('/we%3Dird=x=y');
    await m.ok("rm old eq 'we=ird'");
  });

  it('persists chmod, chown and touch in ZooKeeper (visible after a remount)', async () => {
    await m.ok(
      `${put('attrs', 'x')} && chmod 640 attrs && chown 1234:5678 attrs && touch -d @1234567890 attrs`,
    );
    expect(await m.ok('stat -c "%a %u %g %Y" attrs')).toBe('640 1234 5678 1234567890\n');
    const again = await mountZkfs(zk.connectString, root, { mode });
    expect(await again.ok('stat -c "%a %u %g %Y" attrs')).toBe('640 1234 5678 1234567890\n');
    await again.unmount();
  });

  it('keeps times before 1970, as tar and cp -p set them, for files and directories', async () => {
    await m.ok(`${put('old', 'x')} && mkdir olddir && touch -d @-86400 old olddir`);
    expect(await m.ok('stat -c "%Y" old olddir')).toBe('-86400\n-86400\n');
    // The directory still lists, and its entries still answer.
    expect(await m.ok('ls -d old olddir')).toBe('old\nolddir\n');
    await m.ok('rm -r old olddir');
  });

  it('exposes the znode stat as read-only user.zk.* extended attributes', async () => {
    await m.ok(`${put('x', 'abc')} && ${put('x', 'abcd')}`);
    const stat = await client.exists(`${root}/x`);
    expect(await m.ok('getfattr --only-values -n user.zk.version x')).toBe(String(stat!.version));
    expect(await m.ok('getfattr --only-values -n user.zk.mzxid x')).toBe(`0x${stat!.mzxid.toString(16)}`);
    for (const name of [
      'cversion',
      'aversion',
      'czxid',
      'pzxid',
      'ctime',
      'mtime',
      'ephemeralOwner',
      'dataLength',
      'numChildren',
    ]) {
      expect(await m.ok(`getfattr --only-values -n user.zk.${name} x`)).not.toBe('');
    }
    // Read by name only: listed, they would travel with every copy made with cp -a or rsync -X.
    expect(await m.ok("getfattr -d -m '' x")).toBe('');
    const set = await m.sh('setfattr -n user.zk.version -v 9 x');
    expect(set.stderr).toContain('Operation not supported');
    expect(await m.ok('getfattr --only-values -n user.zk.version x')).toBe(String(stat!.version));
  });

  it('hides its bookkeeping nodes and refuses their names', async () => {
    const listing = await m.ok('ls -a');
    expect(listing).not.toContain('__zkfs__');
    expect(listing).not.toContain('__symlinks__');
    const r = await m.sh('mkdir __zkfs__');
    expect(r.stderr).toContain('Operation not permitted');
  });

  it('lists everything with ls -lR and find', async () => {
    await m.ok(`mkdir -p lr/sub && ${put('lr/sub/f', 'f')} && ln -s sub lr/l`);
    const ls = await m.ok('ls -lR lr');
    expect(ls).toMatch(/^lrwxrwxrwx .* l -> sub$/m);
    expect(ls).toMatch(/^drwxr-xr-x .* sub$/m);
    expect(await m.ok('find lr -type l')).toBe('lr/l\n');
  });
});
