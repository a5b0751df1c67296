/**
 * The volume query language: a Docker volume name such as
 * `label.fast_min-size.100G_filesystem.xfs` read into a typed, fully
 * defaulted {@link VolumeQuery}, and printed back.
 *
 * Exports:
 * - `parseQuery(name, options?, { requireLabel? })`: name (plus the plugin's `-o key=value`
 *   options, which override settings of the name) → VolumeQuery. Throws UsageError naming the
 *   bad setting. Passphrases are never quoted in messages.
 * - `checkVolumeName(name)`: throws that UsageError for a name no options could make valid.
 * - `formatQuery(query, { redact? })`: the canonical name (label first, then every non-default
 *   setting in field order); `parseQuery(formatQuery(q))` deep-equals `q`.
 * - `redactQuery(name)`: the name with any passphrase replaced by `***`, for logs and errors.
 * - `querySecrets(name, options)`: the passphrases a name and its options carry, for redaction.
 * - `parseOptionPairs(pairs)`: `-o key=value` arguments → the options parseQuery merges.
 * - `QUERY_FIELDS`: every setting, its kind, default and meaning (README table, help, tests).
 * - `DEFAULT_QUERY`, `UNTYPED_LABEL`, `MAX_LABEL_LENGTH`, `SUPPORTED_FILESYSTEMS`.
 *
 * Syntax and defaults follow shared/reference.md §1; the old parser's five bugs (silent `a.b.c`,
 * ignored unknown keys, sectors vs bytes, cipher read into hash, no defaults) are fixed here.
 */
import { UsageError } from './errors.js';
import { dockerOption } from './option-name.js';
import { REDACTED } from './redact.js';
import { formatSize, parseSize, SizeError } from './units.js';

export type NamingStyle = 'numeric' | 'uuid';

/** Filesystems initialize-disk can create and match-query can ask for. */
export const SUPPORTED_FILESYSTEMS = ['ext4', 'xfs', 'btrfs', 'ext3', 'ext2'] as const;
export type Filesystem = (typeof SUPPORTED_FILESYSTEMS)[number];

/** Label of a disk that has been initialised but not yet given a type (README "Automatic typing"). */
export const UNTYPED_LABEL = 'untyped';
/** GPT partition names hold 36 UTF-16 code units (the old README's "72 characters" counted bytes). */
export const MAX_LABEL_LENGTH = 36;

/** A parsed volume query. Every field has a value: defaults are applied at the door. */
export interface VolumeQuery {
  /** Disk label = GPT name of the data partition. Required in a volume name. */
  label: string;
  /** Only disks whose metadata names this host's hostname. */
  ownHostname: boolean;
  /** Only disks whose metadata names this host's /etc/machine-id. */
  ownMachineId: boolean;
  /** Only disks initialised already: never initialise a blank disk to satisfy the query. */
  initialized: boolean;
  /** Prefix of each disk's directory under the volume root. */
  basename: string;
  namingStyle: NamingStyle;
  /** A disk given to this volume is given to no other. */
  exclusive: boolean;
  /** Minimum whole-disk size in bytes; 0 = none. */
  minSize: number;
  /** Maximum whole-disk size in bytes; 0 = none. */
  maxSize: number;
  minDisks: number;
  /** 0 = unlimited. */
  maxDisks: number;
  dynamicMounts: boolean;
  persistNumbering: boolean;
  /** Filesystem a disk must have; null = any when matching, ext4 when creating. */
  filesystem: Filesystem | null;
  /** Inline passphrase (works, but a warning is printed: it shows in `docker volume ls`). */
  encryptionPassphrase: string | null;
  /** Name of a root-only key file in the key directory (`encryption-key.NAME`). */
  encryptionKey: string | null;
  encryptionCipher: string | null;
  /** LUKS key size in bits. */
  encryptionKeySize: number | null;
  encryptionHash: string | null;
}

