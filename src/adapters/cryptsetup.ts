/**
 * LUKS through `cryptsetup`. The passphrase always travels on standard input
 * (`--key-file -`, which reads it byte for byte, no trailing newline), never
 * in argv or a log line; stdin is closed once written so luksFormat cannot
 * hang as it did in the original tool (shared/reference.md §1).
 *
 * Exports: `luksFormat`, `checkFormatSettings`, `testPassphrase`, `open`, `close`, `mappedDevice`, `isLuks`, `deviceMapperAvailable`,
 * `FAST_KDF_ENV`, `LuksFormatOptions`, and the argv builders `luksFormatArgs`, `openArgs`,
 * `closeArgs` (what luksFormat, open and close run, for a dry run to show).
 */
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OperationError } from '../core/errors.js';
import { run, ToolError } from './exec.js';
import type { Logger } from './logger.js';

/**
 * When this environment variable is "1", key slots use PBKDF2 with 1000
 * iterations: fast and weak. For tests only; a warning is logged every time.
 */
export const FAST_KDF_ENV = 'SIMPLECTL_INSECURE_FAST_KDF';

export interface LuksFormatOptions {
  cipher?: string | null;
  keySizeBits?: number | null;
  hash?: string | null;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
}

function logOpts(logger: Logger | undefined, purpose: string, passphrase?: string) {
  return {
    ...(logger ? { logger } : {}),
    purpose,
    ...(passphrase !== undefined ? { input: passphrase, secrets: [passphrase] } : {}),
  };
}

function fastKdf(env: NodeJS.ProcessEnv | undefined): boolean {
  return (env ?? process.env)[FAST_KDF_ENV] === '1';
}

/** The argv (after `cryptsetup`) luksFormat runs; the passphrase is not in it (stdin). */
export function luksFormatArgs(device: string, options: Omit<LuksFormatOptions, 'logger'> = {}): string[] {
  const args = ['luksFormat', '--batch-mode', '--key-file', '-'];
  if (options.cipher) args.push('--cipher', options.cipher);
  if (options.keySizeBits) args.push('--key-size', String(options.keySizeBits));
  if (options.hash) args.push('--hash', options.hash);
  if (fastKdf(options.env)) args.push('--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000');
  args.push(device);
  return args;
}

export async function luksFormat(
  device: string,
  passphrase: string,
  options: LuksFormatOptions = {},
): Promise<void> {
  if (fastKdf(options.env)) {
    options.logger?.warn(`${FAST_KDF_ENV}=1: using a weak key derivation (tests only)`);
  }
  await run(
    'cryptsetup',
    luksFormatArgs(device, options),
    logOpts(options.logger, `formatting ${device} as LUKS`, passphrase),
  );
}

/** A LUKS2 header with its default 16 MiB of metadata fits, with room for the key slots. */
const TRIAL_BYTES = 32 * 1024 * 1024;

/**
 * Whether cryptsetup accepts these cipher, key size and hash, asked by
 * formatting a sparse scratch file with them (and a throwaway passphrase):
 * only luksFormat itself knows which combinations the kernel supports
 * (aes-xts takes 256 or 512 bits, not 128), and it would otherwise tell
 * after the disk was wiped. Throws an OperationError naming cryptsetup's reason.
 */
