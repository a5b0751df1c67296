/**
 * Everything the CLI writes goes through here: results on stdout (a table or
 * text for people, JSON with --json), logs and spinners on stderr.
 */
import { Chalk, type ChalkInstance } from 'chalk';
import ora, { type Ora } from 'ora';

export interface Output {
  json: boolean;
  color: ChalkInstance;
  /** True when stderr is a terminal with a width, so spinners may be drawn. */
  interactive: boolean;
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface OutputOptions {
  json: boolean;
  color: boolean;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  interactive?: boolean;
}

/**
 * Whether a spinner may be drawn on `stream`: a terminal that reports its
 * width. A terminal of 0 columns (a serial console, `script` without a size)
 * sends ora's line counting into an endless loop, so no spinner there.
 */
export function canAnimate(stream: { isTTY?: boolean; columns?: number }): boolean {
  return Boolean(stream.isTTY) && (stream.columns ?? 0) > 0;
}

export function createOutput(options: OutputOptions): Output {
  return {
    json: options.json,
    color: new Chalk({ level: options.color ? 1 : 0 }),
    interactive: options.interactive ?? (canAnimate(process.stderr) && !options.json),
    stdout: options.stdout ?? ((t) => process.stdout.write(t)),
    stderr: options.stderr ?? ((t) => process.stderr.write(t)),
  };
}

/** Prints a handler's result: JSON when asked, else the command's own rendering. */
export function printResult<T>(out: Output, result: T, render: (result: T, out: Output) => string): void {
  if (out.json) {
    out.stdout(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const text = render(result, out);
  if (text.length > 0) out.stdout(text.endsWith('\n') ? text : `${text}\n`);
}

/** Visible width, ignoring ANSI colour codes. */
function width(text: string): number {
  return text.replace(/\u001b\[[0-9;]*m/g, '').length;
}

/** A plain aligned table with a bold header row. */
export function table(out: Output, headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - width(c))))
      .join('  ')
      .trimEnd();
  return [out.color.bold(line(headers)), ...rows.map(line)].join('\n');
}

/**
 * Starts a spinner on stderr, coloured only when the output is (chalk's own
 * detection, which ora uses, ignores NO_COLOR). Call only when `out.interactive`.
 */
export function startSpinner(out: Output, text = ''): Ora {
  return ora({ text, stream: process.stderr, color: out.color.level > 0 ? 'cyan' : false }).start();
}

/**
 * Runs `work` with a spinner on an interactive terminal; `progress(step)`
 * updates its text. Without a TTY the steps go nowhere (logs carry them).
 */
export async function withSpinner<T>(
  out: Output,
  text: string,
  work: (progress: (step: string) => void) => Promise<T>,
): Promise<T> {
  if (!out.interactive) return work(() => {});
  const spinner = startSpinner(out, text);
  try {
    const result = await work((step) => {
      spinner.text = step;
    });
    spinner.stop();
    return result;
  } catch (error) {
    spinner.stop();
    throw error;
  }
}