export const DEFAULT_QUERY: Readonly<VolumeQuery> = Object.freeze({
  label: '',
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

export type FieldKind =
  | 'label'
  | 'boolean'
  | 'size'
  | 'count'
  | 'choice'
  | 'word'
  | 'spec'
  | 'secret'
  | 'bits';

/** One setting of the query language. */
export interface QueryField {
  key: string;
  property: keyof VolumeQuery;
  kind: FieldKind;
  /** Allowed values for `choice` fields. */
  choices?: readonly string[];
  /** The default as written in a name, or a phrase ("none"). */
  defaultText: string;
  description: string;
}

export const QUERY_FIELDS: readonly QueryField[] = [
  f(
    'label',
    'label',
    'label',
    '(required)',
    'disk label, the GPT name of the data partition (at most 36 characters)',
  ),
  f('own-hostname', 'ownHostname', 'boolean', 'false', "disk metadata must name this host's hostname"),
  f(
    'own-machine-id',
    'ownMachineId',
    'boolean',
    'false',
    "disk metadata must name this host's /etc/machine-id",
  ),
  f(
    'initialized',
    'initialized',
    'boolean',
    'false',
    'use only disks initialised already; never initialise a blank one',
  ),
  f('basename', 'basename', 'word', 'simple-', "prefix of each disk's directory in the volume"),
  f('naming-style', 'namingStyle', 'choice', 'numeric', 'disk directory names: numeric (0, 1, …) or uuid', [
    'numeric',
    'uuid',
  ]),
  f('exclusive', 'exclusive', 'boolean', 'true', 'a disk given to this volume is given to no other'),
  f('min-size', 'minSize', 'size', 'none', 'smallest disk to consider (500M, 100G, 1Ti …)'),
  f('max-size', 'maxSize', 'size', 'none', 'largest disk to consider'),
  f('min-disks', 'minDisks', 'count', '1', 'fewest disks the volume needs (0: mount an empty volume)'),
  f('max-disks', 'maxDisks', 'count', '0', 'most disks the volume takes; 0 = unlimited'),
  f('dynamic-mounts', 'dynamicMounts', 'boolean', 'false', 'add and remove matching disks while mounted'),
  f(
    'persist-numbering',
    'persistNumbering',
    'boolean',
    'false',
    'keep numbered directories for absent disks',
  ),
  f('filesystem', 'filesystem', 'choice', 'any (ext4 when created)', 'filesystem a disk must have or gets', [
    ...SUPPORTED_FILESYSTEMS,
  ]),
  f(
    'encryption-passphrase',
    'encryptionPassphrase',
    'secret',
    'none',
    'LUKS passphrase (prefer encryption-key)',
  ),
  f('encryption-key', 'encryptionKey', 'word', 'none', 'name of a root-only key file in the key directory'),
  f('encryption-cipher', 'encryptionCipher', 'spec', 'LUKS default', 'LUKS cipher when a disk is created'),
  f('encryption-key-size', 'encryptionKeySize', 'bits', 'LUKS default', 'LUKS key size in bits when created'),
  f('encryption-hash', 'encryptionHash', 'spec', 'LUKS default', 'LUKS hash when a disk is created'),
];

function f(
  key: string,
  property: keyof VolumeQuery,
  kind: FieldKind,
  defaultText: string,
  description: string,
  choices?: readonly string[],
): QueryField {
  return choices
    ? { key, property, kind, defaultText, description, choices }
    : { key, property, kind, defaultText, description };
}

const FIELD_BY_KEY = new Map(QUERY_FIELDS.map((field) => [field.key, field]));
/** Keys and values of a name (shared/reference.md §1); fits Docker's volume-name rule. */
const TOKEN = /^[a-zA-Z0-9][a-zA-Z0-9-]*$/;
/** A cipher or hash as cryptsetup names it, given with -o. */
const SPEC = /^[\x21-\x2c\x2e-\x7e][\x21-\x7e]*$/;

/** Whether `text` can be a key or value in a volume name (an `encryption-key` NAME, say). */
export function isQueryWord(text: string): boolean {
  return TOKEN.test(text);
}
const TRUE_WORDS = new Set(['true', 't', 'yes', 'y', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'f', 'no', 'n', 'off', '0']);
const SECRET_KEYS = new Set(QUERY_FIELDS.filter((x) => x.kind === 'secret').map((x) => x.key));

export interface ParseQueryOptions {
  /** When false, a query without `label` gets {@link UNTYPED_LABEL} (initialize-disk). Default true. */
  requireLabel?: boolean;
}

/** Throws the UsageError for a problem with volume name `name` (shown without its secrets). */
function failingFor(name: string): (problem: string) => never {
  const shown = redactQuery(name);
  return (problem) => {
    throw new UsageError(`invalid volume query '${shown}': ${problem}`);
  };
}

/**
 * Reads a volume name and the plugin's `-o` options into a VolumeQuery.
 * Option values may hold characters a name cannot (a passphrase with spaces).
 */
export function parseQuery(
  name: string,
  options: Readonly<Record<string, string>> = {},
  parseOptions: ParseQueryOptions = {},
): VolumeQuery {
  const fail = failingFor(name);
  const query = readSettings(name, fail);
  for (const [key, value] of Object.entries(options)) {
    const field = FIELD_BY_KEY.get(key) ?? fail(unknownKey(key, 'option'));
    assign(query, field, value, fail, true);
  }
  if (query.label === '') {
    if (parseOptions.requireLabel === false) query.label = UNTYPED_LABEL;
    else fail("no label: every query needs 'label.NAME'");
  }
  checkCombination(query, fail);
  return query;
}

/**
 * Throws UsageError, naming the problem, when no `-o` options could make
 * `name` a volume name: a setting that is malformed, unknown, given twice or
 * has a bad value. What options can still supply (the label, a setting a
 * combination needs) is not asked for. For commands that take an existing
 * volume's name (release), where a typo must not read as an unknown volume.
 */
export function checkVolumeName(name: string): void {
  const fail = failingFor(name);
  if (name === '') fail('it is empty');
  readSettings(name, fail);
}

/** The settings of a name over the defaults, each checked on its own; `fail` throws. */
function readSettings(name: string, fail: (problem: string) => never): VolumeQuery {
  if (ANONYMOUS_NAME.test(name)) {
    fail(
      'Docker made this name up for an anonymous volume, and a simple volume is named by its query: create one by name (docker volume create -d simple label.NAME) and use that',
    );
  }
  const query: VolumeQuery = { ...DEFAULT_QUERY };
  const seen = new Set<string>();
  const settings = name === '' ? [] : name.split('_');
  settings.forEach((setting, index) => {
    if (setting === '') fail(`setting ${index + 1} is empty (two '_' in a row, or one at an end)`);
    const parts = setting.split('.');
    if (parts.length > 2) {
      fail(
        `malformed setting '${redactSetting(setting)}': one '.' separates key and value, found ${parts.length - 1}`,
      );
    }
    const [key = '', value] = parts;
    if (!TOKEN.test(key)) fail(`malformed setting '${redactSetting(setting)}': '${key}' is not a valid key`);
    const field = FIELD_BY_KEY.get(key) ?? fail(unknownKey(key));
    if (seen.has(key)) fail(`setting '${key}' is given twice`);
    seen.add(key);
    if (value !== undefined && value !== '' && !TOKEN.test(value)) {
      const v = SECRET_KEYS.has(key) ? REDACTED : value;
      fail(`malformed setting '${key}': value '${v}' may hold only letters, digits and '-' (not first)`);
    }
    assign(query, field, value ?? '', fail);
  });
  return query;
}

function unknownKey(key: string, what: 'setting' | 'option' = 'setting'): string {
  return `unknown ${what} '${key}' (known: ${QUERY_FIELDS.map((x) => x.key).join(', ')})`;
}

/** The name Docker gives a volume nobody named (`docker run -v /data`): 64 hex digits. */
const ANONYMOUS_NAME = /^[0-9a-f]{64}$/;

function redactSetting(setting: string): string {
  const key = setting.split('.')[0] ?? '';
  return SECRET_KEYS.has(key) ? `${key}.${REDACTED}` : setting;
}

/** Stores one setting's value in `query`, checked for its kind. Empty values mean true for booleans. */
function assign(
  query: VolumeQuery,
  field: QueryField,
  value: string,
  fail: (problem: string) => never,
  fromOption = false,
): void {
  // Named as the user gave it: `-o min-disks=x` (plugin, simplectl -o), `min-disks.x` in the name.
  const option = dockerOption(field.key);
  const bad = (why: string): never => {
    const shown = field.kind === 'secret' ? REDACTED : value;
    return fail(
      fromOption ? `${option.withValue(shown)} ${why}` : `setting '${field.key}': '${shown}' ${why}`,
    );
  };
  const target = query as unknown as Record<string, unknown>;
  if (value === '' && field.kind !== 'boolean') {
    fail(
      fromOption
        ? `${option.name} needs a value (${option.withValue('VALUE')})`
        : `setting '${field.key}' needs a value (${field.key}.VALUE)`,
    );
  }
  switch (field.kind) {
    case 'boolean': {
      const word = value.toLowerCase();
      if (word === '' || TRUE_WORDS.has(word)) target[field.property] = true;
      else if (FALSE_WORDS.has(word)) target[field.property] = false;
      else bad('is not a boolean (true or false)');
      return;
    }
    case 'size':
      try {
        target[field.property] = parseSize(value);
      } catch (error) {
        if (error instanceof SizeError)
          bad('is not a size (a number with an optional unit: 500M, 100G, 1Ti, 4GiB)');
        throw error;
      }
      return;
    case 'count':
    case 'bits': {
      if (!/^\d+$/.test(value) || Number(value) > 2 ** 31 - 1) bad('is not a whole number');
      const n = Number(value);
      if (field.kind === 'bits' && (n === 0 || n % 8 !== 0))
        bad('is not a key size in bits (a multiple of 8)');
      target[field.property] = n;
      return;
    }
    case 'choice':
      if (!field.choices?.includes(value)) bad(`is not one of ${field.choices?.join(', ')}`);
      target[field.property] = value;
      return;
    case 'label':
      if (!TOKEN.test(value)) bad("may hold only letters, digits and '-' (not first)");
      if (value.length > MAX_LABEL_LENGTH) {
        bad(`is ${value.length} characters long; a GPT partition name holds at most ${MAX_LABEL_LENGTH}`);
      }
      if (value === 'simple-metadata') bad('is reserved for the metadata partition');
      target[field.property] = value;
      return;
    case 'word':
      if (!TOKEN.test(value)) bad("may hold only letters, digits and '-' (not first)");
      target[field.property] = value;
      return;
    case 'spec':
      // cryptsetup's own names (aes-cbc-essiv:sha256, capi:xts(aes)-plain64), given as one argument:
      // from -o, any printable character but a space; in a name, its separators cannot be there.
      if (fromOption ? !SPEC.test(value) : !TOKEN.test(value)) {
        bad(
          fromOption
            ? "may hold only printable characters, no space, and not begin with '-'"
            : "may hold only letters, digits and '-' (not first); give others with -o",
        );
      }
      target[field.property] = value;
      return;
    case 'secret':
      if (fromOption && value.includes('\0')) bad('may not contain a NUL byte');
      target[field.property] = value;
      return;
  }
}

function checkCombination(q: VolumeQuery, fail: (problem: string) => never): void {
  if (q.maxDisks > 0 && q.minDisks > q.maxDisks) {
    fail(`min-disks (${q.minDisks}) is greater than max-disks (${q.maxDisks})`);
  }
  if (q.maxSize > 0 && q.minSize > q.maxSize) {
    fail(`min-size (${formatSize(q.minSize)}) is greater than max-size (${formatSize(q.maxSize)})`);
  }
  if (q.persistNumbering && q.namingStyle !== 'numeric') fail('persist-numbering needs naming-style numeric');
  if (q.persistNumbering && q.maxDisks === 0) fail('persist-numbering needs max-disks greater than 0');
  if (q.encryptionPassphrase !== null && q.encryptionKey !== null) {
    fail('give encryption-passphrase or encryption-key, not both');
  }
  if (q.encryptionPassphrase === null && q.encryptionKey === null) {
    for (const [value, key] of [
      [q.encryptionCipher, 'encryption-cipher'],
      [q.encryptionKeySize, 'encryption-key-size'],
      [q.encryptionHash, 'encryption-hash'],
    ] as const) {
      if (value !== null) fail(`${key} needs encryption-passphrase or encryption-key`);
    }
  }
}

/** True when the query asks for encrypted disks. */
export function wantsEncryption(q: VolumeQuery): boolean {
  return q.encryptionPassphrase !== null || q.encryptionKey !== null;
}

/**
 * The canonical volume name of `q`. With `redact`, a passphrase is written as
 * `***` (for logs; the result then no longer parses). Throws UsageError when a
 * value (a passphrase given as an option) cannot be written in a name.
 */
export function formatQuery(q: VolumeQuery, options: { redact?: boolean } = {}): string {
  const settings: string[] = [];
  for (const field of QUERY_FIELDS) {
    const value = q[field.property];
    if (field.key !== 'label' && value === DEFAULT_QUERY[field.property]) continue;
    if (value === null) continue;
    let text: string;
    if (typeof value === 'boolean') text = String(value);
    else if (field.kind === 'size') text = formatSize(value as number);
    else text = String(value);
    if (field.kind === 'secret' && options.redact) text = REDACTED;
    else if (!TOKEN.test(text)) {
      const shown = field.kind === 'secret' ? REDACTED : text;
      throw new UsageError(`setting '${field.key}' value '${shown}' cannot be written in a volume name`);
    }
    settings.push(`${field.key}.${text}`);
  }
  return settings.join('_');
}

/** The key of a setting as the name spells it: before the first '.', or all of a flag. */
function settingKey(setting: string): string {
  const dot = setting.indexOf('.');
  return dot < 0 ? setting : setting.slice(0, dot);
}

/**
 * Every passphrase a name and its options carry, read leniently (from a
 * malformed name too), so that a face can hide them before it logs or
 * answers anything about the request.
 */
export function querySecrets(name: string, options: Readonly<Record<string, string>> = {}): string[] {
  const found: string[] = [];
  const settings = name.split('_');
  for (const [i, setting] of settings.entries()) {
    const dot = setting.indexOf('.');
    if (dot > 0 && SECRET_KEYS.has(setting.slice(0, dot))) {
      found.push(setting.slice(dot + 1));
      // A passphrase with '_' in it runs on into what look like settings but are none (the name
      // is refused, naming them): those are part of it too.
      let rest = i + 1;
      while (rest < settings.length && !FIELD_BY_KEY.has(settingKey(settings[rest]!))) rest++;
      if (rest > i + 1)
        found.push(
          settings
            .slice(i, rest)
            .join('_')
            .slice(dot + 1),
        );
    }
  }
  for (const [key, value] of Object.entries(options)) if (SECRET_KEYS.has(key)) found.push(value);
  return [...new Set(found.filter((secret) => secret !== ''))];
}

/**
 * `-o key=value` arguments (as `match-query`, `initialize-disk` and `mount`
 * take them, like the plugin's options) as settings for parseQuery. A
 * malformed one is named by its leading word only: what follows may be a
 * passphrase typed with the wrong separator.
 */
export function parseOptionPairs(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const word = /^[A-Za-z0-9-]*/.exec(pair)?.[0] ?? '';
    if (eq < 0) throw new UsageError(`-o '${word}…' is not key=value`);
    if (eq === 0) throw new UsageError("-o '=…' names no setting (key=value)");
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * Whether the volume name itself carries a passphrase (`encryption-passphrase.X`),
 * rather than the options given beside it: only then can anyone who lists volumes read it.
 */
export function nameHoldsPassphrase(name: string): boolean {
  return name.split('_').some((setting) => setting.split('.')[0] === 'encryption-passphrase');
}

/** The name with the value of any secret setting replaced by `***`. */
export function redactQuery(name: string): string {
  return name
    .split('_')
    .map((setting) => redactSetting(setting))
    .join('_');
}
