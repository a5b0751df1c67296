import { describe, expect, it } from 'vitest';
import { mountAt, mountsOfSources, mountsUnder, parseMountInfo } from '../../src/adapters/mountinfo.js';

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
