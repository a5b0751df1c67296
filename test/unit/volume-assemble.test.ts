import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/adapters/logger.js';
import { Undo } from '../../src/commands/undo.js';
import { numbersFor, tooFewDisks, type VolumeSpec } from '../../src/commands/volume-assemble.js';
import { assignDisks, emptyState, ensureVolume, releaseDisk } from '../../src/core/assignments.js';
import type { InitialisedDisk } from '../../src/core/disk-state.js';
import type { MatchResult } from '../../src/core/match.js';
import { parseQuery } from '../../src/core/query.js';

function spec(name: string): VolumeSpec {
  return { name, query: parseQuery(name), options: {}, passphrase: null };
}

function disk(uuid: string, numbering = ''): InitialisedDisk {
  return { dataPartition: { uuid }, numbering, device: `/dev/${uuid}` } as unknown as InitialisedDisk;
}

/** A state where volume `name` has disks x (number 0) and y (number 1). */
function withXY(name: string) {
  return assignDisks(
    ensureVolume(emptyState(), name, true, 'now'),
    name,
    [
      { id: 'x', number: 0, device: '/dev/x', diskseq: null },
      { id: 'y', number: 1, device: '/dev/y', diskseq: null },
    ],
    'now',
  );
}

describe('numbersFor', () => {
  it('numbers new disks from 0 and keeps members’ numbers', () => {
    const s = spec('label.a');
    let state = ensureVolume(emptyState(), s.name, true, 'now');
    state = assignDisks(state, s.name, [{ id: 'm', number: 1, device: '/dev/x', diskseq: null }], 'now');
    const got = numbersFor(s, state.volumes[s.name], [disk('m'), disk('n1'), disk('n2')]);
    expect(Object.fromEntries(got)).toEqual({ m: 1, n1: 0, n2: 2 });
  });

  it('gives a returning disk its remembered number', () => {
    const s = spec('label.a');
    let state = withXY(s.name);
    state = releaseDisk(state, s.name, 'x');
    const got = numbersFor(s, state.volumes[s.name], [disk('new'), disk('x')]);
    expect(Object.fromEntries(got)).toEqual({ new: 2, x: 0 });
  });

  it('joining a volume in use, keeps a newcomer out of the number of a disk that left while another is free', () => {
    const s = spec('label.a_max-disks.3');
    let state = withXY(s.name);
    state = releaseDisk(state, s.name, 'y');
    const volume = state.volumes[s.name];
    expect(Object.fromEntries(numbersFor(s, volume, [disk('new')], true))).toEqual({ new: 2 });
    // Only when the limit leaves no other number does the newcomer take it.
    expect(Object.fromEntries(numbersFor(s, volume, [disk('n1'), disk('n2')], true))).toEqual({
      n1: 2,
      n2: 1,
    });
    // Mounted afresh, the volume numbers from the lowest free number, as before.
    expect(Object.fromEntries(numbersFor(s, volume, [disk('new')]))).toEqual({ new: 1 });
    // And the disk that left gets its number back when it returns with a newcomer.
    expect(Object.fromEntries(numbersFor(s, volume, [disk('new'), disk('y')], true))).toEqual({
      new: 2,
      y: 1,
    });
  });

  it('honours the numbering written in disk metadata with persist-numbering', () => {
    const s = spec('label.a_max-disks.4_persist-numbering');
    expect(Object.fromEntries(numbersFor(s, undefined, [disk('a', '3'), disk('b')]))).toEqual({ a: 3, b: 0 });
    const plain = spec('label.a_max-disks.4');
    expect(Object.fromEntries(numbersFor(plain, undefined, [disk('a', '3'), disk('b')]))).toEqual({
      a: 0,
      b: 1,
    });
  });

  it('gives no numbers with uuid naming', () => {
    const s = spec('label.a_naming-style.uuid');
    expect(Object.fromEntries(numbersFor(s, undefined, [disk('a')]))).toEqual({ a: null });
  });
});

describe('tooFewDisks', () => {
  it('says how many are needed and why each other disk did not match, never the passphrase', () => {
    const s: VolumeSpec = {
      ...spec('label.a_min-disks.2_encryption-passphrase.hunter2'),
      passphrase: 'hunter2',
    };
    const match = {
      chosen: [{}],
      spare: [],
      satisfied: false,
      rejected: [{ disk: { device: '/dev/sdz' }, reasons: ["label is 'b', not 'a'"] }],
    } as unknown as MatchResult;
    const error = tooFewDisks(s, match);
    expect(error.message).toBe(
      "volume label.a_min-disks.2_encryption-passphrase.*** needs at least 2 disks labelled 'a'; only 1 is available",
    );
    expect(error.detail).toBe("/dev/sdz: label is 'b', not 'a'");
  });
});

describe('Undo', () => {
  it('runs steps newest first and reports failures without throwing', async () => {
    const order: string[] = [];
    const undo = new Undo();
    undo.push('one', async () => order.push('one'));
    undo.push('two', async () => {
      throw new Error('stuck');
    });
    undo.push('three', async () => order.push('three'));
    expect(await undo.run(silentLogger)).toEqual(['two']);
    expect(order).toEqual(['three', 'one']);
    expect(undo.size).toBe(0);
  });

  it('forgets steps once cleared', async () => {
    const undo = new Undo();
    let ran = false;
    undo.push('x', async () => {
      ran = true;
    });
    undo.clear();
    await undo.run(silentLogger);
    expect(ran).toBe(false);
  });
});
