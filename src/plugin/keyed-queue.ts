/**
 * Runs tasks one at a time per key and in parallel across keys: requests on
 * the same volume are serialized, different volumes proceed independently.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `task` after every earlier task with the same key has settled. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      // Forget the key once nothing is queued behind this task, so the map stays small.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
