/**
 * The block-device watch on real loop devices: kernel uevents through
 * busybox's uevent helper, and the sysfs poll used when no helper exists.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { blockDeviceFacts, isPresent, watchDisks } from '../../src/adapters/disk-watch.js';
import { detectUeventSource, listenBlockUevents, type Uevent } from '../../src/adapters/uevents.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { missing, REPO_ROOT, scratchDir } from '../fixtures/environment.js';
import { createLoopDisk } from '../fixtures/loop-disk.js';

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(missing({ loop: true }))('block device watch', () => {
  it('finds a uevent helper on this machine', async () => {
    expect(await detectUeventSource()).toBeDefined();
  });

  it('hears the kernel uevent of a loop device being attached', async () => {
    const events: Uevent[] = [];
    const listener = await listenBlockUevents((e) => events.push(e), { source: 'busybox' });
    expect(listener).toBeDefined();
    onCleanup('uevent listener', () => listener?.stop());
    // The helper binds its socket right after it starts: give it a moment.
    await new Promise((r) => setTimeout(r, 300));
    const disk = await createLoopDisk({ sizeMiB: 8 });
    const name = disk.device.replace('/dev/', '');
    await waitFor(`a uevent for ${name}`, () => events.find((e) => e.devname === name) ?? undefined);
    await listener?.stop();
  });

  for (const mode of ['auto', 'poll'] as const) {
    it(`calls back when a loop device is attached and detached (${mode})`, async () => {
      const reasons: string[] = [];
      const watch = await watchDisks(
        async (reason) => {
          reasons.push(reason);
        },
        { mode, intervalMs: 200, ueventSource: 'busybox' },
      );
      onCleanup('disk watch', () => watch.stop());
      expect(watch.source).toBe(mode === 'poll' ? 'poll' : 'uevent(busybox)+poll');
      const disk = await createLoopDisk({ sizeMiB: 8 });
      await waitFor('a change after attach', () => (reasons.length > 0 ? true : undefined));
      if (mode === 'auto')
        await waitFor('a uevent reason', () => reasons.find((r) => r.startsWith('uevent')));
      const seen = reasons.length;
      await disk.detach();
      await waitFor('a change after detach', () => (reasons.length > seen ? true : undefined));
      await watch.stop();
    });
  }

  it('sees `losetup -d` on a busy loop device as the device leaving', async () => {
    const disk = await createLoopDisk({ sizeMiB: 8 });
    const name = disk.device.replace('/dev/', '');
    expect(isPresent(await blockDeviceFacts(name))).toBe(true);
    // Holding the device open keeps it busy, as a mounted filesystem would; the fixture's
    // detach then runs `losetup -d`, which on a busy device only sets autoclear.
    const fd = await open(disk.device, 'r');
    onCleanup('device holder', () => fd.close().catch(() => {}));
    await disk.detach();
    const facts = await blockDeviceFacts(name);
    expect(facts?.sectors).toBeGreaterThan(0);
    expect(facts?.detaching).toBe(true);
    expect(isPresent(facts)).toBe(false);
    await fd.close();
  });

  it('a volume watcher told to stop during its first pass finishes that pass, then stops', async () => {
    const state = scratchDir('watcher-state');
    const dir = scratchDir('watcher-dir');
    // Another simplectl holds the state lock: the first pass waits for it.
    const holder = execa('sleep', ['600'], { reject: false });
    onCleanup('lock holder', () => {
      holder.kill();
    });
    const startTime = readFileSync(`/proc/${holder.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
    writeFileSync(
      join(state, 'assign.lock'),
      JSON.stringify({ pid: holder.pid, startTime, purpose: 'mount label.x at /x', since: 'now' }),
    );
    const watcher = execa(
      'node',
      [join(REPO_ROOT, 'dist/cli/volume-watcher.js'), '--dir', dir, '--state-dir', state],
      {
        reject: false,
      },
    );
    onCleanup('volume watcher', () => {
      watcher.kill('SIGKILL');
    });
    let log = '';
    watcher.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    await waitFor('the watch to start', () => (log.includes(`watching ${dir}`) ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    watcher.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    // Still in its pass, waiting for the lock: not cut short by the signal.
    expect(watcher.exitCode, log).toBeNull();
    holder.kill();
    const r = await watcher;
    expect(r.signal, log).toBeUndefined();
    expect(r.exitCode, log).toBe(0);
    expect(log).toContain('SIGTERM: stopping');
  });
});
