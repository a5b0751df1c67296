/**
 * The only place that starts external programs. Arguments are always an argv
 * array (never a shell string); secrets travel on standard input only, are
 * redacted from every log line and error, and standard input is closed once
 * written so tools such as `cryptsetup luksFormat` never wait for more
 * (shared/reference.md §1: the original kept stdin open and hung).
 */
import { execa } from 'execa';
import { OperationError } from '../core/errors.js';
import { formatCommand, redact } from '../core/redact.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';

export interface RunOptions {
  /** Data for standard input; written then closed. */
  input?: string | Buffer;
  /** Strings that must never be logged or shown (a passphrase sent as `input`, a key). */
  secrets?: readonly string[];
  /** Milliseconds before the process is killed; the error says it timed out. */
  timeoutMs?: number;
  /** Exit codes that are not failures (for example blkid's 2 = "nothing found"). */
  okExitCodes?: readonly number[];
  env?: Record<string, string>;
  cwd?: string;
  logger?: Logger;
  /** What the step was for, used in the error sentence ("partitioning /dev/loop3"). */
  purpose?: string;
  /** A descriptor of ours the tool gets as its fd 3 (mount(8) attaching /dev/fuse). */
  inheritFd?: number;
}

export interface RunResult {
  command: string;
  args: readonly string[];
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A tool ran and failed, or could not be started. Keeps the command line (redacted) and stderr. */
export class ToolError extends OperationError {
  override readonly name: string = 'ToolError';
  readonly commandLine: string;
  readonly toolExitCode: number | undefined;
  readonly stderr: string;

  constructor(message: string, commandLine: string, toolExitCode: number | undefined, stderr: string) {
    super(message, {
      detail: stderr.trim() === '' ? `command: ${commandLine}` : `command: ${commandLine}\n${stderr.trim()}`,
    });
    this.commandLine = commandLine;
    this.toolExitCode = toolExitCode;
    this.stderr = stderr;
  }
}

export async function run(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const logger = options.logger ?? silentLogger;
  const secrets = options.secrets ?? [];
  const shown = formatCommand(command, args, secrets);
  logger.debug(`exec: ${shown}${options.input !== undefined ? ' (with stdin)' : ''}`);
  const started = Date.now();
  const result = await execa(command, [...args], {
    input: options.input ?? '',
    reject: false,
    timeout: options.timeoutMs,
    env: options.env,
    cwd: options.cwd,
    stripFinalNewline: false,
    encoding: 'utf8',
    // execa's types list no plain descriptor beyond fd 2, but it passes one on as Node's spawn does.
    ...(options.inheritFd !== undefined
      ? { stdio: ['pipe', 'pipe', 'pipe', options.inheritFd as unknown as 'inherit'] as const }
      : {}),
  });
  const stdout = redact(String(result.stdout ?? ''), secrets);
  const stderr = redact(String(result.stderr ?? ''), secrets);
  const ok = [0, ...(options.okExitCodes ?? [])];
  logger.debug(`exec: ${command} exited ${result.exitCode ?? 'by signal'} in ${Date.now() - started} ms`);
  const purpose = options.purpose ? `${options.purpose}: ` : '';
  if (result.failed && result.exitCode === undefined) {
    const why = result.timedOut
      ? `timed out after ${options.timeoutMs} ms`
      : result.code === 'ENOENT'
        ? `${command} is not installed (not found in PATH)`
        : redact(result.shortMessage ?? 'could not start', secrets);
    throw new ToolError(`${purpose}${why}`, shown, undefined, stderr);
  }
  const exitCode = result.exitCode ?? -1;
  if (!ok.includes(exitCode)) {
    const line = summaryLine(stderr);
    throw new ToolError(
      `${purpose}${command} failed with exit code ${exitCode}${line ? `: ${line}` : ''}`,
      shown,
      exitCode,
      stderr,
    );
  }
  return { command, args, exitCode, stdout, stderr };
}

/**
 * The stderr line that best says what went wrong: the last one that is not an
 * indented continuation. Tools print banners first (mke2fs its version) and
 * hints last (mount's indented "dmesg(1) may have more information").
 */
export function summaryLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  const own = lines.filter((l) => !/^\s/.test(l));
  return (own.at(-1) ?? lines.at(-1) ?? '').trim();
}

/** True when `command` can be found in PATH. */
export async function hasCommand(command: string): Promise<boolean> {
  const result = await execa('sh', ['-c', 'command -v "$1"', 'sh', command], { reject: false });
  return result.exitCode === 0;
}
