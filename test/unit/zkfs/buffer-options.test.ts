import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/core/errors.js';
import { FsError } from '../../../src/core/zkfs/errors.js';
import { FileBuffer } from '../../../src/core/zkfs/file-buffer.js';
import {
  parseAuth,
  parseBusyPoll,
  parseConnectTimeout,
  parseFuseOptions,
  parseHosts,
  parseMaxFileSize,
  resolveMountOptions,
} from '../../../src/core/zkfs/mount-options.js';
import { setDataBytes } from '../../../src/core/zkfs/zk-ops.js';

function fsCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof FsError ? error.code : 'other';
  }
  return undefined;
}

describe('file buffer', () => {
  it('writes at any offset, fills gaps with NUL bytes and keeps binary data', () => {
    const b = new FileBuffer(Buffer.from('abc'), 100);
    b.write(Buffer.from([0, 255, 10]), 1);
    expect(b.content()).toEqual(Buffer.from([97, 0, 255, 10]));
    b.write(Buffer.from('z'), 8);
    expect(b.content()).toEqual(Buffer.from([97, 0, 255, 10, 0, 0, 0, 0, 122]));
    expect(b.read(7, 10)).toEqual(Buffer.from([0, 122]));
    expect(b.read(50, 10)).toEqual(Buffer.alloc(0));
  });

  it('truncates down and up', () => {
    const b = new FileBuffer(Buffer.from('hello'), 100);
    b.truncate(2);
    expect(b.content().toString()).toBe('he');
    b.truncate(4);
    expect(b.content()).toEqual(Buffer.from([104, 101, 0, 0]));
  });

  it('refuses to grow past the limit and leaves the content untouched', () => {
    const b = new FileBuffer(Buffer.from('12345'), 8);
    expect(fsCode(() => b.write(Buffer.from('6789'), 5))).toBe('EFBIG');
    expect(fsCode(() => b.truncate(9))).toBe('EFBIG');
    expect(b.content().toString()).toBe('12345');
    b.write(Buffer.from('678'), 5);
    expect(b.length).toBe(8);
  });

  it('never writes into the buffer it was opened or reset with, whatever is done to the file', () => {
    const initial = Buffer.from('hello world');
    const b = new FileBuffer(initial, 100);
    b.truncate(5);
    b.write(Buffer.from('!'), 7);
    expect(b.content()).toEqual(Buffer.from('hello\0\0!'));
    expect(initial.toString()).toBe('hello world');
    const fresh = Buffer.from('server copy');
    b.reset(fresh);
    expect(b.read(0, 6).toString()).toBe('server');
    b.truncate(20);
    b.write(Buffer.from('S'), 0);
    expect(b.content().toString()).toBe(`Server copy${'\0'.repeat(9)}`);
    expect(fresh.toString()).toBe('server copy');
  });

  it('keeps content read from the server that is larger than its limit when it changes', () => {
    const b = new FileBuffer(Buffer.alloc(10, 'a'), 10);
    b.reset(Buffer.alloc(50, 'b'));
    b.truncate(8);
    expect(b.content()).toEqual(Buffer.alloc(8, 'b'));
    b.reset(Buffer.alloc(50, 'c'));
    b.write(Buffer.from('x'), 0);
    expect(b.content()).toEqual(Buffer.concat([Buffer.from('x'), Buffer.alloc(49, 'c')]));
    expect(() => b.write(Buffer.from('x'), 49)).toThrow(/exceeds the 10-byte limit/);
  });

  it('stays linear over many small appends', () => {
    const b = new FileBuffer(Buffer.alloc(0), 1 << 20);
    for (let i = 0; i < 4096; i++) b.write(Buffer.from([i & 255]), i);
    expect(b.length).toBe(4096);
    expect(b.read(4095, 1)[0]).toBe(255);
  });
});

