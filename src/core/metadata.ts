/**
 * The metadata blob at offset 0 of a disk's `simple-metadata` partition:
 * compact JSON followed by one NUL byte, byte-compatible with the original Go
 * tool (shared/reference.md §1, "Disk layout").
 *
 * Exports:
 * - `DiskMetadata`, `newMetadata(fields)`.
 * - `encodeMetadata(m)`: Buffer holding the JSON and its terminating NUL. Key order
 *   version, hostname, machine_id, label, numbering, encrypted, metadata, then unknown keys in
 *   the order they were read; strings escaped as Go's encoding/json does.
 * - `decodeMetadata(bytes)`: reads up to the first NUL; unknown keys are kept in `extra`.
 *   Throws MetadataError saying what is wrong.
 * - `METADATA_PARTITION_BYTES`: the most a blob (with its NUL) may take.
 */

/** 1 MiB: the metadata partition created by `sgdisk -n 1:1M:2M` is 2049 sectors; we use the first MiB. */
export const METADATA_PARTITION_BYTES = 1024 * 1024;
export const METADATA_VERSION = 1;

export interface DiskMetadata {
  version: number;
  hostname: string;
  /** Contents of /etc/machine-id of the host that initialised the disk. */
  machineId: string;
  label: string;
  /** Last number this disk had in a volume ("" when never numbered). */
  numbering: string;
  encrypted: boolean;
  /** Free-form string pairs. We record `filesystem` here so encrypted disks can be matched unopened. */
  metadata: Record<string, string>;
  /** Keys this version does not know, in the order read; written back unchanged. */
  extra: [string, unknown][];
}

export class MetadataError extends Error {
  override readonly name = 'MetadataError';

  constructor(
    message: string,
    /** The partition holds nothing: initialize-disk writes it right after the partition table, and stopped between the two. */
    readonly empty = false,
  ) {
    super(message);
  }
}

export function newMetadata(
  fields: Partial<Omit<DiskMetadata, 'extra'>> & { extra?: [string, unknown][] } = {},
): DiskMetadata {
  return {
    version: METADATA_VERSION,
    hostname: '',
    machineId: '',
    label: '',
    numbering: '',
    encrypted: false,
    metadata: {},
    extra: [],
    ...fields,
  };
}

/**
 * A JSON string as Go's encoding/json writes it: `<`, `>`, `&`, U+2028 and
 * U+2029 as \u escapes, control characters other than \n \r \t as \u00XX.
 */
export function goJsonString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || ch === '<' || ch === '>' || ch === '&' || code === 0x2028 || code === 0x2029) {
      out += `\\u${code.toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return `${out}"`;
}

/** Any JSON value with Go's string escaping; object keys keep their order unless `sortKeys`. */
function goJson(value: unknown, sortKeys = false): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return goJsonString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => goJson(v)).join(',')}]`;
  if (typeof value === 'object') {
    let entries = Object.entries(value as Record<string, unknown>);
    if (sortKeys) entries = entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${goJsonString(k)}:${goJson(v)}`).join(',')}}`;
  }
  throw new MetadataError(`cannot encode a ${typeof value} in disk metadata`);
}

/** The blob to write at offset 0 of the metadata partition (JSON + NUL). */
export function encodeMetadata(m: DiskMetadata): Buffer {
  const known = [
    `"version":${goJson(m.version)}`,
    `"hostname":${goJsonString(m.hostname)}`,
    `"machine_id":${goJsonString(m.machineId)}`,
    `"label":${goJsonString(m.label)}`,
    `"numbering":${goJsonString(m.numbering)}`,
    `"encrypted":${m.encrypted ? 'true' : 'false'}`,
    // Go marshals a map[string]string with its keys sorted.
    `"metadata":${goJson(m.metadata, true)}`,
  ];
  const extra = m.extra
    .filter(([key]) => !KNOWN_KEYS.has(key.toLowerCase()))
    .map(([key, value]) => `${goJsonString(key)}:${goJson(value)}`);
  const json = `{${[...known, ...extra].join(',')}}`;
  const bytes = Buffer.concat([Buffer.from(json, 'utf8'), Buffer.from([0])]);
  if (bytes.length > METADATA_PARTITION_BYTES) {
    throw new MetadataError(
      `disk metadata is ${bytes.length} bytes; at most ${METADATA_PARTITION_BYTES} fit`,
    );
  }
  return bytes;
}

// Go's decoder matches keys case-insensitively, and the original struct had an
// untagged `Version` field that it wrote as "Version": accept both spellings.
const KNOWN_KEYS = new Set([
  'version',
  'hostname',
  'machine_id',
  'label',
  'numbering',
  'encrypted',
  'metadata',
]);

/** Reads a blob (or the whole partition) up to its first NUL. */
export function decodeMetadata(bytes: Uint8Array): DiskMetadata {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = buffer.indexOf(0);
  if (end < 0) throw new MetadataError('no NUL byte ends the metadata');
  if (end === 0) throw new MetadataError('the metadata partition is empty', true);
  const text = buffer.subarray(0, end).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new MetadataError(`the metadata is not JSON (${(error as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new MetadataError('the metadata is not a JSON object');
  }
  const m = newMetadata();
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    const known = key.toLowerCase();
    if (!KNOWN_KEYS.has(known)) {
      m.extra.push([key, value]);
      continue;
    }
    const wrong = (type: string) => new MetadataError(`metadata key '${key}' is not ${type}`);
    switch (known) {
      case 'version':
        if (typeof value !== 'number' || !Number.isInteger(value)) throw wrong('a whole number');
        m.version = value;
        break;
      case 'hostname':
      case 'machine_id':
      case 'label':
      case 'numbering': {
        if (value === null) break; // Go writes an unset string as "", but null decodes to "" too
        if (typeof value !== 'string') throw wrong('a string');
        const prop = known === 'machine_id' ? 'machineId' : known;
        (m as unknown as Record<string, string>)[prop] = value;
        break;
      }
      case 'encrypted':
        if (value === null) break;
        if (typeof value !== 'boolean') throw wrong('a boolean');
        m.encrypted = value;
        break;
      case 'metadata':
        if (value === null) break; // a nil Go map
        if (typeof value !== 'object' || Array.isArray(value)) throw wrong('an object');
        for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
          if (typeof v !== 'string') throw new MetadataError(`metadata entry '${k}' is not a string`);
          m.metadata[k] = v;
        }
        break;
    }
  }
  return m;
}
