import { BackendError } from "../../errors.js";
import { toBytes } from "../drivers/_shared.js";
import type { Operator } from "../types.js";

/** The operator calls a {@link chaosOperator} can disturb. */
export type ChaosMethod = "read" | "write" | "delete" | "stat" | "exists" | "list";

/** Every {@link ChaosMethod}, in a fixed order. */
export const CHAOS_METHODS: readonly ChaosMethod[] = Object.freeze([
  "read",
  "write",
  "delete",
  "stat",
  "exists",
  "list",
]);

/**
 * Faults a {@link chaosOperator} injects. Change them at any time through
 * `chaos.faults`; a call reads them when it starts (a hung call again when it
 * is released), so changing them does not affect calls already sleeping.
 *
 * A call goes through the faults in this order: hang, latency (+ jitter),
 * `fail`, `failTimes`, `failRate`, `failAfterBytes`, the real call, reply delay.
 */
export interface ChaosFaults {
  /**
   * The methods that `latencyMs`, `jitterMs`, `replyDelayMs`, `hang: true`,
   * `failTimes`, `failRate` and `failAfterBytes` apply to. `fail` names its
   * own methods.
   * @default every method
   * @example { methods: ["write"], failTimes: 2, transient: true } // the next two writes fail, reads are untouched
   */
  methods?: readonly ChaosMethod[];
  /** Added delay before every call, in ms. @default 0 */
  latencyMs?: number;
  /** Random extra delay, uniform in [0, jitterMs), added to `latencyMs` (shuffles the order calls finish in). @default 0 */
  jitterMs?: number;
  /** Added delay after the backend answered, before the result is returned (a slow reply), in ms. @default 0 */
  replyDelayMs?: number;
  /** Calls that always fail: `"read"`, `"write"`, `"delete"`, `"stat"`, `"exists"`, `"list"`. */
  fail?: readonly ChaosMethod[];
  /**
   * The next N calls (of `methods`) fail, then calls succeed again: for retry
   * tests. Decremented in place on each injected failure, so
   * `chaos.faults.failTimes` says how many are left.
   * @default 0
   */
  failTimes?: number;
  /** Probability in [0, 1] that a call (of `methods`) fails. Draws from `random`. @default 0 */
  failRate?: number;
  /** Source of randomness for `failRate` and `jitterMs` (pass a seeded one for reproducible runs). @default Math.random */
  random?: () => number;
  /** Whether injected failures are transient (retry may help): `BackendError.transient`. @default false */
  transient?: boolean;
  /**
   * Calls never settle (a hung backend): `true` for every method in `methods`,
   * or a list of methods. A hung call waits for {@link ChaosOperator.release};
   * then it goes on to the real backend, like a request stuck in a network
   * buffer that arrives late.
   */
  hang?: boolean | readonly ChaosMethod[];
  /**
   * A write of more bytes than this fails partway (the connection drops after
   * N bytes). By default the backend receives nothing, as with an atomic
   * backend (SQLite transaction, S3 PUT with a short body, fs temp file +
   * rename); see `tornWrites`. Writes of at most N bytes are not affected.
   */
  failAfterBytes?: number;
  /**
   * With `failAfterBytes`: the backend *does* store the first N bytes before
   * the write fails, as a non-atomic backend would (a plain file overwritten
   * in place). The stored value is then a torn, undecodable prefix. @default false
   */
  tornWrites?: boolean;
  /** Builds the error thrown by an injected failure (default: a `BackendError` with `transient`). */
  error?: (method: ChaosMethod, path: string | undefined) => Error;
}

/** Counts per method. */
export type ChaosCalls = Record<ChaosMethod, number>;

/** An operator wrapped by {@link chaosOperator}. */
export interface ChaosOperator extends Operator {
  /** The faults in force (mutable). */
  faults: ChaosFaults;
  /** Calls per method that reached the wrapper so far. */
  readonly calls: ChaosCalls;
  /** Injected failures per method so far (including torn writes). */
  readonly injected: ChaosCalls;
  /** The wrapped operator. */
  readonly inner: Operator;
  /** Calls waiting in a hang right now. */
  readonly hung: number;
  /**
   * Lets every call hung so far go on to the real backend (late). Calls that
   * start afterwards hang again while `faults.hang` still says so.
   * @returns how many calls were released
   */
  release(): number;
}

/**
 * Wraps a real operator to add latency, failures (transient, permanent,
 * random, the next N), hangs and writes that fail partway, for testing the
 * tiered path: fallback, timeouts, retries, write-back and partial writes.
 * Never a stand-in for a real backend: the data still goes to `inner`. It
 * hides `readSync` (and the synchronous batched read), so reads always pay the
 * injected latency; batched reads and digests count as `read` calls.
 *
 * @example
 * const flaky = chaosOperator(await createOperator("sqlite", { datadir }), { methods: ["write"], failTimes: 2, transient: true });
 * const storage = await DeviceStorage.fromOperators([{ name: "sqlite", op: flaky, retries: 3 }]);
 * await storage.saveValue("k.json", 1); // succeeds on the third attempt
 * flaky.calls.write; // 3 (plus the start-up probe's write)
 */
