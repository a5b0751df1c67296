/**
 * One round trip per endpoint over a real unix socket, against a fake driver
 * that records its calls; plus every way a request can be refused. Requests
 * are sent as the engine sends them: POST, Accept header, no Content-Type,
 * body ending in a newline (shared/reference.md §2).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/adapters/logger.js';
import { OperationError } from '../../src/core/errors.js';
import { NoSuchVolumeError } from '../../src/core/plugin-state.js';
import { PLUGIN_MEDIA_TYPE } from '../../src/plugin/protocol.js';
import { Router } from '../../src/plugin/router.js';
import { type PluginServer, startPluginServer } from '../../src/plugin/server.js';
import type { VolumeDetails, VolumeDriver, VolumeSummary } from '../../src/plugin/volume-driver.js';

interface Call {
  method: string;
  args: unknown[];
}

/**
 * Remembers every call; volumes named "missing…" do not exist, "boom" throws a
 * bug; a name part "pw.X" carries the secret X, as a simple volume's passphrase.
 */
class FakeDriver implements VolumeDriver {
  readonly calls: Call[] = [];
  readonly secretOptions = ['auth'];
  readonly plainOptions = ['mode'];
  delayMs = 0;
  active = new Map<string, number>();
  maxActive = new Map<string, number>();
  overlapSeen = false;

  private async step(method: string, name: string | undefined, ...args: unknown[]): Promise<void> {
    this.calls.push({ method, args: name === undefined ? args : [name, ...args] });
    if (name?.startsWith('missing')) throw new NoSuchVolumeError(name);
    if (name === 'boom') throw new TypeError('cannot read properties of undefined');
    if (name === 'leaky') throw new OperationError('cannot connect with digest alice:s3cret');
    if (this.delayMs > 0 && name !== undefined) {
      const now = (this.active.get(name) ?? 0) + 1;
      this.active.set(name, now);
      this.maxActive.set(name, Math.max(now, this.maxActive.get(name) ?? 0));
      if ([...this.active.values()].filter((n) => n > 0).length > 1) this.overlapSeen = true;
      await new Promise((r) => setTimeout(r, this.delayMs));
      this.active.set(name, now - 1);
    }
  }

  async create(name: string, options: Record<string, string>) {
    await this.step('create', name, options);
  }
  async remove(name: string) {
    await this.step('remove', name);
  }
  async mount(name: string, id: string) {
    await this.step('mount', name, id);
    return `/mnt/${name}`;
  }
  async path(name: string) {
    await this.step('path', name);
    return name === 'idle' ? undefined : `/mnt/${name}`;
  }
  async unmount(name: string, id: string) {
    await this.step('unmount', name, id);
  }
  async get(name: string): Promise<VolumeDetails> {
    await this.step('get', name);
    return { name, mountpoint: `/mnt/${name}`, createdAt: '2026-01-01T00:00:00.000Z', status: { mounts: 1 } };
  }
  async list(): Promise<VolumeSummary[]> {
    await this.step('list', undefined);
    return [{ name: 'a', mountpoint: '/mnt/a' }, { name: 'b' }];
  }
  capabilities() {
    this.calls.push({ method: 'capabilities', args: [] });
    return { scope: 'local' as const };
  }
  secrets() {
    return ['s3cret'];
  }
  displayName(name: string) {
    return name.replace('hidden', '***').replace(/pw\.[a-zA-Z0-9]+/, 'pw.***');
  }
  secretsIn(name: string) {
    return [...name.matchAll(/pw\.([a-zA-Z0-9]+)/g)].map((m) => m[1] ?? '');
  }
}

interface Reply {
  status: number;
  contentType: string | undefined;
  json: Record<string, unknown>;
}

function post(socketPath: string, path: string, body: string, method = 'POST'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path,
        method,
        headers: { Accept: PLUGIN_MEDIA_TYPE, 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: res.headers['content-type'],
            json: JSON.parse(text),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends raw bytes and returns whatever comes back before the server closes. */
function raw(socketPath: string, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const s = connect({ path: socketPath });
    s.on('data', (d) => {
      text += d.toString();
    });
    s.on('close', () => resolve(text));
    s.on('error', () => resolve(text));
    s.setTimeout(3000, () => s.destroy());
    s.end(bytes);
  });
}

const dir = mkdtempSync(join(tmpdir(), 'volkit-plugin-protocol-'));
const socketPath = join(dir, 'run', 'plugins', 'fake.sock');
const logLines: string[] = [];
const driver = new FakeDriver();
let server: PluginServer;

