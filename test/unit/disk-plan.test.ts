import { describe, expect, it } from 'vitest';
import {
  dataPartitionBytes,
  minimumDiskBytes,
  planInitialisation,
  sgdiskLayoutArgs,
} from '../../src/core/disk-plan.js';
import { decodeMetadata, newMetadata } from '../../src/core/metadata.js';
import { parseQuery } from '../../src/core/query.js';

const HOST = { hostname: 'node1', machineId: 'abc' };
const UUIDS = {
  metadata: '11111111-1111-1111-1111-111111111111',
  data: '22222222-2222-2222-2222-222222222222',
};

function plan(query: string, wipe = false) {
  return planInitialisation({
    device: '/dev/loop5',
    sizeBytes: 2 ** 30,
    query: parseQuery(query, {}, { requireLabel: false }),
    host: HOST,
    wipe,
    partitionUuids: UUIDS,
  });
}

describe('planInitialisation', () => {
  it('partitions as the original did (sgdisk -o -n 1:1M:2M … -n 2:0:0)', () => {
    expect(sgdiskLayoutArgs('fast', '/dev/sdb')).toEqual([
      '-o',
      '-n',
      '1:1M:2M',
      '-t',
      '1:903b0d2d-812e-4029-89fa-a905b9cd80c1',
      '-c',
      '1:simple-metadata',
      '-n',
      '2:0:0',
      '-t',
      '2:0fc63daf-8483-4772-8e79-3d69d8477de4',
      '-c',
      '2:fast',
      '/dev/sdb',
    ]);
  });

  it('plans a blank disk: partition, re-read, metadata, wipe data, mkfs ext4', () => {
    const p = plan('label.fast');
    expect(p.steps.map((s) => s.kind)).toEqual(['run', 'reread-partitions', 'write-metadata', 'run', 'mkfs']);
    expect(p.filesystem).toBe('ext4');
    expect(p.metadataPartition).toBe('/dev/loop5p1');
    expect(p.dataPartition).toBe('/dev/loop5p2');
    const sgdisk = p.steps[0]!;
    expect(sgdisk.kind === 'run' && sgdisk.args).toContain(`2:${UUIDS.data}`);
    const meta = p.steps[2]!;
    expect(meta.kind === 'write-metadata' && decodeMetadata(meta.bytes)).toEqual(
      newMetadata({ hostname: 'node1', machineId: 'abc', label: 'fast', metadata: { filesystem: 'ext4' } }),
    );
  });

  it('wipes a disk that holds something first, and discards the old data', () => {
    const kinds = plan('label.fast', true).steps.map((s) => (s.kind === 'run' ? s.command : s.kind));
    expect(kinds).toEqual([
      'forget-partitions',
      'wipefs',
      'sgdisk',
      'sgdisk',
      'reread-partitions',
      'write-metadata',
      'wipefs',
      'blkdiscard',
      'mkfs',
    ]);
  });

  it('formats LUKS, makes the filesystem inside the mapping, and closes it', () => {
    const p = plan('label.fast_encryption-key.k_filesystem.xfs');
    expect(p.encrypted).toBe(true);
    const tail = p.steps.slice(-4);
    expect(tail.map((s) => s.kind)).toEqual(['luks-format', 'luks-open', 'mkfs', 'luks-close']);
    expect(tail[2]).toMatchObject({
      kind: 'mkfs',
      filesystem: 'xfs',
      device: `/dev/mapper/simple-${UUIDS.data}`,
    });
    const meta = p.steps.find((s) => s.kind === 'write-metadata')!;
    expect(meta.kind === 'write-metadata' && decodeMetadata(meta.bytes).encrypted).toBe(true);
  });

  it('labels a disk untyped when the query has no label', () => {
    expect(plan('filesystem.btrfs').label).toBe('untyped');
  });

  it('says for every step what state a failure leaves the disk in', () => {
    for (const step of plan('label.fast_encryption-key.k', true).steps) expect(step.ifFails).not.toBe('');
  });

  it('keeps unknown metadata keys of an earlier initialisation', () => {
    const p = planInitialisation({
      device: '/dev/sdb',
      sizeBytes: 2 ** 30,
      query: parseQuery('label.fast'),
      host: HOST,
      wipe: true,
      previous: newMetadata({ label: 'untyped', extra: [['future', 1]] }),
      partitionUuids: UUIDS,
    });
    expect(p.metadata.extra).toEqual([['future', 1]]);
    expect(p.metadataPartition).toBe('/dev/sdb1');
  });
});

describe('sizes', () => {
  it('leaves the rest of the disk to the data partition', () => {
    expect(dataPartitionBytes(64 * 2 ** 20)).toBe(64 * 2 ** 20 - 6144 * 512 - 33 * 512);
  });

  it('knows that xfs and LUKS need more room', () => {
    expect(minimumDiskBytes('xfs', false)).toBeGreaterThan(300 * 2 ** 20);
    expect(minimumDiskBytes('ext4', true) - minimumDiskBytes('ext4', false)).toBeGreaterThanOrEqual(
      16 * 2 ** 20,
    );
  });
});
