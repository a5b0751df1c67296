import { redact } from '../core/redact.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  readonly level: LogLevel;
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  debug(message: string): void;
  /** True when messages at `level` would be written; lets callers skip building expensive debug text. */
  enabled(level: LogLevel): boolean;
  /** Registers a value that must never appear in any later log line. */
  addSecret(secret: string): void;
}

export interface LoggerOptions {
  level: LogLevel;
  /** Where lines go; stderr by default so stdout stays clean for --json. */
  write?: (line: string) => void;
  /** Prefix each line with an ISO timestamp (daemons writing to a file want this). */
  timestamps?: boolean;
  /** Prefix, usually the program name. */
  name?: string;
}

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export function createLogger(options: LoggerOptions): Logger {
  const rank = LOG_LEVELS.indexOf(options.level);
  const secrets: string[] = [];
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const emit = (level: LogLevel, message: string) => {
    if (LOG_LEVELS.indexOf(level) > rank) return;
    const parts: string[] = [];
    if (options.timestamps) parts.push(new Date().toISOString());
    if (options.name) parts.push(`${options.name}:`);
    parts.push(`${level}:`, redact(message, secrets));
    write(parts.join(' '));
  };
  return {
    level: options.level,
    error: (m) => emit('error', m),
    warn: (m) => emit('warn', m),
    info: (m) => emit('info', m),
    debug: (m) => emit('debug', m),
    enabled: (level) => LOG_LEVELS.indexOf(level) <= rank,
    addSecret: (s) => {
      if (s.length > 0 && !secrets.includes(s)) secrets.push(s);
    },
  };
}

/** A logger that drops everything; for library callers and unit tests. */
export const silentLogger: Logger = createLogger({ level: 'error', write: () => {} });
