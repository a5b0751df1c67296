/**
 * The native FUSE reader (src/native/fuse-fast.c) on real mounts: re-opens
 * of unchanged files answered without JavaScript, and every way a file can
 * change ending that shortcut, so a program never reads stale data through it.
 */
import { closeSync, existsSync, fsyncSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MountStatus } from '../../src/adapters/zkfs/status-socket.js';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing, REPO_ROOT } from '../fixtures/environment.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import {
  eventually,
  mountStatus,
  mountZkfs,
  nativeOpens,
  readAll,
  sees,
  startZkWithClient,
  type ZkfsMount,
  zkfsctl,
} from '../fixtures/zkfs-mount.js';

type ReaderStatus = NonNullable<MountStatus['reader']>;

async function status(dir: string): Promise<MountStatus & { reader: ReaderStatus }> {
  const doc = await mountStatus(dir);
  if (!doc.reader) throw new Error(`zkfsctl status ${dir}: no reader`);
  return doc as MountStatus & { reader: ReaderStatus };
}

/**
 * Runs `script` (reading files) three times, which leaves their re-opens to
 * the native reader, and returns the native opens counted by then.
 */
async function warmed(m: ZkfsMount, script: string): Promise<number> {
  for (let pass = 0; pass < 3; pass++) await m.ok(script);
  return nativeOpens(m);
}

const MODULE = join(REPO_ROOT, 'dist/native/fuse_fast.node');