beforeAll(async () => {
  const log = createLogger({ level: 'debug', write: (l) => logLines.push(l) });
  server = await startPluginServer({
    router: new Router({ driver, log }),
    log,
    listen: { socketPath, env: {} },
    maxBodyBytes: 4096,
  });
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  driver.calls.length = 0;
  driver.delayMs = 0;
  logLines.length = 0;
});

describe('plugin protocol round trips', () => {
  it('binds the socket with mode 0660', () => {
    expect(statSync(socketPath).mode & 0o777).toBe(0o660);
    expect(server.kind).toBe('path');
  });

  it('answers Activate with an empty body', async () => {
    const r = await post(socketPath, '/Plugin.Activate', '');
    expect(r).toEqual({
      status: 200,
      contentType: PLUGIN_MEDIA_TYPE,
      json: { Implements: ['VolumeDriver'] },
    });
  });

  it('answers Capabilities with local scope', async () => {
    const r = await post(socketPath, '/VolumeDriver.Capabilities', '{}\n');
    expect(r.json).toEqual({ Capabilities: { Scope: 'local' } });
    expect(driver.calls).toEqual([{ method: 'capabilities', args: [] }]);
  });

  it('passes Create options through', async () => {
    const r = await post(
      socketPath,
      '/VolumeDriver.Create',
      '{"Name":"cfg","Opts":{"hosts":"h:1","path":"/a"}}\n',
    );
    expect(r).toMatchObject({ status: 200, json: { Err: '' } });
    expect(driver.calls).toEqual([{ method: 'create', args: ['cfg', { hosts: 'h:1', path: '/a' }] }]);
  });

  it('treats Create without options (Opts null) as empty options', async () => {
    await post(socketPath, '/VolumeDriver.Create', '{"Name":"cfg","Opts":null}\n');
    expect(driver.calls).toEqual([{ method: 'create', args: ['cfg', {}] }]);
  });

  it('keeps a "__proto__" option as an ordinary key for the driver to refuse', async () => {
    await post(socketPath, '/VolumeDriver.Create', '{"Name":"cfg","Opts":{"__proto__":"x"}}\n');
    const options = driver.calls[0]?.args[1] as Record<string, string>;
    expect(Object.keys(options)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(options)).toBe(Object.prototype);
  });

  it('logs the volume name as the driver shows it (a name may hold a passphrase)', async () => {
    await post(socketPath, '/VolumeDriver.Get', '{"Name":"xhiddenx"}\n');
    const info = logLines.filter((l) => l.startsWith('info:'));
    expect(info[0]).toContain('volume=x***x ok');
  });

  it('answers a request without a Host header (a unix socket has no virtual hosts)', async () => {
    const reply = await raw(
      socketPath,
      'POST /Plugin.Activate HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
    expect(reply).toContain('{"Implements":["VolumeDriver"]}');
  });

  it('removes', async () => {
    expect((await post(socketPath, '/VolumeDriver.Remove', '{"Name":"cfg"}\n')).json).toEqual({ Err: '' });
    expect(driver.calls).toEqual([{ method: 'remove', args: ['cfg'] }]);
  });

  it('mounts with the engine mount ID and returns the mount point', async () => {
    const r = await post(socketPath, '/VolumeDriver.Mount', '{"Name":"cfg","ID":"abc123"}\n');
    expect(r.json).toEqual({ Mountpoint: '/mnt/cfg', Err: '' });
    expect(driver.calls).toEqual([{ method: 'mount', args: ['cfg', 'abc123'] }]);
  });

  it('answers Path with the mount point, or empty when not mounted', async () => {
    expect((await post(socketPath, '/VolumeDriver.Path', '{"Name":"cfg"}\n')).json).toEqual({
      Mountpoint: '/mnt/cfg',
      Err: '',
    });
    expect((await post(socketPath, '/VolumeDriver.Path', '{"Name":"idle"}\n')).json).toEqual({
      Mountpoint: '',
      Err: '',
    });
  });

  it('unmounts with the engine mount ID', async () => {
    const r = await post(socketPath, '/VolumeDriver.Unmount', '{"Name":"cfg","ID":"abc123"}\n');
    expect(r.json).toEqual({ Err: '' });
    expect(driver.calls).toEqual([{ method: 'unmount', args: ['cfg', 'abc123'] }]);
  });

  it('answers Get with the exact wire keys', async () => {
    const r = await post(socketPath, '/VolumeDriver.Get', '{"Name":"cfg"}\n');
    expect(r.json).toEqual({
      Volume: {
        Name: 'cfg',
        Mountpoint: '/mnt/cfg',
        CreatedAt: '2026-01-01T00:00:00.000Z',
        Status: { mounts: 1 },
      },
      Err: '',
    });
  });

  it('lists volumes, with a mount point only for mounted ones', async () => {
    const r = await post(socketPath, '/VolumeDriver.List', '{}\n');
    expect(r.json).toEqual({ Volumes: [{ Name: 'a', Mountpoint: '/mnt/a' }, { Name: 'b' }], Err: '' });
  });

  it('answers List with an empty body too', async () => {
    expect((await post(socketPath, '/VolumeDriver.List', '')).status).toBe(200);
  });

  it('logs one info line per request with endpoint, volume, outcome and duration', async () => {
    await post(socketPath, '/VolumeDriver.Get', '{"Name":"cfg"}\n');
    const info = logLines.filter((l) => l.startsWith('info:'));
    expect(info).toHaveLength(1);
    expect(info[0]).toMatch(/^info: VolumeDriver\.Get volume=cfg ok \d+\.\d ms$/);
  });
});

describe('plugin protocol errors', () => {
  it.each([
    ['a missing volume', '/VolumeDriver.Get', '{"Name":"missing"}', 404, 'no such volume: missing'],
    ['malformed JSON', '/VolumeDriver.Get', '{"Name":', 400, 'malformed JSON'],
    ['a JSON array', '/VolumeDriver.Get', '[1]', 400, 'must be a JSON object'],
    ['JSON null', '/VolumeDriver.Get', 'null', 400, 'must be a JSON object'],
    ['an unknown endpoint', '/VolumeDriver.Frobnicate', '{}', 404, 'unknown endpoint'],
    ['a prototype key as endpoint', '/constructor', '{}', 404, 'unknown endpoint'],
    ['a name with a slash', '/VolumeDriver.Create', '{"Name":"../etc"}', 400, "contains '/'"],
    ['a name with ..', '/VolumeDriver.Mount', '{"Name":"a..b","ID":"x"}', 400, "contains '..'"],
    ['no name', '/VolumeDriver.Remove', '{}', 400, 'volume name is missing'],
    [
      'an empty body (the engine retrying a request after a plugin restart)',
      '/VolumeDriver.Mount',
      '',
      400,
      'arrived with an empty body, as the engine resends a request a plugin restart cut off; run the command again',
    ],
    ['a numeric name', '/VolumeDriver.Remove', '{"Name":5}', 400, 'volume name is missing'],
    ['Mount without ID', '/VolumeDriver.Mount', '{"Name":"cfg"}', 400, 'mount ID is missing'],
    [
      'Unmount with a numeric ID',
      '/VolumeDriver.Unmount',
      '{"Name":"cfg","ID":7}',
      400,
      'mount ID is missing',
    ],
    ['non-string option', '/VolumeDriver.Create', '{"Name":"c","Opts":{"a":1}}', 400, 'option "a" must be'],
    ['Opts as a list', '/VolumeDriver.Create', '{"Name":"c","Opts":["a"]}', 400, 'Opts must be an object'],
    ['a driver bug', '/VolumeDriver.Get', '{"Name":"boom"}', 500, 'internal error: cannot read'],
  ])('answers %s with {"Err"} and a non-200 status', async (_label, path, body, status, message) => {
    const r = await post(socketPath, path, `${body}\n`);
    expect(r.status).toBe(status);
    expect(r.contentType).toBe(PLUGIN_MEDIA_TYPE);
    expect(Object.keys(r.json)).toEqual(['Err']);
    expect(r.json.Err).toContain(message);
  });

  it('quotes nothing of a malformed body, which may hold a secret, in its reply or log', async () => {
    const r = await post(socketPath, '/VolumeDriver.Create', '{"Name":"v","Opts":{"auth":bob:s3cr3t}}\n');
    expect(r.status).toBe(400);
    expect(r.json.Err).toBe('malformed JSON in request body (40 bytes, not shown)');
    expect(logLines.join('\n')).not.toContain('s3cr3t');
  });

  it('masks in its debug log the value of a secret option given with another spelling', async () => {
    await post(socketPath, '/VolumeDriver.Create', '{"Name":"v","Opts":{"Auth ":"bob:s3cr3t"}}\n');
    const line = logLines.find((l) => l.includes('VolumeDriver.Create request'));
    expect(line).toContain('"Auth ":');
    expect(logLines.join('\n')).not.toContain('s3cr3t');
  });

  it('shows in its debug log only the values of options known to be no secret', async () => {
    await post(
      socketPath,
      '/VolumeDriver.Create',
      '{"Name":"v","Opts":{"mode":"ro","passphrase":"hunter2","pass phrase":"x2","password":"pw3"}}\n',
    );
    const line = logLines.find((l) => l.includes('VolumeDriver.Create request')) ?? '';
    expect(line).toContain('"mode":"ro"');
    expect(line).toContain('"passphrase":"***"');
    for (const secret of ['hunter2', 'x2', 'pw3']) expect(logLines.join('\n')).not.toContain(secret);
  });

  it('refuses methods other than POST', async () => {
    const r = await post(socketPath, '/VolumeDriver.List', '', 'GET');
    expect(r.status).toBe(405);
    expect(r.json.Err).toContain('use POST');
  });

  it('refuses an oversized body without reading it all', async () => {
    const r = await post(
      socketPath,
      '/VolumeDriver.Create',
      `{"Name":"x","Opts":{"a":"${'x'.repeat(8000)}"}}`,
    );
    expect(r.status).toBe(413);
    expect(r.json.Err).toContain('larger than 4096 bytes');
    expect(driver.calls).toEqual([]);
  });

  it('answers garbage that is not HTTP with a 400 {"Err"} and keeps serving', async () => {
    const reply = await raw(socketPath, 'this is not http\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect(reply).toContain('"Err":"malformed HTTP request');
    expect((await post(socketPath, '/Plugin.Activate', '')).status).toBe(200);
  });

  it('keeps secrets out of Err replies and of every log line', async () => {
    const r = await post(
      socketPath,
      '/VolumeDriver.Create',
      '{"Name":"leaky","Opts":{"auth":"alice:s3cret"}}\n',
    );
    expect(r.status).toBe(500);
    // The whole option is the secret: its user name goes with it.
    expect(r.json.Err).toBe('cannot connect with digest ***');
    expect(logLines.length).toBeGreaterThan(1);
    expect(logLines.join('\n')).not.toContain('s3cret');
    expect(logLines.join('\n')).toContain('"auth":"***"');
  });
});

describe('secrets in volume names', () => {
  it.each([
    ['/VolumeDriver.Get', '{"Name":"missing_pw.Topsecret"}'],
    ['/VolumeDriver.Path', '{"Name":"missing_pw.Topsecret"}'],
    ['/VolumeDriver.Remove', '{"Name":"missing_pw.Topsecret"}'],
    ['/VolumeDriver.Mount', '{"Name":"missing_pw.Topsecret","ID":"m"}'],
    ['/VolumeDriver.Create', '{"Name":"missing_pw.Topsecret","Opts":{"x":"1"}}'],
  ])('an unknown volume whose name holds a secret: %s says so without it', async (path, body) => {
    const r = await post(socketPath, path, `${body}\n`);
    expect(r.status).toBe(404);
    expect(r.json.Err).toBe('no such volume: missing_pw.***');
    expect(logLines.filter((l) => l.startsWith('info:'))).toHaveLength(1);
    expect(logLines.join('\n')).toContain('volume=missing_pw.***');
    expect(logLines.join('\n')).not.toContain('Topsecret');
  });
});

describe('secrets in volume names that are refused', () => {
  it.each([
    // Cut short at 80 characters: what is left of the secret is no longer it.
    ['too long to show whole', `${'x'.repeat(60)}_pw.Topsecret${'y'.repeat(20)}/z`],
  ])('a name %s says why without any of the secret', async (_, name) => {
    const r = await post(socketPath, '/VolumeDriver.Create', `${JSON.stringify({ Name: name, Opts: {} })}\n`);
    expect(r.status).toBe(400);
    expect(r.json.Err).toMatch(/^invalid volume name /);
    expect(r.json.Err).not.toMatch(/Top|secret/);
    expect(logLines.join('\n')).not.toMatch(/Top|secret/);
  });
});

describe('plugin request scheduling', () => {
  it('serializes requests on one volume and runs different volumes in parallel', async () => {
    driver.delayMs = 40;
    driver.maxActive.clear();
    driver.overlapSeen = false;
    const requests = [
      post(socketPath, '/VolumeDriver.Mount', '{"Name":"one","ID":"1"}\n'),
      post(socketPath, '/VolumeDriver.Mount', '{"Name":"one","ID":"2"}\n'),
      post(socketPath, '/VolumeDriver.Unmount', '{"Name":"one","ID":"1"}\n'),
      post(socketPath, '/VolumeDriver.Mount', '{"Name":"two","ID":"3"}\n'),
    ];
    const replies = await Promise.all(requests);
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(driver.maxActive.get('one')).toBe(1);
    expect(driver.overlapSeen).toBe(true);
    expect(
      driver.calls
        .filter((c) => c.args[0] === 'one')
        .map((c) => `${c.method}:${c.args[1]}`)
        .sort(),
    ).toEqual(['mount:1', 'mount:2', 'unmount:1']);
  });
});
