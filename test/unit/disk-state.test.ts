import { describe, expect, it } from 'vitest';
import {
  classifyDisk,
  type DiskFacts,
  MIN_DISK_BYTES,
  NO_PARTITIONS,
  rejectSharedIds,
} from '../../src/core/disk-state.js';
import { newMetadata } from '../../src/core/metadata.js';
import { DATA_PARTITION_TYPE, METADATA_PARTITION_TYPE } from '../../src/core/names.js';

const HOST = { hostname: 'node1', machineId: 'abc' };
const GIB = 2 ** 30;

function facts(overrides: Partial<DiskFacts> = {}): DiskFacts {
  return {
    name: 'loop5',
    device: '/dev/loop5',
    sizeBytes: GIB,
    readOnly: false,
    partitionable: true,
    signature: {},
    ambiguous: false,
    partitions: [],
    kernelPartitions: [],
    mountPoints: [],
    holders: [],
    busy: false,
    ...overrides,
  };
}

const META = {
  number: 1,
  start: 2048,
  sectors: 2049,
  type: METADATA_PARTITION_TYPE,
  name: 'simple-metadata',
  uuid: 'u1',
};
const DATA = {
  number: 2,
  start: 6144,
  sectors: 2000000,
  type: DATA_PARTITION_TYPE,
  name: 'fast',
  uuid: 'u2',
};

function ours(
  overrides: Partial<DiskFacts> = {},
  meta = newMetadata({ hostname: 'node1', machineId: 'abc', label: 'fast' }),
) {
  return facts({
    signature: { PTTYPE: 'gpt' },
    partitions: [META, DATA],
    metadata: { ok: true, value: meta },
    dataSignature: { TYPE: 'ext4', USAGE: 'filesystem' },
    ...overrides,
  });
}

