import type { Logger } from '../adapters/logger.js';
import { silentLogger } from '../adapters/logger.js';

/**
 * What every handler receives besides its typed options. Handlers never print
 * or exit: they log through `log` and report slow steps through `progress`
 * (the CLI turns those into a spinner on a TTY; the plugin ignores them).
 */
export interface CommandContext {
  log: Logger;
  progress: (step: string) => void;
  /** Confirms a destructive step; resolves false to abort. The CLI asks on a TTY or honours --yes. */
  confirm: (question: string) => Promise<boolean>;
}

export function defaultContext(overrides: Partial<CommandContext> = {}): CommandContext {
  return {
    log: silentLogger,
    progress: () => {},
    confirm: async () => false,
    ...overrides,
  };
}
