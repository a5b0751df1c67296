/** Driver option checks, plugin paths, systemd unit text and the managed plugin's config.json. */
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { managedPluginConfig } from '../../src/core/managed-plugin.js';
import { pluginPaths } from '../../src/core/plugin-paths.js';
import { systemdQuote, systemdUnits } from '../../src/core/systemd-units.js';
import { normalizeZkOptions } from '../../src/plugin/zk-driver.js';

describe('zookeeper driver options', () => {
  it.each([
    [{ hosts: '127.0.0.1:2181' }, { hosts: '127.0.0.1:2181', path: '/', mode: 'HYBRID' }],
    [{ host: 'zk1:2181' }, { hosts: 'zk1:2181', path: '/', mode: 'HYBRID' }],
    [
      { hosts: 'h:1', path: '/app/' },
      { hosts: 'h:1', path: '/app', mode: 'HYBRID' },
    ],
    [
      { hosts: 'zk1:2181, zk2:2182', path: '/app', mode: 'dir' },
      { hosts: 'zk1:2181,zk2:2182', path: '/app', mode: 'DIR' },
    ],
    [
      { hosts: 'localhost:2181', mode: 'FILE' },
      { hosts: 'localhost:2181', path: '/', mode: 'FILE' },
    ],
    [
      { hosts: 'h:1', host: 'h:1', auth: 'alice:pw:with:colons' },
      { hosts: 'h:1', path: '/', mode: 'HYBRID', auth: 'alice:pw:with:colons' },
    ],
    [
      { hosts: 'h:1', 'auth-file': '/etc/volkit/zk.auth' },
      { hosts: 'h:1', path: '/', mode: 'HYBRID', 'auth-file': '/etc/volkit/zk.auth' },
    ],
  ])('accepts %j', (input, expected) => {
    expect(normalizeZkOptions(input)).toEqual(expected);
  });

  it.each([
    [{}, 'missing option hosts'],
    [{ hosts: '' }, 'missing option hosts'],
    [{ hosts: 'zk1' }, "'zk1' in -o hosts is not host:port (ports are required"],
    [{ hosts: 'zk1:2181,zk2' }, "'zk2' in -o hosts is not host:port"],
    [{ hosts: 'zk1:0' }, 'port 0 in -o hosts is out of range'],
    [{ hosts: 'zk1:65536' }, 'out of range'],
    [{ hosts: 'zk1:2181/chroot' }, 'contains a path'],
    [{ hosts: 'a:1', host: 'b:1' }, 'hosts and host disagree'],
    [{ hosts: 'a:1', path: 'app' }, '-o path=app must start with /'],
    [{ hosts: 'a:1', path: '/a/../b' }, '-o path=/a/../b is invalid'],
    [{ hosts: 'a:1', mode: 'weird' }, '-o mode=weird is not one of hybrid, dir, file'],
    [{ hosts: 'a:1', auth: 'nocolon' }, '-o auth must be user:password'],
    [{ hosts: 'a:1', size: '1' }, 'unknown option "size" for the zookeeper driver'],
    [{ hosts: 'a:1', auth: 'u:p', 'auth-file': '/f' }, 'give option auth or auth-file, not both'],
    [{ hosts: 'a:1', 'auth-file': 'rel/f' }, '-o auth-file=rel/f is not an absolute path'],
    [JSON.parse('{"hosts":"a:1","__proto__":"x"}'), 'unknown option "__proto__"'],
  ])('refuses %j', (input, message) => {
    expect(() => normalizeZkOptions(input)).toThrow(UsageError);
    expect(() => normalizeZkOptions(input)).toThrow(message);
  });

  it.each([
    [{ hosts: 'zk1' }, "'zk1' in -o hosts is not host:port (ports are required, e.g. zk1:2181,zk2:2181)"],
    [{ host: 'zk1' }, "'zk1' in -o host is not host:port (ports are required, e.g. zk1:2181,zk2:2181)"],
    [{ hosts: 'zk1:2181/app' }, '-o hosts=zk1:2181/app contains a path; give the ZooKeeper path as -o path'],
    [{ hosts: 'a:1', path: '/a/../b' }, "-o path=/a/../b is invalid: '..' is not a node name"],
    [{ hosts: 'a:1', mode: 'weird' }, '-o mode=weird is not one of hybrid, dir, file'],
    [{ hosts: 'a:1', auth: 'nocolon' }, '-o auth must be user:password (digest scheme)'],
  ])('names the option of %j once, as typed through Docker', (input, message) => {
    // Messages of zkfsctl mount's parsers used to be wrapped in a second name for the same option.
    expect(() => normalizeZkOptions(input)).toThrow(new UsageError(message));
  });
});

