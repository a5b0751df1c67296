/**
 * Two mounts of the same tree (two hosts, as far as ZooKeeper can tell):
 * each sees the other's changes, agrees on file types, and a write that
 * would overwrite the other's newer data is refused.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../fixtures/environment.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';
import { eventually, mountZkfs, type ZkfsMount } from '../fixtures/zkfs-mount.js';

let zk: ZkServer;

beforeAll(async () => {
  zk = await startZk();
});

/** Waits until `script` prints `expected` on mount `m` (the other mount's cache expires within seconds). */
async function sees(m: ZkfsMount, script: string, expected: string): Promise<void> {
  let last = '';
  await eventually(
    async () => {
      const r = await m.sh(script);
      last = r.stdout + r.stderr;
      return r.stdout === expected;
    },
    `${script} → ${JSON.stringify(expected)} (last: ${JSON.stringify(last)})`,
  );
}

describe.skipIf(missing({ fuse: true })).each(['hybrid', 'file', 'dir'] as const)(
  'two mounts in %s mode',
  (mode) => {
    let a: ZkfsMount;
    let b: ZkfsMount;
    const file = (name: string) => (mode === 'dir' ? `${name}/_zoo_data_` : name);
    const make = (name: string) => (mode === 'dir' ? `mkdir -p ${name} && ` : '');

    beforeAll(async () => {
      a = await mountZkfs(zk.connectString, `/shared-${mode}`, { mode });
      b = await mountZkfs(zk.connectString, `/shared-${mode}`, { mode });
    });
    afterAll(async () => {
      await a?.unmount();
      await b?.unmount();
    });

    it('sees new files, changed contents, renames and removals', async () => {
      await a.ok(`${make('f')}printf 'from a' > ${file('f')}`);
      await sees(b, `cat ${file('f')}`, 'from a');
      await b.ok(`printf ' and b' >> ${file('f')}`);
      await sees(a, `cat ${file('f')}`, 'from a and b');
      await a.ok('mkdir -p d/e && mv f d/e/g');
      await sees(b, `cat ${file('d/e/g')}; ls | grep -vx _zoo_data_`, 'from a and bd\n');
      await a.ok('rm -r d');
      await sees(b, 'ls | grep -vx _zoo_data_', '');
    });

    it('sees symbolic links and stored attributes', async () => {
      // In dir mode the attributes belong to the directory; _zoo_data_ has none of its own.
      await a.ok(
        `${make('t')}printf t > ${file('t')} && ln -s t link && chmod 640 t && touch -d @1600000000 t`,
      );
      await sees(b, 'readlink link', 't\n');
      await sees(b, "stat -c '%a %Y' t", '640 1600000000\n');
    });

    it('refuses a write based on a version the other mount has replaced', async () => {
      await a.ok(`${make('race')}printf base > ${file('race')}`);
      await sees(b, `cat ${file('race')}`, 'base');
      const dd = execa('dd', [`of=${file('race')}`, 'bs=5', 'count=1', 'conv=notrunc,fsync', 'status=none'], {
        cwd: b.dir,
        stdin: 'pipe',
        reject: false,
      });
      await eventually(async () => {
        const fds = await execa('ls', ['-l', `/proc/${dd.pid}/fd`], { reject: false });
        return String(fds.stdout).includes(join(b.dir, file('race')));
      }, 'dd has the file open on b');
      await a.ok(`printf 'a won' > ${file('race')}`);
      dd.stdin?.end('b too');
      const r = await dd;
      expect(String(r.stderr)).toContain('Input/output error');
      await sees(b, `cat ${file('race')}`, 'a won');
      expect(b.log()).toContain('another client changed it');
    });
  },
);

describe.skipIf(missing({ fuse: true }))('file types across hosts (hybrid)', () => {
  it('shows an empty file made on one mount as a file on the other, and an empty directory as a directory', async () => {
    const a = await mountZkfs(zk.connectString, '/types');
    await a.ok('touch empty && mkdir emptydir');
    const b = await mountZkfs(zk.connectString, '/types');
    expect(await b.ok('stat -c %F empty emptydir')).toBe('regular empty file\ndirectory\n');
    await b.ok('echo now > empty');
    await sees(a, 'cat empty', 'now\n');
  });
});
