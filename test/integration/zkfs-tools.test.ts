/**
 * Everyday tools on a real mount: cp -a, tar, rsync -a and git keep
 * contents, modes, owners and times; compared with the same tree on the
 * local disk. Regular files need hybrid or file mode.
 */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing, scratchDir } from '../fixtures/environment.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';
import { mountZkfs, type ZkfsMount } from '../fixtures/zkfs-mount.js';

let zk: ZkServer;
let src: string;

async function local(script: string): Promise<string> {
  const r = await execa('bash', ['-c', script], { env: { LC_ALL: 'C' }, stripFinalNewline: false });
  return String(r.stdout);
}

/** Name, type, mode, owner, size and mtime of every entry (symlinks: mode and size replaced by the target). */
function inventory(dir: string, withTimes = true): Promise<string> {
  const time = withTimes ? '-exec stat -c %Y {} \\;' : "-printf '\\n'";
  return local(
    `cd '${dir}' && find . -mindepth 1 \\( -type l -printf '%p link %l %U:%G ' ${time} \\) -o \\( -printf '%p %y %m %U:%G %s ' ${time} \\) | sort`,
  );
}

beforeAll(async () => {
  zk = await startZk();
  src = scratchDir('zkfs-src');
  await local(`
    cd '${src}'
    mkdir -p etc/conf.d bin empty-dir 'with space'
    printf 'key=value\\n' > etc/app.conf
    printf '' > etc/empty
    head -c 70000 /dev/urandom > bin/blob
    printf '#!/bin/sh\\necho hi\\n' > bin/run.sh
    printf 'x' > 'with space/file name'
    ln -s ../etc/app.conf bin/conf-link
    chmod 600 etc/app.conf; chmod 755 bin/run.sh; chmod 750 etc/conf.d; chmod 2775 bin
    chown 1000:1001 etc/app.conf bin/run.sh; chown 1002:1003 etc/conf.d
    find . -not -type l -exec touch -d '2021-03-04 05:06:07' {} +
    touch -d '2019-01-02 03:04:05' bin/blob
  `);
});

describe.skipIf(missing({ fuse: true })).each(['hybrid', 'file'] as const)('tools in %s mode', (mode) => {
  let m: ZkfsMount;
  const expected = () => inventory(src);

  beforeAll(async () => {
    m = await mountZkfs(zk.connectString, `/tools-${mode}`, { mode });
  });
  afterAll(async () => {
    await m?.unmount();
  });

  it('cp -a keeps contents, modes, owners and times', async () => {
    await m.ok(`cp -a '${src}' cpa`);
    expect(await inventory(`${m.dir}/cpa`)).toBe(await expected());
    await local(`diff -r '${src}' '${m.dir}/cpa'`);
  });

  it('rsync -a keeps them too, and a second run finds nothing to do', async () => {
    await m.ok(`rsync -a '${src}/' rs/`);
    expect(await inventory(`${m.dir}/rs`)).toBe(await expected());
    const again = await m.ok(`rsync -ai '${src}/' rs/`);
    expect(again).toBe('');
  });

  it('rsync -aX copies into the mount and back out without the znode stat attributes', async () => {
    // They were listed: rsync then tried to remove them from every file it wrote (ENOTSUP, exit 23).
    await m.ok(`rsync -aX '${src}/' rsx/`);
    expect(await inventory(`${m.dir}/rsx`)).toBe(await expected());
    const out = scratchDir('zkfs-rsync-out');
    await m.ok(`rsync -aX rsx/ '${out}/'`);
    expect(await local(`getfattr -R -d -m '' '${out}'`)).toBe('');
    expect(await inventory(out)).toBe(await expected());
  });

  it('rsync works in a directory right after a full subdirectory was removed from it', async () => {
    // rm -r's notices made the mount drop the working directory's own name from the kernel, and
    // getcwd() then failed there (rsync: "getcwd(): No such file or directory") until looked up.
    const out = await m.ok(
      `mkdir wd && cd wd && mkdir -p d1/d2 && echo x > d1/f && rm -r d1 && rsync -a '${src}/' rs/ && echo done`,
    );
    expect(out.trim()).toBe('done');
    expect(await inventory(`${m.dir}/wd/rs`)).toBe(await expected());
  });

  it('tar extracts into the mount keeping contents, modes, owners and mtimes, and archives out of it unchanged', async () => {
    await m.ok(`mkdir tarx && tar -C '${src}' -cf - . | tar -C tarx -xpf -`);
    await local(`diff -r '${src}' '${m.dir}/tarx'`);
    // GNU tar sets only the mtime (atime UTIME_OMIT): it must still arrive.
    expect(await inventory(`${m.dir}/tarx`)).toBe(await expected());
    const out = scratchDir('zkfs-tar-out');
    await local(`tar -C '${m.dir}/cpa' -cf - . | tar -C '${out}' -xpf -`);
    await local(`diff -r '${src}' '${out}'`);
    expect(await inventory(out)).toBe(await expected());
  });

  it('touch -m and touch -a change only the time they name', async () => {
    await m.ok('echo t > times && touch -d @1600000000 times');
    await m.ok('touch -m -d @1700000000 times');
    expect(await m.ok('stat -c %X,%Y times')).toBe('1600000000,1700000000\n');
    await m.ok('touch -a -d @1650000000 times');
    expect(await m.ok('stat -c %X,%Y times')).toBe('1650000000,1700000000\n');
  });

  it('git init, add, commit, log and fsck work inside the mount', async () => {
    const git = (args: string) =>
      m.ok(
        `cd repo && git -c user.name=T -c user.email=t@example.com -c init.defaultBranch=main -c core.fsmonitor=false ${args}`,
      );
    await m.ok('mkdir repo');
    await git('init -q');
    await m.ok(`cp -r '${src}/etc' '${src}/bin' repo/`);
    await git('add -A');
    await git('commit -q -m first');
    await m.ok('echo change >> repo/etc/app.conf');
    await git('commit -q -am second');
    expect(await git('log --format=%s')).toBe('second\nfirst\n');
    expect(await git('status --porcelain')).toBe('');
    await git('fsck --strict --no-progress');
    const clone = scratchDir('zkfs-clone');
    await local(`git clone -q '${m.dir}/repo' '${clone}/c' && cmp '${clone}/c/bin/blob' '${src}/bin/blob'`);
    expect(await local(`cat '${clone}/c/etc/app.conf'`)).toBe('key=value\nchange\n');
  });

  it('find and ls -lR see the whole copied tree', async () => {
    const names = await m.ok('cd cpa && find . | sort');
    expect(names).toBe(await local(`cd '${src}' && find . | sort`));
    const ls = await m.ok('ls -lnR cpa');
    expect(ls).toMatch(/^-rw------- 1 1000 1001 +10 .* app\.conf$/m);
    expect(ls).toMatch(/^lrwxrwxrwx .* conf-link -> \.\.\/etc\/app\.conf$/m);
  });
});
