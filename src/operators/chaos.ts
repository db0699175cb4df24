import { BackendError } from "../errors.js";
import type { Operator } from "./types.js";

/** Faults a {@link chaosOperator} injects. Change them at any time through `chaos.faults`. */
export interface ChaosFaults {
  /** Added delay before every call, in ms. @default 0 */
  latencyMs?: number;
  /** Added delay after the backend answered, before the result is returned (a slow reply), in ms. @default 0 */
  replyDelayMs?: number;
  /** Calls that fail: `"read"`, `"write"`, `"delete"`, `"stat"`, `"exists"`, `"list"`. */
  fail?: ReadonlyArray<"read" | "write" | "delete" | "stat" | "exists" | "list">;
  /** Whether injected failures are transient (retry may help). @default false */
  transient?: boolean;
  /** Calls never settle (a hung backend). */
  hang?: boolean;
}

/** Counts of calls that reached the wrapper, per method. */
export type ChaosCalls = Record<"read" | "write" | "delete" | "stat" | "exists" | "list", number>;

/** An operator wrapped by {@link chaosOperator}. */
export interface ChaosOperator extends Operator {
  /** The faults in force (mutable). */
  faults: ChaosFaults;
  /** Calls per method so far. */
  readonly calls: ChaosCalls;
  /** The wrapped operator. */
  readonly inner: Operator;
}

/**
 * Wraps a real operator to add latency, failures and hangs, for testing the
 * tiered path (fallback, timeouts, write-back). Never a stand-in for a real
 * backend: the data still goes to `inner`. It hides `readSync`, so reads
 * always pay the injected latency.
 */
export function chaosOperator(inner: Operator, faults: ChaosFaults = {}): ChaosOperator {
  const calls: ChaosCalls = { read: 0, write: 0, delete: 0, stat: 0, exists: 0, list: 0 };
  const self: ChaosOperator = {
    scheme: inner.scheme,
    capabilities: { ...inner.capabilities, syncRead: false },
    faults,
    calls,
    inner,
    read: (p) => wrap("read", () => inner.read(p)),
    write: (p, d) => wrap("write", () => inner.write(p, d)),
    stat: (p) => wrap("stat", () => inner.stat(p)),
    delete: (p) => wrap("delete", () => inner.delete(p)),
    exists: (p) => wrap("exists", () => inner.exists(p)),
    list: (p) => wrap("list", () => inner.list(p)),
    close: () => inner.close(),
  };
  async function wrap<T>(method: keyof ChaosCalls, fn: () => Promise<T>): Promise<T> {
    calls[method]++;
    const f = self.faults;
    if (f.hang) await new Promise<never>(() => {});
    if (f.latencyMs) await new Promise((r) => setTimeout(r, f.latencyMs));
    if (f.fail?.includes(method)) {
      throw new BackendError(`chaos: injected ${f.transient ? "transient" : "permanent"} ${method} failure`, {
        transient: f.transient ?? false,
      });
    }
    if (!f.replyDelayMs) return fn();
    const result = await fn();
    await new Promise((r) => setTimeout(r, f.replyDelayMs));
    return result;
  }
  return self;
}