describe('plugin paths', () => {
  it('derives every default from the plugin name', () => {
    expect(pluginPaths({ name: 'zookeeper' })).toEqual({
      name: 'zookeeper',
      socket: '/run/docker/plugins/zookeeper.sock',
      stateDir: '/var/lib/volkit/plugins/zookeeper',
      stateFile: '/var/lib/volkit/plugins/zookeeper/plugin-state.json',
      mountRoot: '/var/lib/volkit/plugins/zookeeper/volumes',
    });
    expect(pluginPaths({ name: 'z', stateDir: '/s', socket: '/x.sock' })).toMatchObject({
      socket: '/x.sock',
      stateFile: '/s/plugin-state.json',
      mountRoot: '/s/volumes',
    });
  });

  it.each(['', '../x', 'a/b', '.hidden', 'a b'])('refuses the plugin name %j', (name) => {
    expect(() => pluginPaths({ name })).toThrow('invalid plugin name');
  });
});

describe('systemd units', () => {
  const [socket, service] = systemdUnits({
    name: 'zookeeper',
    execPath: '/usr/bin/zkfsctl',
    args: ['--log-level', 'info', 'serve-plugin', '--name', 'zookeeper', '--state-dir', '/var/lib/my state'],
    socket: '/run/docker/plugins/zookeeper.sock',
    manPage: 'zkfsctl(1)',
  });

  it('orders the socket before docker.service and binds the plugin path with mode 0660', () => {
    expect(socket?.fileName).toBe('volkit-zookeeper-plugin.socket');
    expect(socket?.text).toContain('Before=docker.service\n');
    expect(socket?.text).toContain('ListenStream=/run/docker/plugins/zookeeper.sock\n');
    expect(socket?.text).toContain('SocketMode=0660\n');
    expect(socket?.text).toContain('WantedBy=sockets.target\n');
  });

  it('runs serve-plugin, keeps mounts when the service stops, and needs its socket', () => {
    expect(service?.fileName).toBe('volkit-zookeeper-plugin.service');
    expect(service?.text).toContain(
      'ExecStart=/usr/bin/zkfsctl --log-level info serve-plugin --name zookeeper --state-dir "/var/lib/my state"\n',
    );
    expect(service?.text).toContain('Requires=volkit-zookeeper-plugin.socket\n');
    expect(service?.text).toContain('KillMode=process\n');
    expect(service?.text).toContain('Before=docker.service\n');
  });

  it.each([
    ['plain/path', 'plain/path'],
    ['with space', '"with space"'],
    ['50%', '50%%'],
    ['say "hi"', '"say \\"hi\\""'],
  ])('quotes %j as %s', (word, quoted) => {
    expect(systemdQuote(word)).toBe(quoted);
  });
});

describe('managed plugin config.json', () => {
  it('declares a FUSE volume driver with CAP_SYS_ADMIN, /dev/fuse and a propagated mount for zookeeper', () => {
    const config = managedPluginConfig({ tool: 'zkfsctl', driver: 'zookeeper' });
    expect(config).toMatchObject({
      interface: { types: ['docker.volumedriver/1.0'], socket: 'zookeeper.sock' },
      network: { type: 'host' },
      propagatedMount: '/mnt/volumes',
      linux: { capabilities: ['CAP_SYS_ADMIN'], devices: [{ path: '/dev/fuse' }], allowAllDevices: false },
    });
    const entrypoint = config.entrypoint as string[];
    expect(entrypoint.slice(0, 2)).toEqual(['/usr/local/bin/node', '/opt/volkit/dist/cli/zkfsctl.js']);
    expect(entrypoint.join(' ')).toContain('--socket /run/docker/plugins/zookeeper.sock');
    expect(entrypoint.join(' ')).toContain('--mount-root /mnt/volumes');
    // Its server sees only its own processes, so it cannot tell which containers hold a volume.
    expect(entrypoint.join(' ')).toContain('--release-unheld 0');
  });

  it('gives the simple driver the host devices and machine id', () => {
    const config = managedPluginConfig({ tool: 'simplectl', driver: 'simple' });
    expect((config.entrypoint as string[]).join(' ')).toContain('serve-plugin --driver simple');
    expect(config.linux).toMatchObject({ allowAllDevices: true });
    expect((config.mounts as { destination: string }[]).map((m) => m.destination)).toEqual([
      '/dev',
      '/etc/machine-id',
    ]);
  });

  it('passes --include on to the managed simple plugin', () => {
    const config = managedPluginConfig({ tool: 'simplectl', driver: 'simple', include: ['loop5', 'sd[bc]'] });
    expect((config.entrypoint as string[]).slice(-3)).toEqual(['--include', 'loop5', 'sd[bc]']);
    expect(managedPluginConfig({ tool: 'simplectl', driver: 'simple' }).entrypoint).not.toContain(
      '--include',
    );
  });
});
