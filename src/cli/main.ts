/**
 * The single place that turns outcomes into exit codes and error text:
 * user errors become one red line (plus the tool's stderr as detail), usage
 * errors (no command given too) exit 2, and only unexpected bugs show a stack
 * (with --debug).
 */
import { type Command, CommanderError } from 'commander';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, errorMessage, isOperationError } from '../core/errors.js';
import type { AppIO, Tool } from './app.js';
import { buildProgram } from './program.js';

/**
 * The flags of options that take a list of values (`--include GLOB...`), which swallow
 * the arguments given after them, of the command `argv` calls (and the program's own).
 */
function greedyOptions(program: Command, argv: readonly string[]): Set<string> {
  const name = argv.find((arg, i) => !arg.startsWith('-') && argv[i - 1] !== '--log-level');
  const command = program.commands.find((c) => c.name() === name || c.aliases().includes(name ?? ''));
  const options = [...program.options, ...(command?.options ?? [])].filter((o) => o.variadic);
  return new Set(options.flatMap((o) => [o.short, o.long].filter((f): f is string => f !== undefined)));
}

/**
 * `argv` with `help NAME` made plain `NAME` when no command is called NAME:
 * commander's help command shows the general usage for it, naming nothing,
 * where the plain word gets "unknown command 'NAME'" and its suggestion.
 */
function helpForUnknown(argv: readonly string[], commands: readonly string[]): readonly string[] {
  const operands: number[] = [];
  for (let i = 0; i < argv.length && operands.length < 2; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    if (arg === '--log-level') i++;
    else if (!arg.startsWith('-')) operands.push(i);
  }
  const [help, name] = operands;
  if (help === undefined || name === undefined || argv[help] !== 'help' || commands.includes(argv[name]!)) {
    return argv;
  }
  return argv.filter((_, i) => i !== help);
}

/** Parses `argv` (without node and script) and runs the command; resolves to the exit code. */
export async function runCli(tool: Tool, argv: readonly string[], io: AppIO = {}): Promise<number> {
  const stderr = io.stderr ?? ((t: string) => process.stderr.write(t));
  const program = buildProgram(tool, io);
  const env = io.env ?? process.env;
  const colorless = argv.includes('--no-color') || (env.NO_COLOR ?? '') !== '' || !process.stderr.isTTY;
  const red = (s: string) => (colorless ? s : `\u001b[31m${s}\u001b[39m`);
  try {
    const names = program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
    await program.parseAsync([...helpForUnknown(argv, names)], { from: 'user' });
    return EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT_OK;
      // `help` asked for exits 0; help commander shows on its own (no command, `help NAME` naming none)
      // went to stderr with a non-zero code, and like any Unix tool's usage message it is a usage error.
      if (error.code === 'commander.help') return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      // commander has already printed its message; unknown commands and bad options are usage errors.
      const lists = error.code === 'commander.missingArgument' ? greedyOptions(program, argv) : undefined;
      const greedy = lists && argv.find((a) => lists.has(a));
      if (greedy) {
        stderr(
          `(${greedy} takes every word after it, up to the next option: give it after the arguments, or end its list with --)\n`,
        );
      }
      return EXIT_USAGE;
    }
    if (isOperationError(error)) {
      stderr(`${red(`${tool}: ${error.message}`)}\n`);
      if (error.detail) stderr(`${error.detail.replace(/^/gm, '  ')}\n`);
      return error.exitCode;
    }
    const debug = argv.includes('--debug');
    stderr(`${red(`${tool}: internal error: ${errorMessage(error)}`)}\n`);
    if (debug && error instanceof Error && error.stack) stderr(`${error.stack}\n`);
    else stderr('  (run with --debug for a stack trace)\n');
    return EXIT_FAILED;
  }
}

export async function main(tool: Tool): Promise<void> {
  // A reader that went away (`| head -1`) ends the output quietly, as SIGPIPE ends a C tool.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      process.exit(process.exitCode ?? 0);
    });
  }
  const code = await runCli(tool, process.argv.slice(2));
  // Long-running commands (serve-plugin, mount --foreground) resolve only when done.
  process.exitCode = code;
}
