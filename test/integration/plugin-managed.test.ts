/**
 * The managed (v2) form: `serve-plugin --build-rootfs` builds config.json and a
 * root filesystem from this package, offline; the private engine installs it
 * with `docker plugin create`, runs it, and uses it as a volume driver.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { onCleanup } from '../fixtures/cleanup.js';
import { cli } from '../fixtures/cli.js';
import { startDockerd } from '../fixtures/dockerd.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { startZk } from '../fixtures/zk-server.js';
import { readZnode, runArgs, uniquePluginName } from './plugin-fixture.js';

describe.skipIf(missing({ root: true, fuse: true }))('managed zookeeper plugin', () => {
  it('builds offline, installs with docker plugin create, and serves volumes', async () => {
    const dir = join(scratchDir('managed'), 'plugin');
    const built = await cli('zkfsctl', ['--json', 'serve-plugin', '--build-rootfs', dir], {
      timeoutMs: 120_000,
    });
    expect(built.exitCode, built.stderr).toBe(0);
    const result = JSON.parse(built.stdout) as {
      configFile: string;
      missingTools: string[];
      packages: string[];
    };
    expect(result.configFile).toBe(join(dir, 'config.json'));
    expect(result.packages).toContain('node_modules/node-zookeeper-client');
    expect(result.packages).not.toContain('node_modules/vitest');

    const engine = await startDockerd();
    const zk = await startZk();
    const plugin = `${uniquePluginName('volkit-managed')}:latest`;
    await engine.docker(['plugin', 'create', plugin, dir], { timeoutMs: 300_000 });
    onCleanup(`docker plugin ${plugin}`, async () => {
      await engine.docker(['plugin', 'disable', '-f', plugin], { reject: false });
      await engine.docker(['plugin', 'rm', '-f', plugin], { reject: false });
    });
    await engine.docker(['plugin', 'enable', plugin]);
    const inspect = await engine.docker(['plugin', 'inspect', '--format', '{{.Enabled}}', plugin]);
    expect(inspect.stdout.trim()).toBe('true');

    await engine.docker([
      'volume',
      'create',
      '-d',
      plugin,
      '-o',
      `hosts=${zk.connectString}`,
      '-o',
      'path=/managed',
      'mcfg',
    ]);
    const volume = JSON.parse((await engine.docker(['volume', 'inspect', 'mcfg'])).stdout)[0];
    expect(volume.Driver).toBe(plugin);
    expect(volume.Status).toMatchObject({ hosts: zk.connectString, path: '/managed', mode: 'HYBRID' });
    // The plugin mounts inside its own container; the engine finds the mount under the propagated mount.
    const image = await engine.busyboxImage();
    const run = await engine.docker(runArgs(image, 'mcfg', 'echo managed > /data/m && cat /data/m'));
    expect(run.stdout).toBe('managed');
    expect(await readZnode(zk.connectString, '/managed/m')).toBe('managed\n');
    await engine.docker(['volume', 'rm', 'mcfg']);
    await engine.docker(['plugin', 'disable', plugin]);
  });
});
