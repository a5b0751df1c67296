/**
 * Throws 1,000 malformed requests (seeded, so a failure can be replayed) at a
 * running plugin server over its unix socket: garbage bytes, broken HTTP,
 * unknown endpoints, bad JSON, wrong types, hostile names, missing or bad
 * options, oversized and deeply nested bodies, wrong methods. Every one that
 * reaches HTTP must get a non-200 `{"Err"}` reply; afterwards the server is
 * still up and answers a normal volume lifecycle correctly.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startPluginProcess } from './plugin-fixture.js';

const SEED = Number(process.env.VOLKIT_FUZZ_SEED ?? 20261122);
const COUNT = 1000;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  label: string;
  bytes: Buffer;
  /** Expected status when an HTTP reply comes back; undefined = any non-200. */
  status?: number;
  /** Garbage below HTTP: the server may answer 400 or just close. */
  raw?: boolean;
}

function http(method: string, path: string, body: string | Buffer, extra = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const head =
    `${method} ${path} HTTP/1.1\r\nHost: plugin\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n` +
    `Content-Length: ${b.length}\r\nConnection: close\r\n${extra}\r\n`;
  return Buffer.concat([Buffer.from(head), b]);
}

const ENDPOINTS = [
  '/VolumeDriver.Create',
  '/VolumeDriver.Remove',
  '/VolumeDriver.Mount',
  '/VolumeDriver.Path',
  '/VolumeDriver.Unmount',
  '/VolumeDriver.Get',
];

function generate(rand: () => number): Case[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const word = (n: number, chars = 'abcxyz019-_.') =>
    Array.from({ length: n }, () => chars[Math.floor(rand() * chars.length)]).join('');
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  const valid = JSON.stringify({ Name: 'fuzz', Opts: { hosts: '127.0.0.1:1', path: '/x' } });
  const generators: (() => Case)[] = [
    () => ({ label: 'random bytes', bytes: bytes(1 + Math.floor(rand() * 300)), raw: true }),
    () => ({ label: 'broken request line', bytes: Buffer.from(`${word(5)} ${word(8)}\r\n\r\n`), raw: true }),
    () => ({
      label: 'header with control characters',
      bytes: Buffer.from(`POST /Plugin.Activate HTTP/1.1\r\nX-${word(3)}: a\u0001b\r\n\r\n`),
      raw: true,
    }),
    () => ({
      label: 'bad chunked body',
      bytes: Buffer.from(
        `POST /VolumeDriver.Get HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n${word(4)}\r\n0\r\n\r\n`,
      ),
      raw: true,
    }),
    () => ({ label: 'unknown endpoint', bytes: http('POST', `/${word(12)}`, '{}'), status: 404 }),
    () => ({
      label: 'unknown VolumeDriver method',
      bytes: http('POST', `/VolumeDriver.${word(6)}`, '{}'),
      status: 404,
    }),
    () => ({
      label: 'truncated JSON',
      bytes: http('POST', pick(ENDPOINTS), valid.slice(0, 1 + Math.floor(rand() * (valid.length - 2)))),
      status: 400,
    }),
    () => ({
      label: 'JSON garbage',
      bytes: http('POST', pick(ENDPOINTS), `{${word(20, '{}[]":,tfn01 ')}`),
      status: 400,
    }),
    () => ({ label: 'binary body', bytes: http('POST', pick(ENDPOINTS), bytes(64)), status: 400 }),
    () => ({
      label: 'non-object JSON',
      bytes: http('POST', pick(ENDPOINTS), pick(['[]', '"x"', '42', 'true', 'null', '[{"Name":"a"}]'])),
      status: 400,
    }),
    () => ({
      label: 'Name of the wrong type',
      bytes: http(
        'POST',
        pick(ENDPOINTS),
        JSON.stringify({ Name: pick([1, null, true, [], {}, ['a'], { a: 1 }]) }),
      ),
      status: 400,
    }),
    () => {
      const name = pick([
        `../${word(4)}`,
        `${word(3)}/${word(3)}`,
        `${word(2)}..${word(2)}`,
        '/',
        '..',
        `.${word(4)}`,
        `-${word(4)}`,
        `${word(3)} ${word(3)}`,
        `${word(3)}\u0000`,
        `é${word(3)}`,
        'x'.repeat(300 + Math.floor(rand() * 500)),
        '',
      ]);
      return {
        label: 'hostile name',
        bytes: http('POST', pick(ENDPOINTS), JSON.stringify({ Name: name, ID: 'i' })),
        status: 400,
      };
    },
    () => ({
      label: 'Mount/Unmount with a bad ID',
      bytes: http(
        'POST',
        pick(['/VolumeDriver.Mount', '/VolumeDriver.Unmount']),
        JSON.stringify({ Name: `fz${word(5)}`, ID: pick([undefined, '', 7, null, ['x'], 'i'.repeat(400)]) }),
      ),
      status: 400,
    }),
    () => ({
      label: 'Create with bad options',
      bytes: http(
        'POST',
        '/VolumeDriver.Create',
        JSON.stringify({
          Name: `fz${word(6)}`,
          // Never a reachable host: no valid host:port outside 127.0.0.1 is ever generated.
          Opts: pick([
            null,
            {},
            { path: '/a' },
            { hosts: word(8, 'abc.') },
            { hosts: '127.0.0.1' },
            { hosts: '127.0.0.1:99999' },
            { hosts: '127.0.0.1:1', mode: word(4) },
            { hosts: '127.0.0.1:1', path: word(4) },
            { hosts: '127.0.0.1:1', auth: 'nocolon' },
            { hosts: '127.0.0.1:1', [word(5)]: 'x' },
            { hosts: '127.0.0.1:1', host: '127.0.0.1:2' },
            { hosts: 1 },
            { hosts: ['127.0.0.1:1'] },
            JSON.parse('{"hosts":"127.0.0.1:1","__proto__":"x"}'),
            [],
            'opts',
          ]),
        }),
      ),
      status: 400,
    }),
    () => ({
      label: 'oversized body',
      bytes: http('POST', '/VolumeDriver.Create', `{"Name":"big","Opts":{"a":"${'x'.repeat(70_000)}"}}`),
      status: 413,
    }),
    () => ({
      label: 'deeply nested JSON',
      bytes: http('POST', pick(ENDPOINTS), `${'['.repeat(20_000)}${']'.repeat(20_000)}`),
      status: 400,
    }),
    () => ({
      label: 'wrong method',
      bytes: http(pick(['GET', 'PUT', 'DELETE', 'PATCH']), pick(ENDPOINTS), '{}'),
      status: 405,
    }),
    () => ({
      label: 'volume that does not exist',
      bytes: http(
        'POST',
        pick(ENDPOINTS.slice(1)),
        JSON.stringify({ Name: `nx${word(6, 'abcxyz019')}`, ID: 'i' }),
      ),
      status: 404,
    }),
  ];
  return Array.from({ length: COUNT }, (_, i) => generators[i % generators.length]!());
}

