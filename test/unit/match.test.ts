import { describe, expect, it } from 'vitest';
import {
  type BlankDisk,
  BUSY_USAGE,
  type DiskReport,
  type InitialisedDisk,
  type RejectedDisk,
} from '../../src/core/disk-state.js';
import { matchDisks } from '../../src/core/match.js';
import { newMetadata } from '../../src/core/metadata.js';
import { parseQuery } from '../../src/core/query.js';

const HOST = { hostname: 'node1', machineId: 'abc' };
const GIB = 2 ** 30;

const common = (name: string, sizeBytes = 10 * GIB) => ({
  device: `/dev/${name}`,
  name,
  sizeBytes,
  mounted: false,
  mountPoints: [] as string[],
  inUse: false,
  usage: null,
  holders: [] as string[],
  assignment: null,
});

function blank(name: string, size?: number): BlankDisk {
  return { ...common(name, size), state: 'blank' };
}

function rejected(name: string, reason: string): RejectedDisk {
  return { ...common(name), state: 'rejected', reason };
}

function disk(name: string, label: string, o: Partial<InitialisedDisk> = {}): InitialisedDisk {
  const part = (n: number) => ({
    number: n,
    device: `/dev/${name}p${n}`,
    present: true,
    uuid: `${name}-${n}`,
    name: label,
    offsetBytes: 0,
    sizeBytes: 0,
  });
  return {
    ...common(name),
    state: 'initialised',
    label,
    hostname: 'node1',
    machineId: 'abc',
    numbering: '',
    thisHost: true,
    encrypted: false,
    filesystem: 'ext4',
    metadata: newMetadata({ label }),
    metadataPartition: part(1),
    dataPartition: part(2),
    warnings: [],
    ...o,
  };
}

function names(list: readonly { name: string }[]): string[] {
  return list.map((d) => d.name);
}

function why(result: ReturnType<typeof matchDisks>, name: string): string[] {
  return result.rejected.find((r) => r.disk.name === name)?.reasons ?? [];
}

