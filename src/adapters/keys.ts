/**
 * Passphrases kept out of volume names: `encryption-key.NAME` names the file
 * NAME in a root-only key directory. Key files and `--key-file` hold the
 * passphrase itself; one trailing newline is dropped so `echo pass > file` works.
 *
 * Exports: `keyDirectory(env)`, `readKeyFile(path)`, `readNamedKey(name, env)`, `queryPassphrase(query, { env, log })`,
 * `DEFAULT_KEY_DIR`, `KEY_DIR_ENV`, `INLINE_PASSPHRASE_WARNING`.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { OperationError, UsageError } from '../core/errors.js';
import { isQueryWord, type VolumeQuery } from '../core/query.js';
import type { Logger } from './logger.js';

export const DEFAULT_KEY_DIR = '/etc/simplectl/keys';
export const KEY_DIR_ENV = 'SIMPLECTL_KEY_DIR';
export const INLINE_PASSPHRASE_WARNING =
  'the passphrase is part of the volume name, which anyone who can list volumes can read; ' +
  'put it in a root-only key file and use encryption-key.NAME instead';

export function keyDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env[KEY_DIR_ENV];
  return dir !== undefined && dir !== '' ? dir : DEFAULT_KEY_DIR;
}

/** Strips one trailing "\n" (or "\r\n"). */
export function passphraseFromText(text: string): string {
  return text.replace(/\r?\n$/, '');
}

/**
 * Reads a passphrase file. `privateOnly` refuses files that are not regular,
 * are readable or writable by group or others, or belong to another user
 * than root or us: a key anyone can read protects nothing.
 */
export async function readKeyFile(path: string, options: { privateOnly?: boolean } = {}): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new OperationError(
      code === 'ENOENT' ? `key file ${path} does not exist` : `cannot read key file ${path} (${code})`,
    );
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new OperationError(`key file ${path} is not a regular file`);
    if (options.privateOnly) {
      if ((st.mode & 0o077) !== 0) {
        throw new OperationError(
          `key file ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
        );
      }
      const uid = process.getuid?.() ?? 0;
      if (st.uid !== 0 && st.uid !== uid)
        throw new OperationError(`key file ${path} belongs to uid ${st.uid}, not root`);
    }
    const passphrase = passphraseFromText(await handle.readFile('utf8'));
    if (passphrase === '') throw new OperationError(`key file ${path} is empty`);
    return passphrase;
  } finally {
    await handle.close();
  }
}

/**
 * The passphrase in the key directory's root-only file `name`, as
 * `encryption-key.NAME` and `luks-open --key-name NAME` both name it.
 */
export async function readNamedKey(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (!isQueryWord(name)) throw new UsageError(`'${name}' is not a key name (letters, digits and '-')`);
  return readKeyFile(join(keyDirectory(env), name), { privateOnly: true });
}

/**
 * The passphrase a query asks for: from the key directory for
 * `encryption-key.NAME`, inline (with a warning) for `encryption-passphrase`,
 * null when the query wants no encryption.
 */
export async function queryPassphrase(
  query: VolumeQuery,
  options: { env?: NodeJS.ProcessEnv; log?: Logger } = {},
): Promise<string | null> {
  if (query.encryptionKey !== null) {
    const passphrase = await readNamedKey(query.encryptionKey, options.env);
    options.log?.addSecret(passphrase);
    return passphrase;
  }
  if (query.encryptionPassphrase !== null) {
    options.log?.warn(INLINE_PASSPHRASE_WARNING);
    options.log?.addSecret(query.encryptionPassphrase);
    return query.encryptionPassphrase;
  }
  return null;
}
