import { describe, expect, it } from 'vitest';
import { OperationError, UsageError } from '../../src/core/errors.js';
import {
  addVolume,
  emptyState,
  getVolume,
  parseState,
  removeVolume,
  validateMountId,
  validateVolumeName,
  withRefs,
} from '../../src/core/plugin-state.js';
import { querySecrets } from '../../src/core/query.js';
import { redact } from '../../src/core/redact.js';

const now = new Date('2026-01-02T03:04:05.000Z');

describe('volume names', () => {
  it.each(['cfg', 'label.fast_min-size.100G', 'a', 'A-1_b.c', 'x'.repeat(255)])('accepts %s', (name) => {
    expect(validateVolumeName(name)).toBe(name);
  });

  it.each([
    ['', 'missing'],
    ['a/b', "contains '/'"],
    ['/abs', "contains '/'"],
    ['..', "contains '..'"],
    ['a..b', "contains '..'"],
    ['.hidden', 'starting with a letter or digit'],
    ['-x', 'starting with a letter or digit'],
    ['sp ace', "use letters, digits, '_'"],
    ['nul\u0000', "use letters, digits, '_'"],
    ['é', "use letters, digits, '_'"],
    ['x'.repeat(256), 'longer than 255'],
  ])('rejects %j (%s)', (name, why) => {
    expect(() => validateVolumeName(name)).toThrow(UsageError);
    expect(() => validateVolumeName(name)).toThrow(why);
  });

  it.each([undefined, null, 42, {}, ['a']])('rejects a non-string name %j', (name) => {
    expect(() => validateVolumeName(name)).toThrow('volume name is missing');
  });

  it('shows a refused name masked, before it is cut or quoted, so no part of a secret in it shows', () => {
    const hide = (n: string) => redact(n, querySecrets(n));
    for (const name of [
      `label.x_encryption-passphrase.a"b/c`,
      `label.x_encryption-passphrase.${'p'.repeat(90)}/c`,
    ]) {
      expect(() => validateVolumeName(name, hide)).toThrow(
        /^invalid volume name "label\.x_encryption-passphrase\.\*\*\*/,
      );
      expect(() => validateVolumeName(name, hide)).not.toThrow(/a\\?"b|ppp/);
    }
  });

  it('checks mount IDs', () => {
    expect(validateMountId('abc')).toBe('abc');
    expect(() => validateMountId('')).toThrow('mount ID is missing');
    expect(() => validateMountId(7)).toThrow('mount ID is missing');
    expect(() => validateMountId('x'.repeat(257))).toThrow('longer than 256');
  });
});

describe('plugin state transitions', () => {
  it('knows no volume by a name every object has (constructor, toString), and records one so called', () => {
    for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      expect(() => getVolume(emptyState(), name)).toThrow(`no such volume: ${name}`);
      const { state, created } = addVolume(emptyState(), name, { path: '/a' }, now);
      expect(created).toBe(true);
      expect(getVolume(state, name).options).toEqual({ path: '/a' });
    }
  });

  it('adds a volume with its options and creation time, without touching the old state', () => {
    const before = emptyState();
    const { state, created } = addVolume(before, 'cfg', { hosts: 'h:1', path: '/app' }, now);
    expect(created).toBe(true);
    expect(getVolume(state, 'cfg')).toEqual({
      name: 'cfg',
      options: { hosts: 'h:1', path: '/app' },
      createdAt: '2026-01-02T03:04:05.000Z',
      refs: {},
    });
    expect(before.volumes).toEqual({});
  });

  it('treats a second Create with the same options as a no-op and with others as an error', () => {
    const { state } = addVolume(emptyState(), 'cfg', { path: '/a' }, now);
    const again = addVolume(state, 'cfg', { path: '/a' }, new Date());
    expect(again.created).toBe(false);
    expect(again.state).toBe(state);
    expect(() => addVolume(state, 'cfg', { path: '/b' }, now)).toThrow(
      'already exists with different options',
    );
  });

  it('keeps the directory given to a volume whose name holds a secret, across Create and a reload', () => {
    const { state } = addVolume(emptyState(), 'label.a_pw.x', {}, now, 'label.a_pw.hidden-0a1b');
    expect(getVolume(state, 'label.a_pw.x').dir).toBe('label.a_pw.hidden-0a1b');
    expect(addVolume(state, 'label.a_pw.x', {}, now, 'other').state).toBe(state);
    expect(parseState(JSON.parse(JSON.stringify(state)), 'f')).toEqual(state);
    expect(() => addVolume(emptyState(), 'v', {}, now, '../escape')).toThrow("contains '/'");
    const bad = { version: 1, volumes: { v: { dir: '..' } } };
    expect(() => parseState(bad, 'f')).toThrow("contains '..'");
  });

  it('removes a volume and says "no such volume" for unknown names', () => {
    const { state } = addVolume(emptyState(), 'cfg', {}, now);
    expect(removeVolume(state, 'cfg').volumes).toEqual({});
    expect(() => removeVolume(state, 'nope')).toThrow(OperationError);
    expect(() => getVolume(state, 'nope')).toThrow('no such volume: nope');
  });

  it('replaces references', () => {
    const { state } = addVolume(emptyState(), 'cfg', {}, now);
    expect(getVolume(withRefs(state, 'cfg', { id1: 2 }), 'cfg').refs).toEqual({ id1: 2 });
  });

  it('reads back what it wrote, dropping bad refs and non-string options', () => {
    const { state } = addVolume(emptyState(), 'cfg', { hosts: 'h:1' }, now);
    const written = JSON.parse(JSON.stringify(withRefs(state, 'cfg', { id: 1 })));
    expect(parseState(written, 'f')).toEqual(withRefs(state, 'cfg', { id: 1 }));
    const odd = { version: 1, volumes: { v: { options: { a: 'x', b: 3 }, refs: { i: -1 } } } };
    expect(parseState(odd, 'f').volumes.v).toEqual({
      name: 'v',
      options: { a: 'x' },
      createdAt: new Date(0).toISOString(),
      refs: {},
    });
  });

  it.each([
    [null, 'does not hold an object'],
    [[], 'does not hold an object'],
    [{ version: 2, volumes: {} }, 'has version 2'],
    [{ version: 1, volumes: { 'a/b': {} } }, "contains '/'"],
    [{ version: 1, volumes: { v: { dir: '../v' } } }, "contains '/'"],
  ])('refuses corrupt state %j, naming the file (exit 1, not a usage error)', (value, why) => {
    expect(() => parseState(value, '/x/state.json')).toThrow(why);
    expect(() => parseState(value, '/x/state.json')).toThrow('/x/state.json');
    expect(() => parseState(value, '/x/state.json')).toThrow(OperationError);
    expect(() => parseState(value, '/x/state.json')).not.toThrow(UsageError);
  });
});
