import { describe, expect, it } from 'vitest';
import {
  mountAt,
  mountsOfSources,
  mountsOn,
  mountsUnder,
  parseMountInfo,
  propagatedCopyOf,
} from '../../src/adapters/mountinfo.js';
import { foreignMounts } from '../../src/commands/volume-umount.js';

const SAMPLE = [
  '22 1 0:21 / /proc rw,nosuid - proc proc rw',
  '40 22 7:3 / /srv/vol\\040one rw,relatime shared:1 - tmpfs tmpfs ro,size=4k',
  '41 40 7:4 / /srv/vol\\040one/simple-0 rw - ext4 /dev/loop3p2 rw',
  '42 1 0:50 / /mnt/zk rw,nosuid,nodev - fuse zkfs rw,user_id=0,group_id=0',
].join('\n');

describe('mount table', () => {
  const table = parseMountInfo(SAMPLE);

  it('parses fields and unescapes spaces in paths', () => {
    expect(table).toHaveLength(4);
    expect(table[1]).toMatchObject({ mountPoint: '/srv/vol one', fsType: 'tmpfs', source: 'tmpfs' });
    expect(table[1]!.superOptions).toContain('ro');
  });

  it('finds mounts by point, by source device and under a directory (deepest first)', () => {
    expect(mountAt(table, '/mnt/zk/')?.fsType).toBe('fuse');
    expect(mountAt(table, '/mnt')).toBeUndefined();
    expect(mountsOfSources(table, ['/dev/loop3p2']).map((e) => e.mountPoint)).toEqual([
      '/srv/vol one/simple-0',
    ]);
    expect(mountsUnder(table, '/srv/vol one').map((e) => e.mountPoint)).toEqual([
      '/srv/vol one/simple-0',
      '/srv/vol one',
    ]);
  });
});

describe('a mount seen from another mount namespace', () => {
  const [ours] = parseMountInfo('300 40 0:77 / /var/lib/volkit/v/cfg rw,nosuid shared:512 - fuse zkfs rw');
  const seen = (line: string) => propagatedCopyOf(parseMountInfo(line)[0]!, ours!);

  it('reads the propagation fields', () => {
    expect(ours!.tags).toEqual(['shared:512']);
    expect(parseMountInfo('22 1 0:21 / /proc rw - proc proc rw')[0]!.tags).toEqual([]);
  });

  it('is a copy when it is a peer or a slave of ours at the same path', () => {
    expect(seen('900 80 0:77 / /var/lib/volkit/v/cfg rw master:512 - fuse zkfs rw')).toBe(true);
    expect(seen('901 80 0:77 / /var/lib/volkit/v/cfg rw shared:512 - fuse zkfs rw')).toBe(true);
  });

  it("is a holder's own mount when it is a container's bind, or unrelated to our peer group", () => {
    expect(seen('902 81 0:77 / /data rw,relatime - fuse zkfs rw')).toBe(false);
    expect(seen('903 81 0:77 / /data rw master:512 - fuse zkfs rw')).toBe(false);
    expect(seen('904 81 0:77 / /var/lib/volkit/v/cfg rw - fuse zkfs rw')).toBe(false);
    expect(seen('905 81 0:78 / /var/lib/volkit/v/cfg rw master:512 - fuse zkfs rw')).toBe(false);
  });
});

describe('what is mounted inside a volume', () => {
  // A volume with two disks; a user's tmpfs inside simple-0, a second volume inside simple-1
  // (with its disk), and a user's mount stacked over simple-0's disk.
  const table = parseMountInfo(
    [
      '1 0 8:1 / / rw - ext4 /dev/sda1 rw',
      '40 1 0:40 / /v ro - tmpfs simplectl-volume ro,size=4k',
      '41 40 7:1 / /v/simple-0 rw - ext4 /dev/loop1p2 rw',
      '42 40 7:2 / /v/simple-1 rw - ext4 /dev/loop2p2 rw',
      '43 41 0:43 / /v/simple-0/cache rw - tmpfs usercache rw',
      '44 42 0:44 / /v/simple-1/inner ro - tmpfs simplectl-volume ro,size=4k',
      '45 44 7:3 / /v/simple-1/inner/simple-0 rw - ext4 /dev/loop3p2 rw',
      '46 41 0:46 / /v/simple-0 rw - tmpfs over rw',
      '47 1 0:47 / /elsewhere rw - tmpfs other rw',
    ].join('\n'),
  );
  const root = mountAt(table, '/v')!;

  it('lists the mounts made on a mount, not deeper ones', () => {
    expect(mountsOn(table, root).map((e) => e.mountId)).toEqual([41, 42]);
  });

  it('finds everything inside the disks, but nothing inside another volume', () => {
    expect(foreignMounts(table, mountAt(table, '/v/simple-1/inner')!).map((e) => e.mountPoint)).toEqual([]);
    expect(foreignMounts(table, root).map((e) => e.mountId)).toEqual([43, 46, 44]);
  });
});
