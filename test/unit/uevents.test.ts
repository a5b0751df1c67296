import { describe, expect, it } from 'vitest';
import { parseBusyboxLine, parseUdevadmLine } from '../../src/adapters/uevents.js';

describe('uevent helper output', () => {
  it.each([
    [
      'KERNEL[5312.118409] change   /devices/virtual/block/loop3 (block)',
      { action: 'change', subsystem: 'block', devname: 'loop3' },
    ],
    [
      'KERNEL[12.5] add      /devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sdb/sdb1 (block)',
      { action: 'add', subsystem: 'block', devname: 'sdb1' },
    ],
    [
      'KERNEL[12.5] remove   /devices/virtual/bdi/7:3 (bdi)',
      { action: 'remove', subsystem: 'bdi', devname: '7:3' },
    ],
  ])('udevadm: %s', (line, expected) => {
    expect(parseUdevadmLine(line)).toEqual(expected);
  });

  it('udevadm: ignores the banner and property lines', () => {
    for (const line of [
      'monitor will print the received events for:',
      'KERNEL - the kernel uevent',
      '',
      'ACTION=add',
    ]) {
      expect(parseUdevadmLine(line)).toBeUndefined();
    }
  });

  it('busybox: reads the helper script line, ignores anything else', () => {
    expect(parseBusyboxLine('simplectl-uevent change block loop0')).toEqual({
      action: 'change',
      subsystem: 'block',
      devname: 'loop0',
    });
    expect(parseBusyboxLine('simplectl-uevent add module')).toEqual({
      action: 'add',
      subsystem: 'module',
      devname: '',
    });
    expect(parseBusyboxLine('garbage')).toBeUndefined();
  });
});