describe('classifyDisk', () => {
  it('calls a disk without table or signature blank', () => {
    expect(classifyDisk(facts(), HOST)).toMatchObject({ state: 'blank', inUse: false, mounted: false });
  });

  it.each<[string, Partial<DiskFacts>, RegExp]>([
    [
      'filesystem without a table',
      { signature: { TYPE: 'ext4', USAGE: 'filesystem' } },
      /has a filesystem \(ext4\) and no partition table/,
    ],
    [
      'bare LUKS',
      { signature: { TYPE: 'crypto_LUKS', USAGE: 'crypto' } },
      /LUKS container without a partition table/,
    ],
    ['swap signature', { signature: { TYPE: 'swap', USAGE: 'other' } }, /has a swap signature \(other\)/],
    [
      'dos table',
      { signature: { PTTYPE: 'dos' }, partitions: [{ ...DATA, type: '0x83' }] },
      /foreign partition table \(dos\)/,
    ],
    ['empty GPT', { signature: { PTTYPE: 'gpt' } }, /empty GPT/],
    [
      'GPT without our partition',
      { signature: { PTTYPE: 'gpt' }, partitions: [DATA] },
      /without a simple-metadata partition \(1 partition\)/,
    ],
    [
      'metadata partition of the wrong type',
      { signature: { PTTYPE: 'gpt' }, partitions: [{ ...META, type: DATA_PARTITION_TYPE }, DATA] },
      /without a simple-metadata partition \(2 partitions\)/,
    ],
    [
      'two metadata partitions',
      { signature: { PTTYPE: 'gpt' }, partitions: [META, { ...META, number: 2 }, DATA] },
      /has 2 simple-metadata partitions/,
    ],
    ['no data partition', { signature: { PTTYPE: 'gpt' }, partitions: [META] }, /no data partition/],
    [
      'two data partitions',
      { signature: { PTTYPE: 'gpt' }, partitions: [META, DATA, { ...DATA, number: 3 }] },
      /2 partitions besides simple-metadata/,
    ],
    ['conflicting signatures', { ambiguous: true }, /conflicting signatures/],
    ['too small', { sizeBytes: MIN_DISK_BYTES - 512 }, /too small \(16.0 MiB|too small/],
    ['read-only', { readOnly: true }, /read-only/],
    ['blank but in use', { holders: ['dm-0'] }, /in use; held by dm-0/],
  ])('rejects a disk with %s', (_, f, reason) => {
    const report = classifyDisk(facts(f), HOST);
    expect(report.state).toBe('rejected');
    expect(report.state === 'rejected' && report.reason).toMatch(reason);
  });

  // blkid -p exits 2 both for "nothing found" and for a device it cannot read: the latter is never blank.
  it.each<[string, Partial<DiskFacts>]>([
    ['no signature seen', {}],
    ['a partition table seen before the error', { signature: { PTTYPE: 'gpt' }, partitions: [META, DATA] }],
    ['a read-only, too small disk', { readOnly: true, sizeBytes: 1024 }],
  ])('rejects a disk that cannot be read (%s), with the reason', (_, f) => {
    const r = classifyDisk(facts({ ...f, readError: 'blkid: Input/output error' }), HOST);
    expect(r).toMatchObject({
      state: 'rejected',
      reason: 'cannot be read: blkid: Input/output error',
      readError: 'blkid: Input/output error',
    });
  });

  it('adds the mount point to the reason of a mounted foreign disk', () => {
    const r = classifyDisk(
      facts({ signature: { TYPE: 'ext4', USAGE: 'filesystem' }, mountPoints: ['/mnt/x'] }),
      HOST,
    );
    expect(r).toMatchObject({ state: 'rejected', mounted: true, inUse: true });
    expect(r.state === 'rejected' && r.reason).toBe(
      'has a filesystem (ext4) and no partition table; mounted at /mnt/x',
    );
  });

  it('rejects our layout with unreadable metadata, saying why', () => {
    const r = classifyDisk(ours({ metadata: { ok: false, error: 'no NUL byte ends the metadata' } }), HOST);
    expect(r.state === 'rejected' && r.reason).toMatch(/unreadable simple-metadata partition: no NUL/);
  });

  it('says how to finish an initialisation that stopped before the metadata was written', () => {
    const r = classifyDisk(
      ours({ metadata: { ok: false, error: 'the metadata partition is empty', empty: true } }),
      HOST,
    );
    expect(r.state === 'rejected' && r.reason).toMatch(
      /empty simple-metadata partition: its initialisation did not finish \(simplectl initialize-disk --force \/dev\/\S+ starts it again\)/,
    );
  });

  it('reads an initialised disk: label from the partition name, owner, filesystem, partitions', () => {
    const r = classifyDisk(ours({ kernelPartitions: ['loop5p1', 'loop5p2'] }), HOST);
    expect(r).toMatchObject({
      state: 'initialised',
      label: 'fast',
      hostname: 'node1',
      machineId: 'abc',
      thisHost: true,
      encrypted: false,
      filesystem: 'ext4',
      warnings: [],
      metadataPartition: {
        number: 1,
        device: '/dev/loop5p1',
        present: true,
        offsetBytes: 1048576,
        sizeBytes: 2049 * 512,
      },
      dataPartition: {
        number: 2,
        device: '/dev/loop5p2',
        present: true,
        uuid: 'u2',
        offsetBytes: 6144 * 512,
      },
    });
  });

  it('names partitions of sdX disks without a p', () => {
    const r = classifyDisk(ours({ name: 'sdb', device: '/dev/sdb' }), HOST);
    expect(r.state === 'initialised' && r.dataPartition.device).toBe('/dev/sdb2');
    expect(r.state === 'initialised' && r.dataPartition.present).toBe(false);
  });

  it('marks a disk of another host', () => {
    const r = classifyDisk(
      ours({}, newMetadata({ hostname: 'other', machineId: 'zzz', label: 'fast' })),
      HOST,
    );
    expect(r).toMatchObject({ state: 'initialised', thisHost: false, hostname: 'other' });
  });

  it('reads an encrypted disk: LUKS data, filesystem from metadata', () => {
    const meta = newMetadata({
      hostname: 'node1',
      machineId: 'abc',
      label: 'fast',
      encrypted: true,
      metadata: { filesystem: 'xfs' },
    });
    const r = classifyDisk(ours({ dataSignature: { TYPE: 'crypto_LUKS', USAGE: 'crypto' } }, meta), HOST);
    expect(r).toMatchObject({ state: 'initialised', encrypted: true, filesystem: 'xfs', warnings: [] });
  });

  it('warns when metadata and disk disagree', () => {
    const meta = newMetadata({ hostname: 'node1', machineId: 'abc', label: 'slow', encrypted: true });
    const r = classifyDisk(ours({ dataSignature: {} }, meta), HOST);
    expect(r.state === 'initialised' && r.warnings).toEqual([
      "metadata says label 'slow' but the data partition is named 'fast'",
      'metadata says encrypted but the data partition holds no LUKS header',
    ]);
    expect(r.state === 'initialised' && r.filesystem).toBeNull();
  });

  it('rejects a blank device the kernel keeps no partitions on', () => {
    const r = classifyDisk(facts({ name: 'zram1', device: '/dev/zram1', partitionable: false }), HOST);
    expect(r).toMatchObject({ state: 'rejected', reason: NO_PARTITIONS });
  });

  it('keeps a mounted initialised disk initialised, in use', () => {
    const r = classifyDisk(ours({ mountPoints: ['/srv/a'] }), HOST);
    expect(r).toMatchObject({ state: 'initialised', mounted: true, inUse: true, mountPoints: ['/srv/a'] });
  });
});

describe('rejectSharedIds', () => {
  const at = (n: number, overrides: Partial<DiskFacts> = {}) =>
    classifyDisk(ours({ name: `loop${n}`, device: `/dev/loop${n}`, ...overrides }), HOST);

  it('rejects every disk whose data partition UUID another one has, naming the others', () => {
    const other = at(7, { partitions: [META, { ...DATA, uuid: 'u9' }] });
    const blank = classifyDisk(facts({ name: 'loop8', device: '/dev/loop8' }), HOST);
    const out = rejectSharedIds([at(5), at(6, { mountPoints: ['/srv/a'] }), other, blank, at(4)]);
    expect(out.map((d) => d.state)).toEqual(['rejected', 'rejected', 'initialised', 'blank', 'rejected']);
    const why = (others: string) =>
      `shares its data partition's UUID u2 with ${others}: a copy of one disk (dd, a cloned image) or a second path to it; detach all but one, or give a copy new UUIDs with simplectl initialize-disk --force (which erases it)`;
    expect(out[0]).toMatchObject({
      device: '/dev/loop5',
      reason: why('/dev/loop6, /dev/loop4'),
      sharedId: 'u2',
    });
    // A mounted one says where, as any rejected disk in use does.
    expect(out[1]).toMatchObject({
      reason: `${why('/dev/loop5, /dev/loop4')}; mounted at /srv/a`,
      mounted: true,
      inUse: true,
    });
    expect(out[2]).toBe(other);
    expect(out[3]).toBe(blank);
  });

  it('compares UUIDs whatever their case', () => {
    const upper = at(6, { partitions: [META, { ...DATA, uuid: 'U2' }] });
    expect(rejectSharedIds([at(5), upper]).map((d) => d.state)).toEqual(['rejected', 'rejected']);
  });
});
