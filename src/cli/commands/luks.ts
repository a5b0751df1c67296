import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { passphraseFromText, readKeyFile, readNamedKey } from '../../adapters/keys.js';
import type { Logger } from '../../adapters/logger.js';
import { luksClose } from '../../commands/luks-close.js';
import { luksOpen } from '../../commands/luks-open.js';
import { UsageError } from '../../core/errors.js';
import type { App } from '../app.js';
import { printResult } from '../output.js';
import { STATE_DIR_HELP } from './shared-options.js';

/** Asks on the terminal without echoing what is typed. */
async function promptHidden(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const writer = rl as unknown as { _writeToOutput: (s: string) => void };
  let muted = false;
  writer._writeToOutput = (s: string) => {
    if (!muted) process.stderr.write(s);
  };
  try {
    return await new Promise<string>((resolve) => {
      rl.question(question, resolve);
      muted = true;
    });
  } finally {
    process.stderr.write('\n');
    rl.close();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * --key-file, else --key-name from the key directory, else stdin, else a
 * prompt on a terminal: the prompt is left to luksOpen, which asks only once
 * its checks pass, so nobody types a passphrase for a disk that cannot be opened.
 */
async function passphrase(
  options: { keyFile?: string; keyName?: string },
  device: string,
  log: Logger,
): Promise<string | (() => Promise<string>)> {
  if (options.keyFile !== undefined && options.keyName !== undefined) {
    throw new UsageError('give --key-file or --key-name, not both');
  }
  if (options.keyFile !== undefined) return readKeyFile(options.keyFile, { log, dashIsStdin: true });
  if (options.keyName !== undefined) return readNamedKey(options.keyName);
  if (process.stdin.isTTY) return () => promptHidden(`Passphrase for ${device}: `);
  return passphraseFromText(await readStdin());
}

export function luksOpenCommand(getApp: () => App): Command {
  return new Command('luks-open')
    .description('open the LUKS data partition of an initialised disk as /dev/mapper/simple-<PARTUUID>')
    .argument('<device>', 'initialised disk or its data partition')
    .option('--key-file <path>', 'read the passphrase from this file instead of a prompt or stdin')
    .option('--key-name <name>', 'read the passphrase from this root-only file in the key directory')
    .option('--name <name>', 'mapping name (default simple-<PARTUUID of the data partition>)')
    .action(async (device: string, options: { keyFile?: string; keyName?: string; name?: string }) => {
      const app = getApp();
      const secret = await passphrase(options, device, app.log);
      const result = await luksOpen(
        { device, passphrase: secret, ...(options.name !== undefined ? { name: options.name } : {}) },
        app.context(),
      );
      printResult(app.out, result, (r) => `${r.dataPartition} opened as ${r.mapper}`);
    });
}

export function luksCloseCommand(getApp: () => App): Command {
  return new Command('luks-close')
    .description('close an opened LUKS mapping')
    .argument('<name>', 'mapping name, or /dev/mapper/NAME')
    .option('--state-dir <dir>', `${STATE_DIR_HELP}: a volume mount under way there finishes first`)
    .action(async (name: string, options: { stateDir?: string }) => {
      const app = getApp();
      const result = await luksClose({ name, ...options }, app.context());
      printResult(app.out, result, (r) => `${r.name} closed`);
    });
}
