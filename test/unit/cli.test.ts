import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main.js';

async function capture(tool: 'simplectl' | 'zkfsctl', argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(tool, argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: { NO_COLOR: '1' },
  });
  return { code, stdout, stderr };
}

describe('command line', () => {
  it('lists every operation in simplectl --help and exits 0', async () => {
    const r = await capture('simplectl', ['--help']);
    expect(r.code).toBe(0);
    for (const name of [
      'scan-disks',
      'match-query',
      'initialize-disk',
      'luks-open',
      'luks-close',
      'mount',
      'umount',
      'mount-zk',
      'serve-plugin',
    ]) {
      expect(r.stdout).toContain(name);
    }
  });

  it('gives zkfsctl the ZooKeeper operations under short names', async () => {
    const r = await capture('zkfsctl', ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/mount \[options\] <hosts> <path> <dir>/);
    expect(r.stdout).toContain('umount');
    expect(r.stdout).not.toContain('scan-disks');
  });

  it('prints the package version', async () => {
    const r = await capture('zkfsctl', ['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it.each([
    ['simplectl', []],
    ['zkfsctl', []],
    ['zkfsctl', ['--json']],
    ['simplectl', ['--log-level', 'debug']],
  ] as const)(
    '%s %j without a command to run or describe: usage on stderr, nothing on stdout, exit 2',
    async (tool, args) => {
      const r = await capture(tool, [...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`Usage: ${tool} [options] [command]`);
      expect(r.stdout).toBe('');
    },
  );

  it.each([
    ['simplectl', ['--help']],
    ['zkfsctl', ['help']],
    ['zkfsctl', ['--json', '--help']],
    ['zkfsctl', ['help', 'mount']],
    ['simplectl', ['mount', '--help']],
  ] as const)('%s %j: help asked for goes to stdout with exit 0', async (tool, args) => {
    const r = await capture(tool, [...args]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: ${tool} `);
    expect(r.stderr).toBe('');
  });

  it('exits 2 with a suggestion on an unknown command', async () => {
    const r = await capture('simplectl', ['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
    expect(r.stderr).toContain('--help');
  });

  it.each([
    ['zkfsctl', ['help', 'frobnicate'], "unknown command 'frobnicate'"],
    ['simplectl', ['--log-level', 'debug', 'help', 'scan-disk'], 'Did you mean scan-disks?'],
  ] as const)('%s %j names the unknown command, with a suggestion, exit 2', async (tool, args, text) => {
    const r = await capture(tool, [...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(text);
    expect(r.stdout).toBe('');
  });

  it('exits 2 on an unknown option and on a missing argument', async () => {
    expect((await capture('simplectl', ['scan-disks', '--bogus'])).code).toBe(2);
    const r = await capture('simplectl', ['initialize-disk']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("missing required argument 'device'");
    expect(r.stderr).not.toContain('takes every word');
  });

  it('says which unit file it cannot write, at once, where Node’s own mkdir -p would spin', async () => {
    const r = await capture('zkfsctl', ['serve-plugin', '--write-systemd-units', '/proc/volkit-no-such']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^zkfsctl: cannot write \/proc\/volkit-no-such\/volkit-zookeeper-plugin\.\w+ \(ENOENT: no such file or directory, mkdir '\/proc\/volkit-no-such'\)\n$/,
    );
  });

  it('says nothing of lists after an option that takes one value', async () => {
    const r = await capture('zkfsctl', ['mount', '-o', 'allow_other', '127.0.0.1:1', '/app']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("missing required argument 'dir'");
    expect(r.stderr).not.toContain('takes every word');
  });

  it('says why arguments went missing after a list option, and how to end the list', async () => {
    const r = await capture('simplectl', ['mount', '--include', 'loop1', 'label.w', '/srv/w']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("missing required argument 'query'");
    expect(r.stderr).toContain('--include takes every word after it');
    expect(r.stderr).toContain('end its list with --');
  });

  it.each([
    [
      ['--print-systemd-units', '--print-plugin-config'],
      "cannot be used with option '--print-plugin-config'",
    ],
    [['--print-plugin-config', '--name', 'x'], '--name does not apply to the managed plugin'],
    [
      ['--build-rootfs', '/nonexistent/x', '--state-dir', '/s', '--socket', '/s.sock'],
      '--socket, --state-dir do not apply',
    ],
    [
      ['--driver', 'zookeeper', '--include', 'loop1', '--print-systemd-units'],
      '--include applies to the simple driver only',
    ],
    [
      ['--print-plugin-config', '--release-unheld', '60'],
      '--release-unheld does not apply to the managed plugin',
    ],
    [
      ['--release-unheld', 'soon', '--print-systemd-units'],
      "--release-unheld 'soon' is not a whole number of seconds",
    ],
  ])('serve-plugin %j: a usage error, not an option silently ignored', async (args, message) => {
    const r = await capture('simplectl', ['serve-plugin', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe('');
  });

  it('writes absolute paths into systemd units, which run from / and read a relative ListenStream as an address', async () => {
    const r = await capture('zkfsctl', [
      'serve-plugin',
      '--socket',
      'rel.sock',
      '--state-dir',
      'st',
      '--print-systemd-units',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`ListenStream=${resolve('rel.sock')}\n`);
    expect(r.stdout).toContain(`--socket ${resolve('rel.sock')} --state-dir ${resolve('st')}\n`);
  });

  it('carries --release-unheld into the unit', async () => {
    const r = await capture('zkfsctl', ['serve-plugin', '--release-unheld', '600', '--print-systemd-units']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(' --release-unheld 600\n');
  });

  it('carries the state and key directories the simple server would use into its unit', async () => {
    const saved = { ...process.env };
    process.env.SIMPLECTL_STATE_DIR = 'assignments';
    process.env.SIMPLECTL_KEY_DIR = '/etc/my keys';
    // The zookeeper unit carries this one when set; the shell running the tests may have set it.
    delete process.env.ZKFSCTL_RUN_DIR;
    try {
      const simple = await capture('simplectl', ['serve-plugin', '--print-systemd-units']);
      expect(simple.code).toBe(0);
      expect(simple.stdout).toContain(`Environment=SIMPLECTL_STATE_DIR=${resolve('assignments')}\n`);
      expect(simple.stdout).toContain('Environment="SIMPLECTL_KEY_DIR=/etc/my keys"\n');
      const zk = await capture('zkfsctl', ['serve-plugin', '--print-systemd-units']);
      expect(zk.stdout).not.toContain('Environment=');
    } finally {
      process.env = saved;
    }
  });

  it('rejects an invalid --log-level with exit 2', async () => {
    const r = await capture('simplectl', ['--log-level', 'loud', 'status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('loud');
  });
});
