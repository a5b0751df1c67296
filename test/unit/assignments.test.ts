import { describe, expect, it } from 'vitest';
import {
  assignDisks,
  emptyState,
  ensureVolume,
  forgetDisk,
  type HostFacts,
  handOverMapper,
  isAvailable,
  type MountedDisk,
  reconcile,
  releaseDisk,
  releaseVolume,
  setMount,
  type VolumesState,
  validateState,
  volumeAtDir,
} from '../../src/core/assignments.js';

const NOW = '2026-01-01T00:00:00.000Z';

function withVolume(state: VolumesState, name: string, exclusive: boolean, ids: string[]): VolumesState {
  const s = ensureVolume(state, name, exclusive, NOW);
  return assignDisks(
    s,
    name,
    ids.map((id, i) => ({ id, number: i, device: `/dev/loop${i}`, diskseq: 10 + i })),
    NOW,
  );
}

function mounted(id: string, i: number, dir = '/v'): MountedDisk {
  return {
    id,
    dirName: `simple-${i}`,
    mountPoint: `${dir}/simple-${i}`,
    device: `/dev/loop${i}`,
    source: `/dev/loop${i}p2`,
    fsType: 'ext4',
    mapper: null,
  };
}

const allHere: HostFacts = {
  isVolumeRoot: () => true,
  realDir: (dir) => dir,
  isMounted: () => true,
  deviceSeq: (device) => 10 + Number(device.replace('/dev/loop', '')),
  locate: () => undefined,
  heldBy: () => undefined,
  isWatcherAlive: () => true,
};

describe('exclusivity', () => {
  it('an exclusive volume keeps its disks from every other volume', () => {
    const s = withVolume(emptyState(), 'A', true, ['d0']);
    expect(isAvailable(s, 'A', true, 'd0')).toBe(true);
    expect(isAvailable(s, 'B', true, 'd0')).toBe(false);
    expect(isAvailable(s, 'B', false, 'd0')).toBe(false);
    expect(isAvailable(s, 'B', true, 'd1')).toBe(true);
  });

  it('non-exclusive volumes may share a disk; an exclusive one may not join them', () => {
    const s = withVolume(emptyState(), 'A', false, ['d0']);
    expect(isAvailable(s, 'B', false, 'd0')).toBe(true);
    expect(isAvailable(s, 'B', true, 'd0')).toBe(false);
  });

  it('assignDisks refuses a disk held by another volume', () => {
    const s = ensureVolume(withVolume(emptyState(), 'A', true, ['d0']), 'B', true, NOW);
    expect(() =>
      assignDisks(s, 'B', [{ id: 'd0', number: 0, device: '/dev/x', diskseq: null }], NOW),
    ).toThrow(/assigned to another volume/);
  });

  it('releasing a volume frees its disks', () => {
    const s = releaseVolume(withVolume(emptyState(), 'A', true, ['d0']), 'A');
    expect(isAvailable(s, 'B', true, 'd0')).toBe(true);
    expect(s.volumes).toEqual({});
  });

  it('never mutates the state it was given', () => {
    const s = emptyState();
    const copy = structuredClone(s);
    withVolume(s, 'A', true, ['d0']);
    expect(s).toEqual(copy);
  });
});

describe('releaseDisk', () => {
  it('remembers the number so a returning disk can get it back', () => {
    let s = withVolume(emptyState(), 'A', true, ['d0', 'd1']);
    s = releaseDisk(s, 'A', 'd1');
    expect(s.volumes.A?.disks.d1).toBeUndefined();
    expect(s.volumes.A?.rememberedNumbers).toEqual({ d1: 1 });
    s = assignDisks(s, 'A', [{ id: 'd1', number: 1, device: '/dev/loop5', diskseq: 99 }], NOW);
    expect(s.volumes.A?.rememberedNumbers).toEqual({});
  });
});

describe('forgetDisk', () => {
  it('drops a disk from every volume, its mount and remembered number, and nothing else', () => {
    let s = withVolume(emptyState(), 'A', false, ['d0', 'd1']);
    s = withVolume(s, 'B', false, ['d1']);
    s = setMount(s, 'A', {
      dir: '/v',
      mountedAt: NOW,
      dynamic: false,
      disks: { d1: mounted('d1', 1) },
      placeholders: [],
      watcher: null,
    });
    s = releaseDisk(s, 'B', 'd1');
    expect(s.volumes.B?.rememberedNumbers).toEqual({ d1: 0 });
    const after = forgetDisk(s, 'd1');
    expect(Object.keys(after.volumes.A?.disks ?? {})).toEqual(['d0']);
    expect(after.volumes.A?.mount?.disks).toEqual({});
    expect(after.volumes.B?.rememberedNumbers).toEqual({});
    expect(Object.keys(after.volumes)).toEqual(['A', 'B']);
    expect(s.volumes.A?.disks.d1).toBeDefined(); // the input is untouched
  });
});