interface RawReply {
  status?: number;
  body: string;
}

function send(socket: string, bytes: Buffer): Promise<RawReply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect({ path: socket });
    const finish = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      const split = text.indexOf('\r\n\r\n');
      resolve({ status: m ? Number(m[1]) : undefined, body: split >= 0 ? text.slice(split + 4) : '' });
    };
    s.on('data', (d) => chunks.push(d));
    s.on('close', finish);
    s.on('error', () => {});
    s.setTimeout(10_000, () => s.destroy());
    s.write(bytes, () => s.end());
  });
}

/** What is wrong with `reply` to `c`, or undefined when it is a proper refusal. */
function verdict(c: Case, reply: RawReply): string | undefined {
  if (reply.status === undefined) return c.raw ? undefined : 'no HTTP reply';
  if (reply.status === 200) return 'answered 200';
  if (c.status !== undefined && reply.status !== c.status) {
    return `status ${reply.status}, expected ${c.status}: ${reply.body.slice(0, 200)}`;
  }
  let json: unknown;
  try {
    json = JSON.parse(reply.body);
  } catch {
    return `body is not JSON: ${reply.body.slice(0, 200)}`;
  }
  const err = (json as { Err?: unknown }).Err;
  if (Object.keys(json as object).join() !== 'Err' || typeof err !== 'string' || err === '') {
    return `body is not {"Err": "..."}: ${reply.body.slice(0, 200)}`;
  }
  return undefined;
}

describe('plugin server under malformed requests', () => {
  it(`answers ${COUNT} malformed requests with {"Err"} and keeps serving (seed ${SEED})`, async () => {
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    const cases = generate(prng(SEED));
    const failures: string[] = [];
    for (let i = 0; i < cases.length; i += 25) {
      const batch = cases.slice(i, i + 25);
      const replies = await Promise.all(batch.map((c) => send(plugin.socket, c.bytes)));
      replies.forEach((reply, j) => {
        const problem = verdict(batch[j]!, reply);
        if (problem) failures.push(`#${i + j} ${batch[j]!.label}: ${problem}`);
      });
    }
    expect(failures).toEqual([]);

    // Still alive and still correct.
    expect(plugin.pid()).toBeDefined();
    expect(await plugin.post('/Plugin.Activate', '')).toEqual({
      status: 200,
      json: { Implements: ['VolumeDriver'] },
    });
    const create = await plugin.post('/VolumeDriver.Create', {
      Name: 'after',
      Opts: { hosts: '127.0.0.1:2181' },
    });
    expect(create).toEqual({ status: 200, json: { Err: '' } });
    const get = await plugin.post('/VolumeDriver.Get', { Name: 'after' });
    expect(get.status).toBe(200);
    expect(get.json.Volume).toMatchObject({
      Name: 'after',
      Status: { hosts: '127.0.0.1:2181', path: '/', mounts: 0 },
    });
    expect(await plugin.post('/VolumeDriver.List', {})).toEqual({
      status: 200,
      json: { Volumes: [{ Name: 'after' }], Err: '' },
    });
    expect(await plugin.post('/VolumeDriver.Remove', { Name: 'after' })).toEqual({
      status: 200,
      json: { Err: '' },
    });
    expect(plugin.logs()).not.toContain('internal error');
  });
});
