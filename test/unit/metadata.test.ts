/**
 * Byte fixtures: the blobs below are what the original Go tool's
 * encoding/json writes for the same values (compact, fixed key order, HTML
 * characters escaped, map keys sorted), followed by one NUL.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeMetadata,
  encodeMetadata,
  goJsonString,
  METADATA_PARTITION_BYTES,
  MetadataError,
  newMetadata,
} from '../../src/core/metadata.js';

const PLAIN =
  '{"version":1,"hostname":"node1","machine_id":"5f1c8d2e9a7b4c3d8e6f0a1b2c3d4e5f","label":"fast","numbering":"","encrypted":false,"metadata":{}}\0';
const ENCRYPTED =
  '{"version":1,"hostname":"db\\u0026cache","machine_id":"","label":"slow","numbering":"3","encrypted":true,"metadata":{"a":"1","filesystem":"xfs","z":"\\u003cz\\u003e"}}\0';

describe('encodeMetadata', () => {
  it('writes the original layout byte for byte', () => {
    const m = newMetadata({
      hostname: 'node1',
      machineId: '5f1c8d2e9a7b4c3d8e6f0a1b2c3d4e5f',
      label: 'fast',
    });
    expect(encodeMetadata(m)).toEqual(Buffer.from(PLAIN, 'binary'));
  });

  it('escapes like Go and sorts the metadata map', () => {
    const m = newMetadata({
      hostname: 'db&cache',
      label: 'slow',
      numbering: '3',
      encrypted: true,
      metadata: { z: '<z>', filesystem: 'xfs', a: '1' },
    });
    expect(encodeMetadata(m).toString('binary')).toBe(ENCRYPTED);
  });

  it('escapes control characters and line separators as Go does', () => {
    expect(goJsonString('a\nb\tc\r"\\')).toBe('"a\\nb\\tc\\r\\"\\\\"');
    expect(goJsonString('\u0001\b\f')).toBe('"\\u0001\\u0008\\u000c"');
    expect(goJsonString('\u2028\u2029é')).toBe('"\\u2028\\u2029é"');
  });

  it('ends with exactly one NUL', () => {
    const bytes = encodeMetadata(newMetadata({ label: 'x' }));
    expect(bytes.at(-1)).toBe(0);
    expect(bytes.indexOf(0)).toBe(bytes.length - 1);
  });

  it('refuses a blob larger than the metadata partition', () => {
    const m = newMetadata({ label: 'x', metadata: { big: 'a'.repeat(METADATA_PARTITION_BYTES) } });
    expect(() => encodeMetadata(m)).toThrow(MetadataError);
  });
});

describe('decodeMetadata', () => {
  it('reads the fixtures back', () => {
    expect(decodeMetadata(Buffer.from(PLAIN, 'binary'))).toEqual(
      newMetadata({ hostname: 'node1', machineId: '5f1c8d2e9a7b4c3d8e6f0a1b2c3d4e5f', label: 'fast' }),
    );
    const m = decodeMetadata(Buffer.from(ENCRYPTED, 'binary'));
    expect(m.hostname).toBe('db&cache');
    expect(m.encrypted).toBe(true);
    expect(m.metadata).toEqual({ a: '1', filesystem: 'xfs', z: '<z>' });
  });

  it('reads only up to the first NUL, ignoring what follows in the partition', () => {
    const partition = Buffer.alloc(4096, 0x41);
    Buffer.from(PLAIN, 'binary').copy(partition);
    expect(decodeMetadata(partition).label).toBe('fast');
  });

  it('keeps unknown keys, in order, and writes them back after the known ones', () => {
    const text = '{"future":{"b":2,"a":[1,"x"]},"version":1,"label":"fast","zeta":null,"encrypted":false}\0';
    const m = decodeMetadata(Buffer.from(text));
    expect(m.extra).toEqual([
      ['future', { b: 2, a: [1, 'x'] }],
      ['zeta', null],
    ]);
    expect(encodeMetadata(m).toString()).toBe(
      '{"version":1,"hostname":"","machine_id":"","label":"fast","numbering":"","encrypted":false,"metadata":{},"future":{"b":2,"a":[1,"x"]},"zeta":null}\0',
    );
  });

  it('round-trips what it writes', () => {
    const m = newMetadata({
      hostname: 'h',
      machineId: 'm',
      label: 'l',
      numbering: '7',
      metadata: { k: 'v' },
    });
    expect(decodeMetadata(encodeMetadata(m))).toEqual(m);
  });

  it('accepts the Go struct spellings: "Version", null strings and a nil map', () => {
    const m = decodeMetadata(Buffer.from('{"Version":1,"hostname":null,"label":"a","metadata":null}\0'));
    expect(m).toEqual(newMetadata({ label: 'a' }));
  });

  it.each<[string, RegExp]>([
    ['{"label":"a"}', /no NUL/],
    ['\0', /empty/],
    ['{"label":\0', /not JSON/],
    ['[1,2]\0', /not a JSON object/],
    ['{"version":"1"}\0', /'version' is not a whole number/],
    ['{"label":5}\0', /'label' is not a string/],
    ['{"encrypted":"yes"}\0', /'encrypted' is not a boolean/],
    ['{"metadata":{"a":1}}\0', /entry 'a' is not a string/],
    ['{"metadata":[]}\0', /'metadata' is not an object/],
  ])('rejects %j', (text, message) => {
    expect(() => decodeMetadata(Buffer.from(text))).toThrow(message);
  });

  it('reports a blank (all zero) partition as empty', () => {
    expect(() => decodeMetadata(Buffer.alloc(METADATA_PARTITION_BYTES))).toThrow(MetadataError);
  });
});
