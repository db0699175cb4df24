/**
 * Runs tasks one after another per key, in call order, and tasks of different
 * keys concurrently. Writes to one (profile, key) go through here so every
 * profile applies a key's writes in the same order, and a write-back can check,
 * inside the queue, that no newer write was issued since its read.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Number of keys with queued or running tasks. */
  get size(): number {
    return this.#tails.size;
  }

  /** Whether `key` has a queued or running task. */
  has(key: string): boolean {
    return this.#tails.has(key);
  }

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key);
    let next: Promise<T>;
    if (prev !== undefined) next = prev.then(task, task);
    else {
      try {
        next = task();
      } catch (err) {
        next = Promise.reject(err);
      }
    }
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }
}