describe.skipIf(missing({ fuse: true }))('zkfs native FUSE reader', () => {
  let zk: ZkServer;
  let client: ZkClient;

  beforeAll(async () => {
    ({ zk, client } = await startZkWithClient());
  });

  it('is built by npm run build (bin/setup-host installs the compiler)', () => {
    expect(existsSync(MODULE), `${MODULE} (bin/build-native)`).toBe(true);
  });

  it('answers re-opens of unchanged files without JavaScript, and counts them with the rest', async () => {
    const m = await mountZkfs(zk.connectString, '/native/walk');
    await m.ok('mkdir d && for i in $(seq 1 40); do echo "file $i" > d/f$i; done');
    const expected = Array.from({ length: 40 }, (_, i) => `file ${i + 1}\n`).join('');
    const walk = 'for i in $(seq 1 40); do cat d/f$i; done';
    // The first pass opens each file in JavaScript, which then allows the next opens natively.
    for (let pass = 0; pass < 3; pass++) expect(await m.ok(walk)).toBe(expected);
    const s = await status(m.dir);
    expect(s.reader.kind).toBe('native');
    expect(s.reader.opens).toBeGreaterThanOrEqual(40);
    // Every open counts, whichever side answered it.
    expect(s.operations.byName?.open).toBeGreaterThanOrEqual(120);
    // Releases come without the program waiting for them; each native open gets its own.
    await eventually(
      async () => (await status(m.dir)).reader.releases === (await nativeOpens(m)),
      'a release for every native open',
    );
    expect((await zkfsctl(['status', m.dir])).stdout).toMatch(
      /reader\s+native: [\d,]+ opens? for reading, [\d,]+ releases? and [\d,]+ attribute quer(y|ies) answered without JavaScript/,
    );
    await m.unmount();
  });

  it('opens the files of a listing natively from the first open, and still shows a change made since', async () => {
    const m = await mountZkfs(zk.connectString, '/native/listed');
    await client.create('/native/listed/d', Buffer.alloc(0));
    for (let i = 1; i <= 30; i++) await client.create(`/native/listed/d/f${i}`, Buffer.from(`listed ${i}\n`));
    const before = await status(m.dir);
    // find lists d with attributes (READDIRPLUS); cat then opens each file for the first time.
    const out = await m.ok('find d -type f | sort -V | xargs cat');
    expect(out).toBe(Array.from({ length: 30 }, (_, i) => `listed ${i + 1}\n`).join(''));
    const after = await status(m.dir);
    expect(after.reader.opens - before.reader.opens).toBe(30);
    await client.setData('/native/listed/d/f7', Buffer.from('changed since\n'), -1);
    await sees(m, 'cat d/f7', 'changed since\n');
    await m.unmount();
  });

  it('answers queries for attributes zkfs never has without JavaScript, and the user.zk ones as before', async () => {
    const m = await mountZkfs(zk.connectString, '/native/xattr');
    await m.ok('mkdir d && for i in $(seq 1 20); do echo "file $i" > d/f$i; done');
    const before = await status(m.dir);
    // ls -l asks about SELinux labels and ACLs of every file it lists.
    expect((await m.ok('ls -l d | grep -c "^-"')).trim()).toBe('20');
    for (const name of ['security.selinux', 'user.other', 'trusted.zk.version']) {
      const r = await m.sh(`getfattr -n ${name} d/f1`);
      expect(r.exitCode, name).not.toBe(0);
      expect(r.stderr).toContain(`d/f1: ${name}: No such attribute`);
    }
    expect(await m.ok('getfattr --only-values -n user.zk.dataLength d/f1')).toBe('7');
    const after = await status(m.dir);
    const answered = after.reader.xattrs! - before.reader.xattrs!;
    expect(answered).toBeGreaterThanOrEqual(20 + 3);
    // Counted with the rest, whichever side answered; the user.zk one went to JavaScript.
    const counted = (after.operations.byName?.getxattr ?? 0) - (before.operations.byName?.getxattr ?? 0);
    expect(counted).toBeGreaterThan(answered);
    await m.unmount();
  });

  it('leaves a read-only mount to open files by itself: no OPEN at all, listed or not', async () => {
    await client.create('/native', Buffer.alloc(0)).catch(() => {}); // made already by an earlier test
    await client.create('/native/ro', Buffer.alloc(0));
    await client.create('/native/ro/d', Buffer.alloc(0));
    for (let i = 1; i <= 10; i++) await client.create(`/native/ro/d/f${i}`, Buffer.from(`ro ${i}\n`));
    const m = await mountZkfs(zk.connectString, '/native/ro', { args: ['--read-only'] });
    for (let pass = 0; pass < 3; pass++)
      expect(await m.ok('find d -type f | xargs cat | wc -l')).toBe('10\n');
    const s = await status(m.dir);
    expect(s.reader.opens).toBe(0);
    expect(s.operations.byName?.open ?? 0).toBe(0);
    await m.unmount();
  });

  it("shows another client's change and deletion at the next open", async () => {
    const m = await mountZkfs(zk.connectString, '/native/remote');
    await m.ok('echo one > a && echo two > b');
    const before = await warmed(m, 'cat a b');
    await m.ok('cat a b');
    expect(await nativeOpens(m)).toBe(before + 2);

    await client.setData('/native/remote/a', Buffer.from('changed\n'), -1);
    await sees(m, 'cat a', 'changed\n');
    await client.remove('/native/remote/b', -1);
    await sees(m, 'cat b 2>&1 || true', 'cat: b: No such file or directory\n');
    // Once JavaScript has answered the changed file, its re-opens are native again.
    for (let pass = 0; pass < 2; pass++) expect(await m.ok('cat a')).toBe('changed\n');
    const again = await nativeOpens(m);
    expect(await m.ok('cat a')).toBe('changed\n');
    expect(await nativeOpens(m)).toBe(again + 1);
    await m.unmount();
  });

  it('shows a write through the mount at once, also to a program that opened the file before it', async () => {
    const m = await mountZkfs(zk.connectString, '/native/local');
    await m.ok('echo old > f');
    const before = await warmed(m, 'cat f');
    const reader = openSync(join(m.dir, 'f'), 'r');
    try {
      expect(await nativeOpens(m)).toBe(before + 1);
      writeFileSync(join(m.dir, 'f'), 'new content\n');
      // The write lapsed every allowance: this open is answered in JavaScript.
      expect(await m.ok('cat f')).toBe('new content\n');
      expect(await nativeOpens(m)).toBe(before + 1);
      expect(readAll(reader)).toBe('new content\n');
    } finally {
      closeSync(reader);
    }
    await m.unmount();
  });

  it('reads through a native handle after the kernel dropped its pages (the current data, as a read-only mount does), and fsyncs it', async () => {
    const m = await mountZkfs(zk.connectString, '/native/pages');
    await m.ok('printf "kept in ZooKeeper\\n" > f');
    for (let pass = 0; pass < 3; pass++) await m.ok('cat f');
    const before = await status(m.dir);
    const fd = openSync(join(m.dir, 'f'), 'r');
    try {
      expect((await status(m.dir)).reader.opens).toBe(before.reader.opens + 1);
      // Only clean pages go: nothing on this machine is lost by dropping them.
      writeFileSync('/proc/sys/vm/drop_caches', '1');
      expect(readAll(fd)).toBe('kept in ZooKeeper\n');
      const after = await status(m.dir);
      expect(after.operations.byName?.read ?? 0).toBeGreaterThan(before.operations.byName?.read ?? 0);
      expect(() => fsyncSync(fd)).not.toThrow();
      // A change elsewhere drops the pages again: reads through the handle then see the node's
      // current data, as they would on a read-only mount.
      await client.setData('/native/pages/f', Buffer.from('replaced elsewhere\n'), -1);
      await sees(m, 'cat f', 'replaced elsewhere\n');
      expect(readAll(fd)).toBe('replaced elsewhere\n');
    } finally {
      closeSync(fd);
    }
    expect(await m.ok('cat f')).toBe('replaced elsewhere\n');
    await m.unmount();
  });
});
