/** Replacement shown wherever a secret would have appeared. */
export const REDACTED = '***';

/**
 * Replaces every occurrence of each secret in `text`. Secrets shorter than
 * three characters are still replaced: a short passphrase is still a secret.
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first: a secret that begins another (app:pw, app:pw-prod) would leave the rest showing.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret.length === 0) continue;
    out = out.split(secret).join(REDACTED);
  }
  return out;
}

/** Quotes one argv element the way a shell user would type it, for logs and messages only. */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function formatCommand(
  command: string,
  args: readonly string[],
  secrets: readonly string[] = [],
): string {
  return redact([command, ...args].map(shellQuote).join(' '), secrets);
}