describe('handOverMapper', () => {
  it('gives a shared LUKS mapping to the mount that reads through it without having opened it', () => {
    const through = (dir: string, mapper: string | null): MountedDisk => ({
      ...mounted('d1', 0, dir),
      source: '/dev/mapper/simple-u1',
      mapper,
    });
    let s = withVolume(emptyState(), 'A', false, ['d1']);
    s = withVolume(s, 'B', false, ['d1']);
    const mount = (dir: string, disk: MountedDisk) => ({
      dir,
      mountedAt: NOW,
      dynamic: false,
      disks: { d1: disk },
      placeholders: [],
      watcher: null,
    });
    s = setMount(s, 'A', mount('/a', through('/a', 'simple-u1')));
    s = setMount(s, 'B', mount('/b', through('/b', null)));
    const gone = setMount(s, 'A', null);
    const after = handOverMapper(gone, 'simple-u1');
    expect(after.volumes.B?.mount?.disks.d1?.mapper).toBe('simple-u1');
    expect(gone.volumes.B?.mount?.disks.d1?.mapper).toBeNull(); // the input is untouched
    expect(handOverMapper(gone, 'simple-other')).toBe(gone);
  });
});

describe('reconcile', () => {
  it('changes nothing when the machine matches the state', () => {
    let s = withVolume(emptyState(), 'A', true, ['d0']);
    s = setMount(s, 'A', {
      dir: '/v',
      mountedAt: NOW,
      dynamic: false,
      disks: { d0: mounted('d0', 0) },
      placeholders: [],
      watcher: null,
    });
    const r = reconcile(s, allHere);
    expect(r.state).toEqual(s);
    expect(r.notes).toEqual([]);
  });

  it('follows a mount recorded through a symbolic link to the real path the mount table shows', () => {
    let s = withVolume(emptyState(), 'A', true, ['d0']);
    s = setMount(s, 'A', {
      dir: '/var/run/v',
      mountedAt: NOW,
      dynamic: false,
      disks: { d0: mounted('d0', 0, '/var/run/v') },
      placeholders: [],
      watcher: null,
    });
    const facts: HostFacts = {
      ...allHere,
      realDir: (dir) => dir.replace(/^\/var\/run\//, '/run/'),
      isVolumeRoot: (dir) => dir === '/run/v',
      isMounted: (path) => path === '/run/v/simple-0',
    };
    const r = reconcile(s, facts);
    expect(r.state.volumes.A?.mount?.dir).toBe('/run/v');
    expect(r.state.volumes.A?.mount?.disks.d0?.mountPoint).toBe('/run/v/simple-0');
    expect(volumeAtDir(r.state, '/run/v')?.name).toBe('A');
    expect(r.notes).toEqual(['volume A: /var/run/v is /run/v (through a symbolic link); recording that']);
    expect(r.orphanMappers).toEqual([]);
  });

  it('forgets a mount whose root is gone and hands back its mappers', () => {
    let s = withVolume(emptyState(), 'A', true, ['d0']);
    s = setMount(s, 'A', {
      dir: '/v',
      mountedAt: NOW,
      dynamic: true,
      disks: { d0: { ...mounted('d0', 0), mapper: 'simple-d0' } },
      placeholders: [],
      watcher: { pid: 1, startTime: '1', log: '/x' },
    });
    const r = reconcile(s, { ...allHere, isVolumeRoot: () => false });
    expect(r.state.volumes.A?.mount).toBeNull();
    expect(r.state.volumes.A?.disks.d0).toBeDefined(); // still assigned: the volume may be mounted again
    expect(r.orphanMappers).toEqual(['simple-d0']);
    expect(r.notes.join()).toMatch(/no longer mounted at \/v/);
  });

  it('drops disk mounts that vanished and dead watchers', () => {
    let s = withVolume(emptyState(), 'A', true, ['d0', 'd1']);
    s = setMount(s, 'A', {
      dir: '/v',
      mountedAt: NOW,
      dynamic: true,
      disks: { d0: mounted('d0', 0), d1: mounted('d1', 1) },
      placeholders: [],
      watcher: { pid: 1, startTime: '1', log: '/x' },
    });
    const r = reconcile(s, {
      ...allHere,
      isMounted: (p) => p !== '/v/simple-1',
      isWatcherAlive: () => false,
    });
    expect(Object.keys(r.state.volumes.A?.mount?.disks ?? {})).toEqual(['d0']);
    expect(r.state.volumes.A?.mount?.watcher).toBeNull();
  });

  it('releases an unmounted disk whose device is gone, remembering its number', () => {
    const s = withVolume(emptyState(), 'A', true, ['d0', 'd1']);
    const r = reconcile(s, { ...allHere, deviceSeq: (d) => (d === '/dev/loop1' ? undefined : 10) });
    expect(Object.keys(r.state.volumes.A?.disks ?? {})).toEqual(['d0']);
    expect(r.state.volumes.A?.rememberedNumbers).toEqual({ d1: 1 });
    expect(r.notes.join()).toMatch(/d1 .* gone; released/);
  });

  it('words each change as done, or with preview as what the next mount will do', () => {
    let s = withVolume(emptyState(), 'A', true, ['d0', 'd1']);
    s = setMount(s, 'A', {
      dir: '/var/run/v',
      mountedAt: NOW,
      dynamic: false,
      disks: { d0: mounted('d0', 0, '/var/run/v') },
      placeholders: [],
      watcher: null,
    });
    const facts: HostFacts = {
      ...allHere,
      realDir: (dir) => dir.replace(/^\/var\/run\//, '/run/'),
      isVolumeRoot: () => false,
      deviceSeq: (d) => (d === '/dev/loop1' ? undefined : 10),
    };
    const done = reconcile(s, facts, { show: (name) => `<${name}>` });
    expect(done.notes).toEqual([
      'volume <A>: /var/run/v is /run/v (through a symbolic link); recording that',
      'volume <A> is no longer mounted at /run/v; forgetting that mount',
      'disk d1 of volume <A> (last seen as /dev/loop1) is gone; released',
    ]);
    const preview = reconcile(s, facts, { show: (name) => `<${name}>`, preview: true });
    expect(preview.notes).toEqual([
      'volume <A>: /var/run/v is /run/v (through a symbolic link); the next mount records that',
      'volume <A> is no longer mounted at /run/v; the next mount forgets that mount',
      'disk d1 of volume <A> is no longer at /dev/loop1; the next mount follows it if it moved, else releases it',
    ]);
    expect(preview.state).toEqual(done.state);
  });

  it('follows a disk that moved to another device', () => {
    const s = withVolume(emptyState(), 'A', true, ['d0']);
    const r = reconcile(s, {
      ...allHere,
      deviceSeq: () => undefined,
      locate: (id) => (id === 'd0' ? { device: '/dev/loop7', diskseq: 50 } : undefined),
    });
    expect(r.state.volumes.A?.disks.d0).toMatchObject({ device: '/dev/loop7', diskseq: 50 });
  });

  it('forgets a disk whose very media now holds another disk, or none: it was initialised again elsewhere', () => {
    for (const there of ['d9', null]) {
      const s = withVolume(emptyState(), 'A', true, ['d0', 'd1']);
      const r = reconcile(s, { ...allHere, heldBy: (d) => (d === '/dev/loop1' ? there : undefined) });
      expect(Object.keys(r.state.volumes.A?.disks ?? {})).toEqual(['d0']);
      // Its number is not kept for it: it never comes back.
      expect(r.state.volumes.A?.rememberedNumbers).toEqual({});
      expect(r.notes).toEqual([
        `disk d1 of volume A is gone: /dev/loop1 holds ${there ? 'disk d9' : 'a blank disk'} now, on the same media; released`,
      ]);
    }
    // The same disk there (or a copy of it), or new media that may not be the disk's: kept.
    const s = withVolume(emptyState(), 'A', true, ['d0', 'd1']);
    expect(reconcile(s, { ...allHere, heldBy: (d) => (d === '/dev/loop1' ? 'd1' : 'd0') }).state).toEqual(s);
    expect(
      reconcile(s, { ...allHere, heldBy: () => 'd9', deviceSeq: () => 77 }).state.volumes.A?.disks.d1,
    ).toBeDefined();
  });

  it('keeps a disk whose device now holds other media but which the scan did not cover', () => {
    const s = withVolume(emptyState(), 'A', true, ['d0']);
    const r = reconcile(s, { ...allHere, deviceSeq: () => 77 });
    expect(r.state.volumes.A?.disks.d0).toBeDefined();
  });

  it('never releases a disk that is still mounted', () => {
    let s = withVolume(emptyState(), 'A', true, ['d0']);
    s = setMount(s, 'A', {
      dir: '/v',
      mountedAt: NOW,
      dynamic: false,
      disks: { d0: mounted('d0', 0) },
      placeholders: [],
      watcher: null,
    });
    const r = reconcile(s, { ...allHere, deviceSeq: () => undefined });
    expect(r.state.volumes.A?.disks.d0).toBeDefined();
  });
});

describe('volumeAtDir and validateState', () => {
  it('finds the volume mounted at a directory', () => {
    let s = withVolume(emptyState(), 'A', true, []);
    s = setMount(s, 'A', {
      dir: '/v',
      mountedAt: NOW,
      dynamic: false,
      disks: {},
      placeholders: [],
      watcher: null,
    });
    expect(volumeAtDir(s, '/v')?.name).toBe('A');
    expect(volumeAtDir(s, '/w')).toBeUndefined();
  });

  it('accepts a state file and explains a bad one', () => {
    expect(validateState({ version: 1, volumes: {} })).toEqual({ version: 1, volumes: {} });
    expect(validateState({ version: 9, volumes: {} })).toMatch(/unsupported version 9/);
    expect(validateState([])).toMatch(/no 'volumes'|unsupported/);
    expect(validateState({ version: 1, volumes: { x: 3 } })).toMatch(/volume 'x' is malformed/);
  });
});
