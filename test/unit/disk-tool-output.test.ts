/** Parsers of blkid and partx output, fed lines captured from the real tools. */
import { describe, expect, it } from 'vitest';
import { parseBlkidExport, readErrorReason } from '../../src/adapters/blkid.js';
import { parsePartxPairs } from '../../src/adapters/partx.js';
import {
  fitFileName,
  globMatches,
  isMapperName,
  mapperName,
  mapperOfSource,
  NAME_MAX,
  partitionName,
} from '../../src/core/names.js';

describe('parseBlkidExport', () => {
  it('reads KEY=value lines and undoes escaping', () => {
    const text =
      'DEVNAME=/dev/loop0p2\nUUID=fbf3a9e4\nTYPE=ext4\nUSAGE=filesystem\nPART_ENTRY_NAME=my\\ disk\\x21\n';
    expect(parseBlkidExport(text)).toEqual({
      DEVNAME: '/dev/loop0p2',
      UUID: 'fbf3a9e4',
      TYPE: 'ext4',
      USAGE: 'filesystem',
      PART_ENTRY_NAME: 'my disk!',
    });
  });
});

describe('readErrorReason', () => {
  it.each([
    ['blkid: error: /dev/vda: Input/output error\n', 'blkid: Input/output error'],
    ['blkid: error: /dev/loop0: Permission denied\n', 'blkid: Permission denied'],
    ['blkid: error: /dev/vda: Operation not permitted', 'blkid: Operation not permitted'],
    ['something else went wrong\n', 'blkid: something else went wrong'],
    ['', 'blkid failed'],
  ])('turns %j into %j', (stderr, reason) => {
    expect(readErrorReason(stderr)).toBe(reason);
  });
});

describe('parsePartxPairs', () => {
  it('reads partx -P lines', () => {
    const text =
      'NR="1" START="2048" SECTORS="2049" TYPE="903B0D2D-812E-4029-89FA-A905B9CD80C1" NAME="simple-metadata" UUID="0081D16D-D9DA-4900-B7AE-C46A4C5F4A50"\n' +
      'NR="2" START="6144" SECTORS="124895" TYPE="0fc63daf-8483-4772-8e79-3d69d8477de4" NAME="a\\x22b" UUID="a5b96d2b"\n';
    expect(parsePartxPairs(text)).toEqual([
      {
        number: 1,
        start: 2048,
        sectors: 2049,
        type: '903b0d2d-812e-4029-89fa-a905b9cd80c1',
        name: 'simple-metadata',
        uuid: '0081d16d-d9da-4900-b7ae-c46a4c5f4a50',
      },
      {
        number: 2,
        start: 6144,
        sectors: 124895,
        type: '0fc63daf-8483-4772-8e79-3d69d8477de4',
        name: 'a"b',
        uuid: 'a5b96d2b',
      },
    ]);
  });
});

describe('names', () => {
  it.each([
    ['sdb', 2, 'sdb2'],
    ['/dev/loop5', 1, 'loop5p1'],
    ['nvme0n1', 2, 'nvme0n1p2'],
    ['ubda', 2, 'ubda2'],
  ])('partition %s %d is %s', (disk, n, name) => {
    expect(partitionName(disk, n)).toBe(name);
  });

  it('names mappings after the data partition UUID', () => {
    expect(mapperName('A5B96D2B-D7D0')).toBe('simple-a5b96d2b-d7d0');
  });

  it('finds the mapping a mount reads through only in the mount sources it gives', () => {
    expect(mapperOfSource('/dev/mapper/simple-a5b96d2b-d7d0')).toBe('simple-a5b96d2b-d7d0');
    for (const source of [
      '/dev/mapper/vault',
      '/dev/loop0p2',
      '/dev/mapper/simple-a/b',
      'simple-a',
      '/dev/dm-0',
    ]) {
      expect(mapperOfSource(source), source).toBeUndefined();
    }
  });

  it.each([
    ['simple-a5b96d2b', true],
    ['vault_1.x', true],
    ['control', false],
    ['-x', false],
    ['a/b', false],
    ['', false],
  ])('%s is a mapping name luks-open and luks-close accept: %s', (name, ok) => {
    expect(isMapperName(name)).toBe(ok);
  });

  it.each([
    ['loop*', 'loop12', true],
    ['loop*', 'sda', false],
    ['loop1', 'loop12', false],
    ['sd[ab]', 'sdb', true],
    ['sd[!ab]', 'sdb', false],
    ['vd?', 'vdc', true],
    ['dm-*', 'dm-0', true],
    ['a.b', 'axb', false],
  ])('glob %s against %s is %s', (glob, name, result) => {
    expect(globMatches(glob, name)).toBe(result);
  });

  it('keeps a file name that fits, and shortens one that does not to distinct names that fit', () => {
    expect(fitFileName('cfg', '.log')).toBe('cfg.log');
    expect(fitFileName('v'.repeat(251), '.log')).toBe(`${'v'.repeat(251)}.log`);
    const a = fitFileName(`${'v'.repeat(300)}a`, '.json');
    const b = fitFileName(`${'v'.repeat(300)}b`, '.json');
    for (const name of [a, b]) {
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(NAME_MAX);
      expect(name).toMatch(/^v+-[0-9a-f]{16}\.json$/);
    }
    expect(a).not.toBe(b);
    expect(fitFileName(`${'v'.repeat(300)}a`, '.json')).toBe(a);
    expect(Buffer.byteLength(fitFileName('é'.repeat(200), '.log'))).toBeLessThanOrEqual(NAME_MAX);
  });
});
