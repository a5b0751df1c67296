/**
 * Passphrases kept out of volume names: `encryption-key.NAME` names the file
 * NAME in a root-only key directory. Key files and `--key-file` hold the
 * passphrase itself; one trailing newline is dropped so `echo pass > file` works.
 *
 * `readSecretFile` is the one reader of secret files, also for zkfsctl's `--auth-file`.
 *
 * Exports: `keyDirectory(env)`, `readSecretFile(path, options)`, `readKeyFile(path)`, `readNamedKey(name, env)`,
 * `queryPassphrase(query, { env, log })`,
 * `DEFAULT_KEY_DIR`, `KEY_DIR_ENV`, `INLINE_PASSPHRASE_WARNING`.
 */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, OperationError, UsageError } from '../core/errors.js';
import { isQueryWord, nameHoldsPassphrase, type VolumeQuery } from '../core/query.js';
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

/** How a secret file is named in messages, and what is checked about who can read it. */
export interface SecretFileOptions {
  /** How messages name the file: "key file", "--auth-file". */
  label: string;
  /**
   * Files that are readable or writable by group or others, or belong to
   * another user than root or us: `refuse` them (a secret anyone can read
   * protects nothing) or `warn` about them on `log`. Default: no check.
   */
  othersAccess?: 'refuse' | 'warn' | undefined;
  log?: Logger | undefined;
  /** Read standard input (fd 0) when the path is "-". */
  dashIsStdin?: boolean | undefined;
}

/** What is wrong with who can read a secret file, or undefined. */
function accessProblem(label: string, path: string, mode: number, uid: number): string | undefined {
  if ((mode & 0o077) !== 0) {
    return `${label} ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`;
  }
  const ours = process.getuid?.() ?? 0;
  if (uid !== 0 && uid !== ours) return `${label} ${path} belongs to uid ${uid}, not root`;
  return undefined;
}

/**
 * The whole text of a file holding a secret (passphrase, credentials): a
 * regular file, or standard input for "-" with `dashIsStdin`. Errors name
 * the file by `label`.
 */
export async function readSecretFile(path: string, options: SecretFileOptions): Promise<string> {
  const { label } = options;
  if (path === '-' && options.dashIsStdin) {
    try {
      // fd 0 rather than /dev/stdin: a socket (as Node's child pipes are) cannot be opened by path.
      return readFileSync(0, 'utf8');
    } catch (error) {
      throw new OperationError(`cannot read ${label} - (standard input): ${errorMessage(error)}`);
    }
  }
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new OperationError(
      code === 'ENOENT' ? `${label} ${path} does not exist` : `cannot read ${label} ${path} (${code})`,
    );
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new OperationError(`${label} ${path} is not a regular file`);
    const problem = options.othersAccess ? accessProblem(label, path, st.mode, st.uid) : undefined;
    if (problem !== undefined) {
      if (options.othersAccess === 'refuse') throw new OperationError(problem);
      options.log?.warn(problem);
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Reads a passphrase file. `privateOnly` refuses files that are not regular,
 * are readable or writable by group or others, or belong to another user
 * than root or us: a key anyone can read protects nothing.
 */
export async function readKeyFile(
  path: string,
  options: {
    privateOnly?: boolean;
    /** Where a file others may read is warned about (when not privateOnly). */
    log?: Logger;
    /** "-" is standard input. */
    dashIsStdin?: boolean;
  } = {},
): Promise<string> {
  const text = await readSecretFile(path, {
    label: 'key file',
    othersAccess: options.privateOnly ? 'refuse' : options.log ? 'warn' : undefined,
    ...(options.log ? { log: options.log } : {}),
    ...(options.dashIsStdin ? { dashIsStdin: true } : {}),
  });
  const passphrase = passphraseFromText(text);
  if (passphrase === '') {
    const where = path === '-' && options.dashIsStdin ? '- (standard input)' : path;
    throw new OperationError(`key file ${where} is empty`);
  }
  return passphrase;
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
  options: {
    env?: NodeJS.ProcessEnv;
    log?: Logger;
    /** The volume name the query was parsed from: a passphrase given beside it (`-o`) draws no warning. */
    name?: string;
  } = {},
): Promise<string | null> {
  if (query.encryptionKey !== null) {
    const passphrase = await readNamedKey(query.encryptionKey, options.env);
    options.log?.addSecret(passphrase);
    return passphrase;
  }
  if (query.encryptionPassphrase !== null) {
    if (options.name === undefined || nameHoldsPassphrase(options.name))
      options.log?.warn(INLINE_PASSPHRASE_WARNING);
    options.log?.addSecret(query.encryptionPassphrase);
    return query.encryptionPassphrase;
  }
  return null;
}
