/**
 * The error vocabulary shared by every layer. Only the CLI face turns these
 * into exit codes and only the plugin face turns them into `{"Err"}` replies;
 * everything below throws.
 */

/** Exit codes documented in the man pages: 0 ok, 1 operation failed, 2 usage error. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** An operation failed for a reason the operator can act on (bad disk, unreachable server, …). */
export class OperationError extends Error {
  override readonly name: string = 'OperationError';
  readonly exitCode: number = EXIT_FAILED;
  /** Extra lines (for example a tool's stderr) shown under the message. */
  readonly detail: string | undefined;

  constructor(message: string, options: { detail?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.detail = options.detail;
  }
}

/** The operator asked for something malformed: unknown setting, missing argument, bad value. */
export class UsageError extends OperationError {
  override readonly name: string = 'UsageError';
  override readonly exitCode: number = EXIT_USAGE;
}

/** A command whose handler has not been written yet. Never pretends to succeed. */
export class NotImplementedError extends UsageError {
  override readonly name: string = 'NotImplementedError';

  constructor(operation: string) {
    super(`${operation}: not implemented yet`);
  }
}

export function isOperationError(error: unknown): error is OperationError {
  return error instanceof OperationError;
}

/** Best-effort human text for anything thrown. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
