import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import {
  checkVolumeName,
  DEFAULT_QUERY,
  formatQuery,
  parseOptionPairs,
  parseQuery,
  QUERY_FIELDS,
  querySecrets,
  redactQuery,
  UNTYPED_LABEL,
  type VolumeQuery,
} from '../../src/core/query.js';

function q(overrides: Partial<VolumeQuery>): VolumeQuery {
  return { ...DEFAULT_QUERY, ...overrides };
}

function error(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
}

describe('parseQuery: defaults', () => {
  it('applies every documented default', () => {
    expect(parseQuery('label.fast')).toEqual({
      label: 'fast',
      ownHostname: false,
      ownMachineId: false,
      initialized: false,
      basename: 'simple-',
      namingStyle: 'numeric',
      exclusive: true,
      minSize: 0,
      maxSize: 0,
      minDisks: 1,
      maxDisks: 0,
      dynamicMounts: false,
      persistNumbering: false,
      filesystem: null,
      encryptionPassphrase: null,
      encryptionKey: null,
      encryptionCipher: null,
      encryptionKeySize: null,
      encryptionHash: null,
    });
  });

  it('gives a label-less query the untyped label only when asked to', () => {
    expect(parseQuery('filesystem.xfs', {}, { requireLabel: false }).label).toBe(UNTYPED_LABEL);
    expect(error(() => parseQuery('filesystem.xfs')).message).toMatch(/no label/);
  });
});

describe('parseQuery: every field', () => {
  it.each<[string, Partial<VolumeQuery>]>([
    ['own-hostname.true', { ownHostname: true }],
    ['own-hostname', { ownHostname: true }],
    ['own-machine-id.yes', { ownMachineId: true }],
    ['initialized.1', { initialized: true }],
    ['initialized.false', { initialized: false }],
    ['basename.disk-', { basename: 'disk-' }],
    ['naming-style.uuid', { namingStyle: 'uuid' }],
    ['naming-style.numeric', { namingStyle: 'numeric' }],
    ['exclusive.false', { exclusive: false }],
    ['exclusive.off', { exclusive: false }],
    ['min-size.100G', { minSize: 100e9 }],
    ['max-size.2Ti', { maxSize: 2 * 2 ** 40 }],
    ['min-size.1GiB', { minSize: 2 ** 30 }],
    ['min-disks.0', { minDisks: 0 }],
    ['min-disks.3', { minDisks: 3 }],
    ['max-disks.4', { maxDisks: 4 }],
    ['dynamic-mounts.true', { dynamicMounts: true }],
    ['persist-numbering.true_max-disks.2', { persistNumbering: true, maxDisks: 2 }],
    ['filesystem.xfs', { filesystem: 'xfs' }],
    ['filesystem.btrfs', { filesystem: 'btrfs' }],
    ['filesystem.ext4', { filesystem: 'ext4' }],
    [
      'encryption-passphrase.yahFiepha9Cai9Iep1Baeb2ofeiKae',
      { encryptionPassphrase: 'yahFiepha9Cai9Iep1Baeb2ofeiKae' },
    ],
    ['encryption-key.backup', { encryptionKey: 'backup' }],
    [
      'encryption-key.k_encryption-cipher.aes-xts-plain64_encryption-key-size.512_encryption-hash.sha256',
      {
        encryptionKey: 'k',
        encryptionCipher: 'aes-xts-plain64',
        encryptionKeySize: 512,
        encryptionHash: 'sha256',
      },
    ],
  ])('label.fast_%s', (settings, expected) => {
    expect(parseQuery(`label.fast_${settings}`)).toEqual(q({ label: 'fast', ...expected }));
  });

  it('keeps encryption-cipher and encryption-hash apart (the old parser mapped one onto the other)', () => {
    const parsed = parseQuery('label.a_encryption-key.k_encryption-cipher.serpent-xts-plain64');
    expect(parsed.encryptionCipher).toBe('serpent-xts-plain64');
    expect(parsed.encryptionHash).toBeNull();
  });

  it('accepts a 36-character label', () => {
    expect(parseQuery(`label.${'a'.repeat(36)}`).label).toHaveLength(36);
  });

  it('has a test row for every field in QUERY_FIELDS', () => {
    expect(QUERY_FIELDS.map((f) => f.key)).toEqual([
      'label',
      'own-hostname',
      'own-machine-id',
      'initialized',
      'basename',
      'naming-style',
      'exclusive',
      'min-size',
      'max-size',
      'min-disks',
      'max-disks',
      'dynamic-mounts',
      'persist-numbering',
      'filesystem',
      'encryption-passphrase',
      'encryption-key',
      'encryption-cipher',
      'encryption-key-size',
      'encryption-hash',
    ]);
  });
});

