/** Bounded concurrency for the commands that touch many keys (migrate, verify, repair). */
import { InvalidArgumentError, Option } from "commander";
import pLimit from "p-limit";

/** Keys handled at once by default. */
export const DEFAULT_CONCURRENCY = 16;
/** The most `--concurrency` accepts. */
const MAX_CONCURRENCY = 1024;

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

/** The `-c, --concurrency <n>` option; `what` says what is counted (`copies in flight`). */
export function concurrencyOption(what: string): Option {
  return new Option("-c, --concurrency <n>", `${what} (default ${DEFAULT_CONCURRENCY})`)
    .argParser(positiveInt("--concurrency", MAX_CONCURRENCY))
    .default(DEFAULT_CONCURRENCY);
}

/**
 * Calls `fn` for every item, at most `concurrency` at a time. Stops taking
 * new items once `stopped()` returns true (an interrupt) or a call rejected
 * (the rejection is returned; handle per-item failures inside `fn`); calls
 * already started finish.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
  stopped: () => boolean = () => false,
): Promise<void> {
  let failed = false;
  await pLimit(concurrency).map(items, async (item) => {
    // Items still queued at an interrupt or a failure end here without running.
    if (failed || stopped()) return;
    try {
      await fn(item);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
}
