/** Bounded concurrency for the commands that touch many keys (migrate, verify, repair). */
import { InvalidArgumentError } from "commander";

export { forEachLimit } from "../_limit.js";

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
