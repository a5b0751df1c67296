/**
 * An explicit list of undo steps: every step that creates something pushes
 * how to take it back, and a failure runs them newest first. Undo failures are
 * logged, not thrown, so the original error reaches the caller.
 */
import type { Logger } from '../adapters/logger.js';
import { errorMessage } from '../core/errors.js';

export class Undo {
  private readonly steps: { label: string; run: () => Promise<unknown> }[] = [];

  push(label: string, run: () => Promise<unknown>): void {
    this.steps.push({ label, run });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Runs every step newest first; returns the labels of steps that failed. */
  async run(log: Logger): Promise<string[]> {
    const failed: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.run();
        log.debug(`undo: ${step.label}`);
      } catch (error) {
        log.error(`undo failed: ${step.label}: ${errorMessage(error)}`);
        failed.push(step.label);
      }
    }
    return failed;
  }

  /** Forgets the steps: what they would undo is now meant to stay. */
  clear(): void {
    this.steps.length = 0;
  }
}
