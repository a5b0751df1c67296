/**
 * Who owns what other users make on an allow_other mount: the creator, on
 * every host (the owner is recorded in the directory's metadata document),
 * with the group rules of a local disk (setgid directories) and the
 * caller's umask. The other user is a real process (setpriv), as a login
 * of another user on the host would be.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing } from '../fixtures/environment.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import { mountZkfs, startZkWithClient, type ZkfsMount } from '../fixtures/zkfs-mount.js';

/** A bash script run as uid/gid 65534 (nobody/nogroup) with no supplementary groups. */
function asNobody(script: string): string {
  return `setpriv --reuid 65534 --regid 65534 --clear-groups bash -c '${script.replace(/'/g, "'\\''")}'`;
}

describe.skipIf(missing({ fuse: true }))('nodes made by another user on an allow_other mount', () => {
  let zk: ZkServer;
  let client: ZkClient;
  let m: ZkfsMount;
  const root = '/owners';

  const entryOf = async (dir: string, name: string) => {
    const doc = JSON.parse((await client.getData(`${root}${dir}/__zkfs__`)).data.toString()) as {
      e: Record<string, Record<string, unknown>>;
    };
    return doc.e[name];
  };

  beforeAll(async () => {
    ({ zk, client } = await startZkWithClient());
    m = await mountZkfs(zk.connectString, root, { args: ['-o', 'allow_other'] });
    await m.ok('mkdir tx && chmod 1777 tx');
  });

  it("are the creator's: it rewrites, touches and removes its own files, directories and links", async () => {
    const made = await m.sh(
      asNobody(
        'echo hi > tx/f && mkdir tx/d && ln -s f tx/l && stat -c "%u %g %F" tx/f tx/d tx/l && ' +
          'echo again > tx/f && cat tx/f && touch tx/f tx/d/inner && stat -c "%u %g" tx/d/inner',
      ),
    );
    expect(made.stderr).toBe('');
    expect(made.stdout).toBe(
      '65534 65534 regular file\n65534 65534 directory\n65534 65534 symbolic link\nagain\n65534 65534\n',
    );
    expect(await entryOf('/tx', 'f')).toMatchObject({ t: 'f', u: 65534, g: 65534 });
    expect(await entryOf('/tx', 'd')).toMatchObject({ t: 'd', u: 65534, g: 65534 });
    expect(await entryOf('/tx', 'l')).toEqual({ u: 65534, g: 65534 });
    // The old tool's link table is as it was: no owner in it.
    expect((await client.getData(`${root}/__symlinks__`)).data.toString()).toBe('/tx/l=f');

    // Another host reads the owners from ZooKeeper.
    const other = await mountZkfs(zk.connectString, root, { args: ['-o', 'allow_other'] });
    expect(await other.ok('stat -c "%u %g %n" tx/f tx/d tx/l tx/d/inner')).toBe(
      '65534 65534 tx/f\n65534 65534 tx/d\n65534 65534 tx/l\n65534 65534 tx/d/inner\n',
    );
    const removed = await other.sh(asNobody('echo third > tx/f && rm tx/f tx/l tx/d/inner && rmdir tx/d'));
    expect(removed.stderr).toBe('');
    expect(removed.exitCode).toBe(0);
    await other.unmount();
    expect(await m.ok('ls -A tx')).toBe('');
    expect(await client.exists(`${root}/tx/f`)).toBeNull();
  });

  it("still refuses another user's files, and keeps root's nodes as the old tool recorded them", async () => {
    await m.ok('echo root > tx/rootfile && mkdir tx/rootdir');
    expect(await entryOf('/tx', 'rootfile')).toEqual({ t: 'f' });
    expect(await entryOf('/tx', 'rootdir')).toEqual({ t: 'd' });
    const r = await m.sh(asNobody('echo no > tx/rootfile; rm -f tx/rootfile; touch tx/rootdir/x'));
    expect(r.stderr).toContain('Permission denied');
    expect(r.stderr).toContain('Operation not permitted');
    expect(await m.ok('cat tx/rootfile')).toBe('root\n');
    await m.ok('rm -r tx/rootfile tx/rootdir');
  });

  it("takes the caller's umask, and a setgid directory's group as ext4 does", async () => {
    await m.ok('mkdir sg && chown 0:4321 sg && chmod 2777 sg');
    const made = await m.sh(
      asNobody('umask 077 && echo x > sg/f && mkdir sg/d && stat -c "%a %u %g %n" sg/f sg/d && touch sg/d/g'),
    );
    expect(made.stderr).toBe('');
    expect(made.stdout).toBe('600 65534 4321 sg/f\n2700 65534 4321 sg/d\n');
    // Inside the new directory (setgid, group 4321) the rule goes on.
    expect(await m.ok('stat -c "%a %u %g" sg/d/g')).toBe('600 65534 4321\n');
    expect(await entryOf('/sg', 'f')).toEqual({ t: 'f', m: 0o600, u: 65534, g: 4321 });
    expect(await entryOf('/sg', 'd')).toEqual({ t: 'd', m: 0o2700, u: 65534, g: 4321 });
    await m.ok('rm -r sg');
  });

  it('shows a file as a directory in --mode dir with x wherever it may be read, so others can enter it', async () => {
    await m.ok(
      'mkdir view && echo open > view/pub && echo mine > view/priv && chmod 644 view/pub && chmod 600 view/priv',
    );
    const dirs = await mountZkfs(zk.connectString, `${root}/view`, {
      mode: 'dir',
      args: ['-o', 'allow_other'],
    });
    expect(await dirs.ok('stat -c "%A %n" pub priv')).toBe('drwxr-xr-x pub\ndrwx------ priv\n');
    const r = await dirs.sh(asNobody('cat pub/_zoo_data_ && ls priv'));
    expect(r.stdout).toBe('open\n');
    expect(r.stderr).toContain("cannot open directory 'priv': Permission denied");
    // The stored modes are as they were: the hybrid view still shows files.
    expect(await m.ok('stat -c "%A %n" view/pub view/priv')).toBe(
      '-rw-r--r-- view/pub\n-rw------- view/priv\n',
    );
    await dirs.unmount();
  });

  it('grants nothing through a setuid bit stored in ZooKeeper: the mount is nosuid and nodev, and takes -o noexec', async () => {
    // Whoever may write the tree (any client, under ZooKeeper's default ACL) can store a root-owned setuid file.
    expect(
      await m.ok('cp /usr/bin/id tx/id && chown 0:0 tx/id && chmod 4755 tx/id && stat -c %A tx/id'),
    ).toBe('-rwsr-xr-x\n');
    const run = await m.sh(asNobody('tx/id -u'));
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('65534\n');
    const flags = (dir: string) =>
      (
        readFileSync('/proc/self/mountinfo', 'utf8')
          .split('\n')
          .find((line) => line.split(' ')[4] === dir) ?? ''
      )
        .split(' ')[5]
        ?.split(',');
    expect(flags(m.dir)).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    const noexec = await mountZkfs(zk.connectString, root, { args: ['-o', 'allow_other,noexec'] });
    expect(flags(noexec.dir)).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
    const refused = await noexec.sh('tx/id -u');
    expect(refused.stderr).toContain('Permission denied');
    await noexec.unmount();
    await m.ok('rm tx/id');
  });
});