describe('parseQuery: options merged over the name', () => {
  it('lets -o options add and override settings', () => {
    const parsed = parseQuery('label.fast_min-disks.2', { 'min-disks': '3', filesystem: 'xfs' });
    expect(parsed).toEqual(q({ label: 'fast', minDisks: 3, filesystem: 'xfs' }));
  });

  it('accepts a label from options alone', () => {
    expect(parseQuery('', { label: 'slow' }).label).toBe('slow');
  });

  it('accepts passphrases with characters a volume name cannot hold', () => {
    expect(
      parseQuery('label.a', { 'encryption-passphrase': 'two words_and.dots' }).encryptionPassphrase,
    ).toBe('two words_and.dots');
  });

  it('accepts a cipher or hash as cryptsetup names it from -o, which a volume name cannot hold', () => {
    const parsed = parseQuery('label.a_encryption-key.k', {
      'encryption-cipher': 'aes-cbc-essiv:sha256',
      'encryption-hash': 'sha512',
    });
    expect({ cipher: parsed.encryptionCipher, hash: parsed.encryptionHash }).toEqual({
      cipher: 'aes-cbc-essiv:sha256',
      hash: 'sha512',
    });
    expect(
      parseQuery('label.a_encryption-key.k', { 'encryption-cipher': 'capi:xts(aes)-plain64' })
        .encryptionCipher,
    ).toBe('capi:xts(aes)-plain64');
    expect(error(() => parseQuery('label.a', { 'encryption-cipher': 'aes xts' })).message).toBe(
      "invalid volume query 'label.a': -o encryption-cipher=aes xts may hold only printable characters, no space, and not begin with '-'",
    );
    expect(error(() => parseQuery('label.a', { 'encryption-hash': '--help' })).message).toContain(
      "-o encryption-hash=--help may hold only printable characters, no space, and not begin with '-'",
    );
    // The key names a file in the key directory: still a plain name.
    expect(error(() => parseQuery('label.a', { 'encryption-key': '../k' })).message).toContain(
      "-o encryption-key=../k may hold only letters, digits and '-' (not first)",
    );
  });

  it('accepts sizes with a decimal point in options', () => {
    expect(parseQuery('label.a', { 'min-size': '1.5G' }).minSize).toBe(1.5e9);
  });

  it('rejects unknown option keys and bad option values, naming them', () => {
    expect(error(() => parseQuery('label.a', { colour: 'red' })).message).toMatch(
      /unknown option 'colour' \(known: label, /,
    );
    expect(error(() => parseQuery('label.a', { 'max-disks': 'many' })).message).toBe(
      "invalid volume query 'label.a': -o max-disks=many is not a whole number",
    );
  });

  it('names a bad option as it was given, -o KEY=VALUE, once', () => {
    expect(error(() => parseQuery('label.a', { filesystem: 'zfs' })).message).toBe(
      "invalid volume query 'label.a': -o filesystem=zfs is not one of ext4, xfs, btrfs, ext3, ext2",
    );
    expect(error(() => parseQuery('label.a', { 'encryption-passphrase': '' })).message).toBe(
      "invalid volume query 'label.a': -o encryption-passphrase needs a value (-o encryption-passphrase=VALUE)",
    );
    expect(error(() => parseQuery('label.a', { 'encryption-passphrase': 'a\0b' })).message).toBe(
      "invalid volume query 'label.a': -o encryption-passphrase=*** may not contain a NUL byte",
    );
  });
});

describe('parseQuery: errors name the setting', () => {
  it.each<[string, RegExp]>([
    ['label.a_colour.red', /unknown setting 'colour'/],
    [
      '3e6b0c1f9d2a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e',
      /anonymous volume.*docker volume create -d simple label\.NAME/,
    ],
    ['label.a.b', /malformed setting 'label\.a\.b'.*found 2/],
    ['label.a__exclusive.true', /setting 2 is empty/],
    ['label.a_', /setting 2 is empty/],
    ['_label.a', /setting 1 is empty/],
    ['label.a_label.b', /'label' is given twice/],
    ['label', /'label' needs a value/],
    ['label.', /'label' needs a value/],
    ['label.-a', /value '-a' may hold only/],
    [`label.${'a'.repeat(37)}`, /37 characters long.*at most 36/],
    ['label.simple-metadata', /reserved/],
    ['label.a_exclusive.maybe', /'exclusive': 'maybe' is not a boolean/],
    ['label.a_min-size.big', /'min-size': 'big' is not a size/],
    ['label.a_min-size', /'min-size' needs a value/],
    ['label.a_min-disks.two', /'min-disks': 'two' is not a whole number/],
    ['label.a_max-disks.99999999999', /'max-disks'.*not a whole number/],
    ['label.a_naming-style.alpha', /'naming-style': 'alpha' is not one of numeric, uuid/],
    ['label.a_filesystem.ntfs', /'filesystem': 'ntfs' is not one of ext4, xfs, btrfs/],
    ['label.a_encryption-key.k_encryption-key-size.7', /a multiple of 8/],
    ['label.a_min-disks.3_max-disks.2', /min-disks \(3\) is greater than max-disks \(2\)/],
    ['label.a_min-size.2G_max-size.1G', /min-size \(2G\) is greater than max-size \(1G\)/],
    ['label.a_persist-numbering.true', /persist-numbering needs max-disks/],
    [
      'label.a_persist-numbering.true_max-disks.2_naming-style.uuid',
      /persist-numbering needs naming-style numeric/,
    ],
    ['label.a_encryption-passphrase.x_encryption-key.y', /not both/],
    [
      'label.a_encryption-cipher.aes-xts-plain64',
      /encryption-cipher needs encryption-passphrase or encryption-key/,
    ],
    ['label.a_encryption-hash.sha1', /encryption-hash needs/],
    ['label.a_encryption-key-size.256', /encryption-key-size needs/],
    ['label.a_bad!key.1', /'bad!key' is not a valid key/],
    ['', /no label/],
  ])('%j', (name, message) => {
    expect(error(() => parseQuery(name)).message).toMatch(message);
  });

  it('exits with the usage code', () => {
    expect(error(() => parseQuery('label.a_x.y')).exitCode).toBe(2);
  });

  it('never repeats a passphrase in an error', () => {
    const e = error(() => parseQuery('label.a_encryption-passphrase.hunter2_colour.red'));
    expect(e.message).not.toContain('hunter2');
    expect(e.message).toContain('encryption-passphrase.***');
    const e2 = error(() => parseQuery('label.a_encryption-passphrase.hunter2.x'));
    expect(e2.message).not.toContain('hunter2');
  });
});

describe('checkVolumeName', () => {
  it.each([
    ['label.', "setting 'label' needs a value"],
    ['min-disks.x', "setting 'min-disks': 'x' is not a whole number"],
    ['label.a_label.b', "setting 'label' is given twice"],
    ['label.a.b', "one '.' separates key and value"],
    ['label.a__min-disks.2', 'setting 2 is empty'],
    ['', 'it is empty'],
  ])('rejects %j, naming the problem', (name, problem) => {
    expect(() => checkVolumeName(name)).toThrow(UsageError);
    expect(() => checkVolumeName(name)).toThrow(problem);
  });

  it.each(['label.fast', 'min-disks.2', 'encryption-cipher.aes-xts-plain64'])(
    'accepts %j, which -o options could complete',
    (name) => {
      expect(() => checkVolumeName(name)).not.toThrow();
    },
  );
});

describe('formatQuery', () => {
  it('prints only the label for a default query', () => {
    expect(formatQuery(parseQuery('label.fast'))).toBe('label.fast');
  });

  it('prints non-default settings in field order with canonical values', () => {
    const parsed = parseQuery('filesystem.xfs_min-size.100GB_exclusive.no_label.fast_own-hostname');
    expect(formatQuery(parsed)).toBe(
      'label.fast_own-hostname.true_exclusive.false_min-size.100G_filesystem.xfs',
    );
  });

  it.each([
    'label.fast',
    'label.a_own-hostname.true_own-machine-id.true_initialized.true',
    'label.a_basename.d-_naming-style.uuid_exclusive.false',
    'label.a_min-size.1Gi_max-size.2T_min-disks.0_max-disks.5',
    'label.a_max-disks.3_dynamic-mounts.true_persist-numbering.true',
    'label.a_filesystem.btrfs_encryption-passphrase.secret',
    'label.a_encryption-key.k_encryption-cipher.aes-xts-plain64_encryption-key-size.512_encryption-hash.sha512',
  ])('round-trips %s', (name) => {
    const parsed = parseQuery(name);
    expect(formatQuery(parsed)).toBe(name);
    expect(parseQuery(formatQuery(parsed))).toEqual(parsed);
  });

  it('redacts passphrases on request', () => {
    expect(formatQuery(parseQuery('label.a_encryption-passphrase.secret'), { redact: true })).toBe(
      'label.a_encryption-passphrase.***',
    );
    expect(redactQuery('label.a_encryption-passphrase.secret_min-disks.2')).toBe(
      'label.a_encryption-passphrase.***_min-disks.2',
    );
  });

  it.each([
    ['label.a', {}, []],
    ['label.a_encryption-passphrase.secret_min-disks.2', {}, ['secret']],
    ['label.a', { 'encryption-passphrase': 'two words', 'min-disks': '2' }, ['two words']],
    // Read leniently: a malformed or unknown-keyed name still gives up its passphrase.
    ['label.a_encryption-passphrase.se.cret_bogus', {}, ['se.cret', 'se.cret_bogus']],
    ['encryption-passphrase.x__', { label: 'a' }, ['x', 'x__']],
    // A passphrase with '_' in it: what follows up to the next real setting is part of it.
    ['label.a_encryption-passphrase.abc_secret_pass_min-disks.2', {}, ['abc', 'abc_secret_pass']],
    ['label.a_encryption-passphrase', {}, []],
  ] as const)('finds the passphrases in %s %o', (name, options, expected) => {
    expect(querySecrets(name, options)).toEqual(expected);
  });

  it('reads -o key=value pairs, values holding any character', () => {
    expect(parseOptionPairs(['min-disks=2', 'encryption-passphrase=a=b c'])).toEqual({
      'min-disks': '2',
      'encryption-passphrase': 'a=b c',
    });
    expect(parseOptionPairs([])).toEqual({});
  });

  it.each([
    ['encryption-passphrase:hunter2', "-o 'encryption-passphrase…' is not key=value"],
    ['min-disks', "-o 'min-disks…' is not key=value"],
    ['=hunter2', "-o '=…' names no setting (key=value)"],
  ])('refuses -o %s without showing what follows the key', (pair, message) => {
    const e = error(() => parseOptionPairs([pair]));
    expect(e.message).toBe(message);
    expect(e).toBeInstanceOf(UsageError);
  });

  it('refuses to write a passphrase a name cannot hold, without showing it', () => {
    const parsed = parseQuery('label.a', { 'encryption-passphrase': 'two words' });
    const e = error(() => formatQuery(parsed));
    expect(e.message).toContain('encryption-passphrase');
    expect(e.message).not.toContain('two words');
  });
});