export function chaosOperator(inner: Operator, faults: ChaosFaults = {}): ChaosOperator {
  const calls: ChaosCalls = zero();
  const injected: ChaosCalls = zero();
  let waiting: (() => void)[] = [];

  const self: ChaosOperator = {
    scheme: inner.scheme,
    capabilities: { ...inner.capabilities, syncRead: false },
    ...(inner.changeFeed && { changeFeed: inner.changeFeed }),
    faults,
    calls,
    injected,
    inner,
    get hung() {
      return waiting.length;
    },
    release() {
      const released = waiting;
      waiting = [];
      for (const go of released) go();
      return released.length;
    },
    read: (p) => wrap("read", p, () => inner.read(p)),
    write: (p, d) => wrap("write", p, () => inner.write(p, d), d),
    stat: (p) => wrap("stat", p, () => inner.stat(p)),
    delete: (p) => wrap("delete", p, () => inner.delete(p)),
    exists: (p) => wrap("exists", p, () => inner.exists(p)),
    list: (p) => wrap("list", p, () => inner.list(p)),
    close: () => inner.close(),
  };
  // Batched reads and digests are reads (and digests of a listing a list) to the faults; a wrapper
  // without them would keep the inner capabilities (`batchSize`, `digest`) with nothing behind them.
  const many = (keys: readonly string[]) => `${keys.length} keys from ${keys[0] ?? ""}`;
  if (inner.readMany) self.readMany = (keys) => wrap("read", many(keys), () => inner.readMany!(keys));
  if (inner.readManyStored) {
    self.readManyStored = (keys) => wrap("read", many(keys), () => inner.readManyStored!(keys));
  }
  if (inner.digestMany) self.digestMany = (keys) => wrap("read", many(keys), () => inner.digestMany!(keys));
  if (inner.listDigests) self.listDigests = (p) => wrap("list", p, () => inner.listDigests!(p));
  if (inner.announceWrites) self.announceWrites = inner.announceWrites.bind(inner);

  const fault = (f: ChaosFaults, method: ChaosMethod, path: string | undefined, what: string): Error => {
    injected[method]++;
    if (f.error) return f.error(method, path);
    return new BackendError(`chaos: injected ${f.transient ? "transient" : "permanent"} ${method} ${what}`, {
      key: path,
      transient: f.transient ?? false,
    });
  };

  async function wrap<T>(
    method: ChaosMethod,
    path: string | undefined,
    fn: () => Promise<T>,
    data?: Uint8Array | string,
  ): Promise<T> {
    calls[method]++;
    let f = self.faults;
    let applies = !f.methods || f.methods.includes(method);
    const hangs = f.hang === true ? applies : Array.isArray(f.hang) && f.hang.includes(method);
    if (hangs) {
      await new Promise<void>((resolve) => waiting.push(resolve));
      f = self.faults;
      applies = !f.methods || f.methods.includes(method);
    }
    if (applies) {
      const random = f.random ?? Math.random;
      const delay = (f.latencyMs ?? 0) + (f.jitterMs ? random() * f.jitterMs : 0);
      if (delay > 0) await sleep(delay);
    }
    if (f.fail?.includes(method)) throw fault(f, method, path, "failure");
    if (applies) {
      if (f.failTimes !== undefined && f.failTimes > 0) {
        f.failTimes--;
        throw fault(f, method, path, "failure");
      }
      if (f.failRate && (f.random ?? Math.random)() < f.failRate) throw fault(f, method, path, "failure");
      if (method === "write" && f.failAfterBytes !== undefined && data !== undefined) {
        const bytes = toBytes(data);
        if (bytes.length > f.failAfterBytes) {
          const n = Math.max(0, Math.floor(f.failAfterBytes));
          if (f.tornWrites) await inner.write(path as string, bytes.slice(0, n));
          throw fault(f, method, path, `failure after ${n} of ${bytes.length} bytes${f.tornWrites ? " (torn)" : ""}`);
        }
      }
    }
    const result = await fn();
    const reply = applies ? (f.replyDelayMs ?? 0) : 0;
    if (reply > 0) await sleep(reply);
    return result;
  }
  return self;
}

function zero(): ChaosCalls {
  return { read: 0, write: 0, delete: 0, stat: 0, exists: 0, list: 0 };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A seeded pseudo-random source (mulberry32) for {@link ChaosFaults.random}:
 * the same seed gives the same faults, so a failing run can be replayed.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