describe('matchDisks', () => {
  it('takes every initialised disk of the label, in natural device order', () => {
    const disks: DiskReport[] = [
      disk('sdc', 'fast'),
      disk('sda10', 'fast'),
      disk('sda2', 'fast'),
      disk('sdb', 'slow'),
    ];
    const r = matchDisks(parseQuery('label.fast'), disks, HOST);
    expect(names(r.chosen)).toEqual(['sda2', 'sda10', 'sdc']);
    expect(r.chosen.every((d) => d.action === 'use')).toBe(true);
    expect(why(r, 'sdb')).toEqual(["label is 'slow', not 'fast'"]);
    expect(r.satisfied).toBe(true);
  });

  it('caps at max-disks and lists the rest as spare', () => {
    const r = matchDisks(
      parseQuery('label.fast_max-disks.2'),
      [disk('a', 'fast'), disk('b', 'fast'), disk('c', 'fast')],
      HOST,
    );
    expect(names(r.chosen)).toEqual(['a', 'b']);
    expect(names(r.spare)).toEqual(['c']);
  });

  it('initialises blank disks and relabels untyped ones only to reach min-disks, untyped first', () => {
    const disks = [blank('a'), disk('b', 'untyped'), blank('c'), disk('d', 'fast')];
    const r = matchDisks(parseQuery('label.fast_min-disks.3'), disks, HOST);
    expect(r.chosen.map((d) => [d.name, d.action])).toEqual([
      ['d', 'use'],
      ['b', 'relabel'],
      ['a', 'initialise'],
    ]);
    expect(r.spare.map((d) => [d.name, d.action])).toEqual([['c', 'initialise']]);
    const one = matchDisks(parseQuery('label.fast'), disks, HOST);
    expect(names(one.chosen)).toEqual(['d']);
  });

  it('initialises or relabels no disk too small for the filesystem, taking the next one', () => {
    const MIB = 1024 * 1024;
    const disks = [blank('a', 100 * MIB), disk('b', 'untyped', { sizeBytes: 100 * MIB }), blank('c', GIB)];
    const r = matchDisks(parseQuery('label.fast_filesystem.xfs'), disks, HOST);
    expect(r.chosen.map((d) => [d.name, d.action])).toEqual([['c', 'initialise']]);
    expect(why(r, 'a')).toEqual(['100 MiB is too small to initialise for xfs: it needs at least 303 MiB']);
    expect(why(r, 'b')).toEqual(['100 MiB is too small to initialise for xfs: it needs at least 303 MiB']);
    // ext4 fits: the same disk is taken.
    expect(names(matchDisks(parseQuery('label.fast'), disks, HOST).chosen)).toEqual(['b']);
    // LUKS takes its header too.
    const tiny = [blank('d', 20 * MIB)];
    expect(why(matchDisks(parseQuery('label.fast_encryption-key.k'), tiny, HOST), 'd')[0]).toMatch(
      /^20.0 MiB is too small to initialise for ext4 inside LUKS: it needs at least 24.0 MiB$/,
    );
  });

  it('never initialises or relabels with initialized.true', () => {
    const r = matchDisks(parseQuery('label.fast_initialized.true'), [blank('a'), disk('b', 'untyped')], HOST);
    expect(r.chosen).toEqual([]);
    expect(r.satisfied).toBe(false);
    expect(why(r, 'a')).toEqual(['blank, and the query asks for initialized disks only']);
    expect(why(r, 'b')[0]).toMatch(/label is 'untyped'; claiming it would erase it/);
  });

  it('compares sizes in bytes (the old code compared sectors with bytes)', () => {
    const disks = [
      disk('small', 'fast', { sizeBytes: 50e9 }),
      disk('big', 'fast', { sizeBytes: 200e9 }),
      disk('mid', 'fast', { sizeBytes: 100e9 }),
    ];
    const r = matchDisks(parseQuery('label.fast_min-size.100G_max-size.150G'), disks, HOST);
    expect(names(r.chosen)).toEqual(['mid']);
    expect(why(r, 'small')).toEqual(['size 46.6 GiB is below min-size 100G']);
    expect(why(r, 'big')[0]).toMatch(/above max-size 150G/);
  });

  it('honours own-hostname and own-machine-id', () => {
    const disks = [
      disk('a', 'fast', { hostname: 'other' }),
      disk('b', 'fast', { machineId: 'zzz' }),
      disk('c', 'fast'),
    ];
    expect(names(matchDisks(parseQuery('label.fast_own-hostname'), disks, HOST).chosen)).toEqual(['b', 'c']);
    const r = matchDisks(parseQuery('label.fast_own-machine-id'), disks, HOST);
    expect(names(r.chosen)).toEqual(['a', 'c']);
    expect(why(r, 'b')).toEqual(["machine-id is 'zzz', not this host's 'abc'"]);
    expect(why(matchDisks(parseQuery('label.fast_own-hostname'), disks, HOST), 'a')).toEqual([
      "initialised by host 'other', not this host 'node1'",
    ]);
  });

  it('matches the filesystem', () => {
    const disks = [
      disk('a', 'fast', { filesystem: 'xfs' }),
      disk('b', 'fast'),
      disk('c', 'fast', { filesystem: null }),
    ];
    const r = matchDisks(parseQuery('label.fast_filesystem.xfs'), disks, HOST);
    expect(names(r.chosen)).toEqual(['a']);
    expect(why(r, 'b')).toEqual(['filesystem is ext4, not xfs']);
    expect(why(r, 'c')).toEqual(['filesystem unknown, the query asks for xfs']);
    const any = matchDisks(parseQuery('label.fast'), disks, HOST);
    expect(names(any.chosen)).toEqual(['a', 'b']);
    expect(why(any, 'c')).toEqual([
      'its data partition holds no filesystem (initialize-disk --force recreates it)',
    ]);
  });

  it('needs encryption both ways and a passphrase that opens the disk', () => {
    const disks = [
      disk('plain', 'fast'),
      disk('good', 'fast', { encrypted: true }),
      disk('bad', 'fast', { encrypted: true }),
      disk('untested', 'fast', { encrypted: true }),
    ];
    const unlocks = new Map([
      ['/dev/good', true],
      ['/dev/bad', false],
    ]);
    const r = matchDisks(parseQuery('label.fast_encryption-key.k'), disks, HOST, { unlocks });
    expect(names(r.chosen)).toEqual(['good']);
    expect(why(r, 'plain')).toEqual(['not encrypted, but the query gives a passphrase']);
    expect(why(r, 'bad')).toEqual(['the passphrase does not open it']);
    expect(why(r, 'untested')).toEqual(['the passphrase was not tested']);
    const none = matchDisks(parseQuery('label.fast'), disks, HOST);
    expect(names(none.chosen)).toEqual(['plain']);
    expect(why(none, 'good')).toEqual(['encrypted, but the query gives no passphrase']);
  });

  it('encrypts blank disks it initialises, so they match an encrypted query', () => {
    const r = matchDisks(parseQuery('label.fast_encryption-key.k_filesystem.xfs'), [blank('a')], HOST);
    expect(r.chosen.map((d) => d.action)).toEqual(['initialise']);
  });

  it('skips mounted disks and disks other volumes hold, but not its own', () => {
    const disks = [
      disk('mounted', 'fast', { mounted: true, inUse: true, mountPoints: ['/x'] }),
      disk('other', 'fast', { assignment: { volumes: ['v2'], exclusive: true } }),
      disk('mine', 'fast', {
        mounted: true,
        inUse: true,
        mountPoints: ['/v1/0'],
        assignment: { volumes: ['v1'], exclusive: true },
      }),
      disk('free', 'fast'),
    ];
    const r = matchDisks(parseQuery('label.fast'), disks, HOST, { volume: 'v1' });
    expect(names(r.chosen)).toEqual(['mine', 'free']);
    expect(why(r, 'mounted')).toEqual(['in use: mounted at /x']);
    expect(why(r, 'other')).toEqual(['assigned to volume v2 (exclusive)']);
  });

  it('skips a disk held though mounted nowhere (a lazily unmounted, busy filesystem), even its own', () => {
    const held = { inUse: true, usage: BUSY_USAGE };
    const disks = [
      disk('lazy', 'fast', held),
      disk('mine-lazy', 'fast', { ...held, assignment: { volumes: ['v1'], exclusive: true } }),
      disk('free', 'fast'),
    ];
    const r = matchDisks(parseQuery('label.fast'), disks, HOST, { volume: 'v1' });
    expect(names(r.chosen)).toEqual(['free']);
    expect(why(r, 'lazy')).toEqual([BUSY_USAGE]);
    expect(why(r, 'mine-lazy')).toEqual([BUSY_USAGE]);
  });

  it('names another volume without its passphrase', () => {
    const other = disk('other', 'fast', {
      assignment: { volumes: ['label.fast_encryption-passphrase.Hush'], exclusive: true },
    });
    const r = matchDisks(parseQuery('label.fast'), [other], HOST, { volume: 'v1' });
    expect(why(r, 'other')).toEqual(['assigned to volume label.fast_encryption-passphrase.*** (exclusive)']);
  });

  it('shares non-exclusive disks between non-exclusive volumes only', () => {
    const shared = disk('s', 'fast', {
      mounted: true,
      inUse: true,
      assignment: { volumes: ['v2'], exclusive: false },
    });
    expect(
      names(matchDisks(parseQuery('label.fast_exclusive.false'), [shared], HOST, { volume: 'v1' }).chosen),
    ).toEqual(['s']);
    expect(matchDisks(parseQuery('label.fast'), [shared], HOST, { volume: 'v1' }).chosen).toEqual([]);
  });

  it('never claims an untyped disk another volume holds, even a non-exclusive one', () => {
    const held = disk('u', 'untyped', { assignment: { volumes: ['v2'], exclusive: false } });
    const r = matchDisks(parseQuery('label.fast_exclusive.false'), [held], HOST, { volume: 'v1' });
    expect(r.chosen).toEqual([]);
    expect(why(r, 'u')).toEqual(["label is 'untyped', but claiming it would erase the disk of volume v2"]);
  });

  it('orders by persisted numbering when asked', () => {
    const disks = [
      disk('a', 'fast', { numbering: '2' }),
      disk('b', 'fast', { numbering: '0' }),
      disk('c', 'fast', { numbering: '1' }),
    ];
    const r = matchDisks(parseQuery('label.fast_persist-numbering_max-disks.3'), disks, HOST);
    expect(names(r.chosen)).toEqual(['b', 'c', 'a']);
  });

  it('gives rejected disks their scan reason', () => {
    const r = matchDisks(
      parseQuery('label.fast'),
      [rejected('x', 'has a foreign partition table (dos)')],
      HOST,
    );
    expect(why(r, 'x')).toEqual(['not usable: it has a foreign partition table (dos)']);
    expect(r.satisfied).toBe(false);
  });

  it('is satisfied with zero disks when min-disks is 0', () => {
    expect(matchDisks(parseQuery('label.fast_min-disks.0'), [], HOST).satisfied).toBe(true);
  });
});
