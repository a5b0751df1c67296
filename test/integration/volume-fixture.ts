/**
 * Helpers for the volume tests: a private state directory, the CLI run with
 * it and with exactly the test's own loop devices, and loop images that can
 * be detached and attached again (a disk unplugged and plugged back), with a
 * cleanup that only ever detaches a device still backed by our own file.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { onCleanup } from '../fixtures/cleanup.js';
import { type CliResult, cli } from '../fixtures/cli.js';
import { scratchDir, testRoot } from '../fixtures/environment.js';
import { type LoopDisk, mountsOf } from '../fixtures/loop-disk.js';
import { initialisedDisk, TEST_ENV } from '../fixtures/simple-disks.js';

/** A label no other test uses, so scans never mix tests up. */
export function uniqueLabel(prefix = 'v'): string {
  return `${prefix}${Math.random().toString(36).slice(2, 8)}`;
}

/** `count` loop disks initialised with `label`. */
export async function labelledDisks(label: string, count: number): Promise<LoopDisk[]> {
  const disks: LoopDisk[] = [];
  for (let i = 0; i < count; i++) disks.push(await initialisedDisk(`label.${label}`));
  return disks;
}

/** A fresh path `name` for a volume to be mounted at (its parent exists, it does not). */
export function volumeDir(name = 'v', scratch = 'vol'): string {
  return join(scratchDir(scratch), name);
}

export interface VolumeEnv {
  stateDir: string;
  /** Runs simplectl with --state-dir (and `include` for mount). */
  run(args: readonly string[], options?: { env?: Record<string, string> }): Promise<CliResult>;
  /**
   * `simplectl mount QUERY DIR [-o KEY=VALUE …] --include …` over these devices (or disks),
   * registering an unmount for cleanup.
   */
  mount(
    query: string,
    dir: string,
    devices: readonly (string | LoopDisk)[],
    env?: Record<string, string>,
    options?: Record<string, string>,
  ): Promise<CliResult>;
  /** `simplectl umount [--release] DIR`, failing the test with simplectl's message unless it succeeds. */
  umount(dir: string, options?: { release?: boolean }): Promise<void>;
  status(): Promise<StatusJson>;
}

export interface StatusJson {
  volumes: {
    volume: string;
    mounted: boolean;
    dir: string | null;
    watcher: { pid: number; alive: boolean } | null;
    disks: {
      uuid: string;
      number: number | null;
      device: string;
      mountPoint: string | null;
      name: string | null;
    }[];
    placeholders: string[];
  }[];
  assignments: { uuid: string; device: string; volumes: string[] }[];
  notes: string[];
}

export function volumeEnv(): VolumeEnv {
  const stateDir = join(scratchDir('state'), 'simplectl');
  const run = (args: readonly string[], options: { env?: Record<string, string> } = {}) =>
    cli('simplectl', [...args, '--state-dir', stateDir], { env: { ...TEST_ENV, ...options.env } });
  return {
    stateDir,
    run,
    mount: (query, dir, devices, env, options = {}) => {
      onCleanup(`volume at ${dir}`, async () => {
        if (mountsUnder(dir).length > 0) await run(['umount', '--lazy', dir]);
        for (const m of mountsUnder(dir)) execFileSync('umount', ['-l', m]);
      });
      const names = devices.map((d) => (typeof d === 'string' ? d : d.device).replace('/dev/', ''));
      const opts = Object.entries(options).flatMap(([key, value]) => ['-o', `${key}=${value}`]);
      return run(['mount', query, dir, ...opts, '--include', ...names], { ...(env ? { env } : {}) });
    },
    umount: async (dir, options = {}) => {
      const args = ['umount', ...(options.release ? ['--release'] : []), dir];
      const r = await run(args);
      if (r.exitCode !== 0)
        throw new Error(`simplectl ${args.join(' ')} failed (${r.exitCode}): ${r.stderr}`);
    },
    status: async () => {
      const r = await run(['status', '--json']);
      if (r.exitCode !== 0) throw new Error(`status failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as StatusJson;
    },
  };
}

/** Mount points at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** The devices mounted below a volume's root `dir` (its disks), deepest mount first. */
export function diskSources(dir: string): (string | undefined)[] {
  return mountsUnder(dir)
    .filter((m) => m !== dir)
    .map((m) => mountInfo(m)?.source);
}

/**
 * What this test run has mounted (mount points under its scratch root) and
 * which loop devices its images back: a failed operation must leave both as
 * they were. Other runs on the machine are no concern here.
 */
export function runSnapshot(): { mounts: string; loops: string } {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => (line.split(' ')[4] ?? '').startsWith(`${testRoot()}/`))
    .join('\n');
  const loops = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], {
    encoding: 'utf8',
  })
    .split('\n')
    .filter((l) => l.includes(testRoot()))
    .sort()
    .join('\n');
  return { mounts, loops };
}

/** What mount shows for `dir`: its source and options, or undefined. */
export function mountInfo(dir: string): { source: string; options: string[]; fsType: string } | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] !== dir) continue;
    const dash = f.indexOf('-');
    return { source: f[dash + 2] ?? '', options: (f[5] ?? '').split(','), fsType: f[dash + 1] ?? '' };
  }
  return undefined;
}

function backingFile(device: string): string | undefined {
  const path = `/sys/block/${device.replace('/dev/', '')}/loop/backing_file`;
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
}

/** Attaches `file` to a free loop device (a disk plugged in); cleanup detaches it only if still ours. */
export function attachImage(file: string): string {
  const device = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
  onCleanup(`loop device ${device} (${file})`, () => detachImage(device, file));
  return device;
}

/** Detaches `device` if it is still backed by `file`: unmounts, drops partitions, detaches. */
export function detachImage(device: string, file: string): void {
  if (backingFile(device) !== file) return;
  for (const m of mountsOf(device)) execFileSync('umount', ['-l', m]);
  try {
    execFileSync('partx', ['-d', device], { stdio: 'ignore' });
  } catch {
    // no partitions
  }
  try {
    execFileSync('losetup', ['-d', device], { stdio: 'ignore' });
  } catch {
    // detached meanwhile
  }
}

/** Polls until `probe` returns a value, failing after `timeoutMs` with `what`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** PARTUUID of a device's data partition, read with blkid. */
export function dataPartUuid(device: string): string {
  return execFileSync('blkid', ['-p', '-s', 'PART_ENTRY_UUID', '-o', 'value', `${device}p2`], {
    encoding: 'utf8',
  }).trim();
}

/**
 * A loop device name nobody uses now, far above those `losetup --find` hands
 * out, so a test can name it in --include before attaching anything to it.
 */
export function unusedLoopDevice(): string {
  for (;;) {
    const n = 200 + Math.floor(Math.random() * 300);
    if (backingFile(`/dev/loop${n}`) === undefined) return `/dev/loop${n}`;
  }
}

/** Attaches `file` to exactly `device` (plugging a disk in); cleanup detaches it only if still ours. */
export function attachImageAt(file: string, device: string): void {
  execFileSync('losetup', [device, file]);
  onCleanup(`loop device ${device} (${file})`, () => detachImage(device, file));
}
