/** Bounded concurrency for the commands that touch many keys (migrate, verify, repair). */
import { InvalidArgumentError } from "commander";

/**
 * Calls `fn` on every item with at most `concurrency` calls in flight, in
 * item order. Stops taking new items once `stopped()` returns true (an
 * interrupt); calls already started finish. `fn` must handle its own errors.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
  stopped: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !stopped()) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
}

/** Parses a positive integer option (`--concurrency 16`). */
export function positiveInt(name: string, max = 1_000_000): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      // commander reports this as a usage error (exit 2).
      throw new InvalidArgumentError(`${name}: expected an integer from 1 to ${max}, got "${value}"`);
    }
    return n;
  };
}
