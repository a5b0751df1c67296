/**
 * The per-invocation state of a CLI run, built from the global options once
 * commander has parsed them. Command files receive a getter, because options
 * are only known when an action runs.
 */
import { createInterface } from 'node:readline/promises';
import { createLogger, isLogLevel, type Logger, type LogLevel } from '../adapters/logger.js';
import type { CommandContext } from '../commands/context.js';
import { UsageError } from '../core/errors.js';
import { createOutput, type Output } from './output.js';

export type Tool = 'simplectl' | 'zkfsctl';

export interface GlobalOptions {
  logLevel: string;
  json: boolean;
  color: boolean;
  debug: boolean;
}

export interface App {
  tool: Tool;
  out: Output;
  log: Logger;
  debug: boolean;
  /** A handler context; `yes` answers every confirmation in advance. */
  context(options?: { yes?: boolean; progress?: (step: string) => void }): CommandContext;
}

export interface AppIO {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  interactive?: boolean;
  env?: NodeJS.ProcessEnv;
}

export function createApp(tool: Tool, options: GlobalOptions, io: AppIO = {}): App {
  const env = io.env ?? process.env;
  const level: LogLevel = options.debug ? 'debug' : isLogLevel(options.logLevel) ? options.logLevel : 'warn';
  if (!options.debug && !isLogLevel(options.logLevel)) {
    throw new UsageError(`invalid --log-level '${options.logLevel}' (expected error, warn, info or debug)`);
  }
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  const color =
    options.color && !noColor && !options.json && (io.stdout !== undefined || Boolean(process.stdout.isTTY));
  const out = createOutput({
    json: options.json,
    color,
    ...(io.stdout ? { stdout: io.stdout } : {}),
    ...(io.stderr ? { stderr: io.stderr } : {}),
    ...(io.interactive !== undefined ? { interactive: io.interactive } : {}),
  });
  const log = createLogger({ level, name: tool, write: (line) => out.stderr(`${line}\n`) });
  return {
    tool,
    out,
    log,
    debug: options.debug,
    context: (ctx = {}) => ({
      log,
      progress: ctx.progress ?? (() => {}),
      confirm: async (question) => {
        if (ctx.yes) return true;
        if (!process.stdin.isTTY || !process.stderr.isTTY) {
          throw new UsageError(`${question} Refusing without --yes: there is no terminal to ask.`);
        }
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        // Ctrl-C (the prompt's raw terminal sends no signal) and Ctrl-D answer no. Unheard, they
        // left the question pending with nothing to wait for, and the command ended with status 0.
        const abandoned = new Promise<string>((resolve) => {
          rl.once('SIGINT', () => {
            out.stderr('^C\n');
            resolve('');
          });
          rl.once('close', () => resolve(''));
        });
        try {
          const asked = rl.question(`${question} Type "yes" to continue: `).catch(() => '');
          const answer = await Promise.race([asked, abandoned]);
          return answer.trim().toLowerCase() === 'yes';
        } finally {
          rl.close();
        }
      },
    }),
  };
}