export async function checkFormatSettings(options: LuksFormatOptions = {}): Promise<void> {
  const dir = await scratchDir();
  if (dir === undefined) {
    options.logger?.warn(
      `no writable directory for a scratch file (${SCRATCH_PARENTS().join(', ')}): the LUKS settings ` +
        'are left for luksFormat itself to check',
    );
    return;
  }
  try {
    const file = join(dir, 'trial.img');
    await writeFile(file, '', { mode: 0o600 });
    await truncate(file, TRIAL_BYTES);
    // The key derivation's cost is no setting to check: the cheapest one keeps the trial quick.
    const args = luksFormatArgs(file, { ...options, env: { [FAST_KDF_ENV]: '1' } });
    await run('cryptsetup', args, {
      ...logOpts(options.logger, 'checking the LUKS settings on a scratch file'),
      input: 'trial',
    }).catch((error: unknown) => {
      const said = error instanceof ToolError ? error.stderr.trim().split('\n').join('; ') : '';
      const reason = (said || (error instanceof Error ? error.message : String(error))).replace(/\.$/, '');
      throw new OperationError(`cryptsetup refuses ${describeSettings(options)}: ${reason}`, {
        cause: error,
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Where a scratch file may go: the temporary directory, else the tmpfs a read-only root still has. */
const SCRATCH_PARENTS = () => [...new Set([tmpdir(), '/run', '/dev/shm'])];

async function scratchDir(): Promise<string | undefined> {
  for (const parent of SCRATCH_PARENTS()) {
    const dir = await mkdtemp(join(parent, 'simplectl-luks-trial-')).catch(() => undefined);
    if (dir !== undefined) return dir;
  }
  return undefined;
}

function describeSettings(options: LuksFormatOptions): string {
  const parts = [
    options.cipher ? `cipher ${options.cipher}` : 'the default cipher',
    ...(options.keySizeBits ? [`key size ${options.keySizeBits} bits`] : []),
    ...(options.hash ? [`hash ${options.hash}`] : []),
  ];
  return parts.join(', ');
}

/** The argv (after `cryptsetup`) open runs; the passphrase goes on stdin. */
export function openArgs(device: string, name: string): string[] {
  return ['open', '--type', 'luks', '--key-file', '-', device, name];
}

/** The argv (after `cryptsetup`) close runs. */
export function closeArgs(name: string): string[] {
  return ['close', name];
}

/** True when `passphrase` opens the LUKS header on `device`; nothing is mapped. */
export async function testPassphrase(device: string, passphrase: string, logger?: Logger): Promise<boolean> {
  const result = await run('cryptsetup', ['open', '--test-passphrase', '--key-file', '-', device], {
    ...logOpts(logger, `testing the passphrase of ${device}`, passphrase),
    okExitCodes: [2],
  });
  return result.exitCode === 0;
}

/** Maps the LUKS container on `device` to /dev/mapper/`name`; returns that path. */
export async function open(
  device: string,
  name: string,
  passphrase: string,
  logger?: Logger,
): Promise<string> {
  const result = await run('cryptsetup', openArgs(device, name), {
    ...logOpts(logger, `opening ${device} as ${name}`, passphrase),
    okExitCodes: [2],
  });
  if (result.exitCode === 2) throw new OperationError(`the passphrase does not open ${device}`);
  return `/dev/mapper/${name}`;
}

export async function close(name: string, logger?: Logger): Promise<void> {
  await run('cryptsetup', closeArgs(name), logOpts(logger, `closing ${name}`));
}

/**
 * The device mapping `name` sits on, as `cryptsetup status` names it from
 * the mapping's table; null when it names none (not a crypt mapping, or
 * its device is gone).
 */
export async function mappedDevice(name: string, logger?: Logger): Promise<string | null> {
  const result = await run('cryptsetup', ['status', name], {
    ...logOpts(logger, `asking what ${name} maps`),
    okExitCodes: [1, 4],
  });
  return /^\s*device:\s*(\/\S+)/m.exec(result.stdout)?.[1] ?? null;
}

export async function isLuks(device: string, logger?: Logger): Promise<boolean> {
  const result = await run('cryptsetup', ['isLuks', device], {
    ...logOpts(logger, `checking ${device}`),
    okExitCodes: [1],
  });
  return result.exitCode === 0;
}

/** Whether the kernel can map devices (cryptsetup open needs it); tries to load dm_mod once. */
export async function deviceMapperAvailable(
  logger?: Logger,
  options: { load?: boolean } = {},
): Promise<boolean> {
  // Only the kernel's own registry counts: libdevmapper creates /dev/mapper/control on first use
  // even where the kernel has no device-mapper, so that node proves nothing.
  const has = async () => /\bdevice-mapper\b/.test(await readFile('/proc/misc', 'utf8').catch(() => ''));
  if (await has()) return true;
  if (options.load === false) {
    // A dry run changes nothing, the kernel's modules included: it only asks whether dm_mod could load.
    const could = await run('modprobe', ['--dry-run', 'dm_mod'], {
      ...logOpts(logger, 'looking for dm_mod'),
      okExitCodes: [1],
    }).catch(() => undefined);
    return could?.exitCode === 0;
  }
  await run('modprobe', ['dm_mod'], { ...logOpts(logger, 'loading dm_mod'), okExitCodes: [1] }).catch(
    () => {},
  );
  return has();
}
