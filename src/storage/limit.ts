import { PersistenceError } from "../errors.js";

/** Checks a `concurrency` option: a positive integer. */
export function checkConcurrency(concurrency: unknown): number {
  if (typeof concurrency !== "number" || !Number.isInteger(concurrency) || concurrency < 1) {
    throw new PersistenceError(`Expected \`concurrency\` to be a positive integer, got ${String(concurrency)}`);
  }
  return concurrency;
}

/**
 * Calls `fn` for every item with at most `concurrency` calls in flight (a fixed
 * pool of workers taking the next index, in item order). A rejection of `fn`
 * stops the workers and rejects; handle per-item failures inside `fn`. Stops
 * taking new items once `stopped()` returns true (an interrupt); calls
 * already started finish.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
  stopped: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !stopped()) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        next = items.length;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