describe('mount options', () => {
  it('parses connection strings and insists on ports', () => {
    expect(parseHosts('zk1:2181,10.0.0.2:2182')).toEqual([
      { host: 'zk1', port: 2181 },
      { host: '10.0.0.2', port: 2182 },
    ]);
    // The client library splits hosts at ':': an IPv6 address would never connect.
    expect(() => parseHosts('zk1:2181,[::1]:2183')).toThrow(
      "'[::1]:2183' in HOSTS is an IPv6 address, which the ZooKeeper client cannot connect to; give a host name that resolves to it",
    );
    expect(() => parseHosts('zk1')).toThrow(/ports are required/);
    expect(() => parseHosts('zk1:2181,zk2')).toThrow(/'zk2'/);
    expect(() => parseHosts('zk1:99999')).toThrow(/out of range/);
    expect(() => parseHosts('zk1:2181/app')).toThrow(/PATH argument/);
    expect(() => parseHosts('')).toThrow(UsageError);
  });

  it('splits digest credentials at the first colon', () => {
    expect(parseAuth('user:pa:ss\n')).toEqual({ user: 'user', password: 'pa:ss' });
    expect(() => parseAuth('nocolon')).toThrow(/user:password/);
    expect(() => parseAuth(':pw')).toThrow(UsageError);
    expect(parseAuth('user:pw\r\n')).toEqual({ user: 'user', password: 'pw' });
    // The daemon reads one line of credentials: the rest would be lost without a word.
    expect(() => parseAuth('user:pw\nmore')).toThrow('--auth must be one line');
    expect(() => parseAuth('user:p\rw')).toThrow('--auth must be one line');
  });

  it('takes a connect timeout up to a day, which timers can hold', () => {
    expect(parseConnectTimeout('0.5')).toBe(0.5);
    expect(parseConnectTimeout(86_400)).toBe(86_400);
    expect(() => parseConnectTimeout('3000000')).toThrow(
      "--connect-timeout '3000000' is not a positive number of seconds up to 86400",
    );
  });

  it('accepts sizes with units up to what one ZooKeeper request carries', () => {
    expect(parseMaxFileSize('512K')).toBe(512_000);
    expect(parseMaxFileSize('1048575')).toBe(1048575);
    expect(() => parseMaxFileSize('1Mi')).toThrow(/out of range/);
    expect(() => parseMaxFileSize('2M')).toThrow(/out of range/);
    expect(() => parseMaxFileSize('lots')).toThrow(/--max-file-size/);
  });

  it('takes --busy-poll as whole microseconds, 0 meaning off', () => {
    expect(parseBusyPoll('0')).toBe(0);
    expect(parseBusyPoll(' 250 ')).toBe(250);
    expect(parseBusyPoll(10_000)).toBe(10_000);
    for (const bad of ['', '-1', '1.5', '50us', '10001', 'fast']) {
      expect(() => parseBusyPoll(bad), bad).toThrow(/--busy-poll '.*' is not a whole number of microseconds/);
    }
  });

  it('knows the -o options it supports and refuses the rest', () => {
    expect(parseFuseOptions(['allow_other,ro', 'allow_other'])).toEqual(['allow_other', 'ro']);
    expect(parseFuseOptions(['noexec,nosuid'])).toEqual(['noexec', 'nosuid']);
    expect(() => parseFuseOptions(['exec'])).toThrow(/-o exec is not supported/);
  });

  it('fills in every default once', () => {
    expect(resolveMountOptions({ hosts: '127.0.0.1:2181', path: '/app/' }, { uid: 5, gid: 6 })).toEqual({
      hosts: [{ host: '127.0.0.1', port: 2181 }],
      connectString: '127.0.0.1:2181',
      path: '/app',
      mode: 'hybrid',
      uid: 5,
      gid: 6,
      umask: 0o022,
      maxFileSize: 1048575,
      busyPollUs: 100,
      fuseOptions: [],
      readOnly: false,
      ioUring: true,
    });
    const r = resolveMountOptions(
      { hosts: 'a:1', path: '/', mode: 'FILE', umask: '077', uid: '0', options: ['ro'] },
      { uid: 5, gid: 6 },
    );
    expect(r).toMatchObject({ mode: 'file', umask: 0o077, uid: 0, readOnly: true, fuseOptions: [] });
    expect(() => resolveMountOptions({ hosts: 'a:1', path: '/', mode: 'tree' }, { uid: 0, gid: 0 })).toThrow(
      /--mode 'tree'/,
    );
    expect(() => resolveMountOptions({ hosts: 'a:1', path: '/', umask: '999' }, { uid: 0, gid: 0 })).toThrow(
      /--umask/,
    );
  });
});

describe('request sizes', () => {
  it('matches what a ZooKeeper 3.8 server accepts (measured: 1048546 data bytes at a 9-byte path)', () => {
    expect(setDataBytes('/b1048546', 1048546)).toBe(1048575);
  });
});
