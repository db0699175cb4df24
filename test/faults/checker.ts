/**
 * The checker of a fault-injection history (history.ts), per key, against the
 * staleness bound Δ (`_bound.ts`). It fails on:
 *
 * - (a) `lost-write`: the final state (read from the shared store after
 *   healing and quiescence) is a value that an acknowledged write certainly
 *   replaced: the acknowledged save or delete was lost;
 * - (b) `stale-read`: a load returned a value that was certainly replaced
 *   more than Δ before the load began;
 * - (c) `phantom-read`: a load (or the final state) returned a value never
 *   written, or written only after the load completed.
 *
 * "Certainly replaced" is the only kind counted: value v (written by w) is
 * replaced at the completion of the first acknowledged write X of another
 * value that was invoked after w completed. Absence (`null`) is the value of
 * the initial state and of every delete, so it is replaced only when every
 * one of those is. A write whose outcome is an error or unknown (a process
 * killed mid-operation) is indeterminate: it may have taken effect at any time
 * after its invocation (a held write can land when the partition heals), so
 * it never replaces anything and its value is never certainly replaced. Loads
 * that fail (UnavailableError, TimeoutError, ...) return nothing and are
 * allowed: availability is not promised under partition.
 *
 * @module
 */
import type { History, Operation } from "./history.js";

/** What the checker found wrong (see the module doc). */
export type ViolationKind = "lost-write" | "stale-read" | "phantom-read";

/** One violation, with what it concerns. */
export interface Violation {
  kind: ViolationKind;
  key: string;
  /** The load (or, for `lost-write`, the acknowledged write that was lost). */
  op: Operation;
  /** The value returned (or found at the end). */
  value: string | null;
  /** The write that produced the value returned, if one did (for `null`: the last candidate). */
  writtenBy?: Operation | undefined;
  /** The acknowledged write that certainly replaced it. */
  replacedBy?: Operation | undefined;
  /** How long before the load began the value had certainly been replaced. */
  staleMs?: number | undefined;
  detail: string;
}

/** Counts of a history, for the report. */
export interface HistoryCounts {
  /** Operations by kind and outcome (`ok`, an error code, `unknown`). */
  ops: Record<string, Record<string, number>>;
  /** Loads that returned a value, returned absence, failed. */
  loads: { value: number; notFound: number; failed: number; fromLocal: number };
  /** Faults by kind. */
  faults: Record<string, number>;
}

/** What {@link check} returns. */
export interface CheckResult {
  valid: boolean;
  deltaMs: number;
  violations: Violation[];
  byKind: Record<ViolationKind, number>;
  /** The largest staleness of any load (how long after its certain replacement a returned value's load began). */
  worstStalenessMs: number;
  worstStale: Violation | undefined;
  /** Loads that returned a certainly replaced value within Δ (allowed). */
  staleWithinDelta: number;
  counts: HistoryCounts;
}

/** Options of {@link check}. */
export interface CheckOptions {
  /** The staleness bound Δ in ms. */
  deltaMs: number;
  /** The final value of each key read from the shared store after quiescence (`null`: absent). Keys missing are not checked. */
  final?: ReadonlyMap<string, string | null> | undefined;
  /** Profiles that are local tiers (to count loads they served). */
  localProfiles?: readonly string[] | undefined;
}

const WRITES = new Set(["save", "delete", "foreign-save", "foreign-delete"]);
const SAVES = new Set(["save", "foreign-save"]);
/** The initial state of every key: absent, since before the run. */
const INITIAL: Operation = {
  id: "initial",
  process: "-",
  op: "delete",
  key: "",
  value: null,
  invoke: Number.NEGATIVE_INFINITY,
  complete: Number.NEGATIVE_INFINITY,
  outcome: "ok",
};

/** Acknowledged writes sorted by invocation, with the earliest completion from each index on. */
class Successors {
  readonly #writes: Operation[];
  readonly #minComplete: number[];

  constructor(writes: Operation[]) {
    this.#writes = writes.filter((w) => w.outcome === "ok").sort((a, b) => a.invoke - b.invoke);
    this.#minComplete = new Array<number>(this.#writes.length);
    let min = Number.POSITIVE_INFINITY;
    for (let i = this.#writes.length - 1; i >= 0; i--) {
      const w = this.#writes[i]!;
      if (w.complete! < min) min = w.complete!;
      this.#minComplete[i] = min;
    }
  }

  /** The acknowledged write invoked after `t` that completed first, if any. */
  firstAfter(t: number): Operation | undefined {
    let lo = 0;
    let hi = this.#writes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#writes[mid]!.invoke > t) hi = mid;
      else lo = mid + 1;
    }
    if (lo >= this.#writes.length) return undefined;
    const min = this.#minComplete[lo]!;
    for (let i = lo; i < this.#writes.length; i++) if (this.#writes[i]!.complete === min) return this.#writes[i];
    return undefined;
  }
}

/** When a write's value was certainly replaced, and by what (undefined: never certainly). */
interface Replacement {
  at: number;
  by: Operation;
}

/** One key's writes, and when each value was certainly replaced. */
class KeyModel {
  readonly #byValue = new Map<string, Operation>();
  /** The writes of absence: the initial state and every delete. */
  readonly #nullWriters: Operation[];
  readonly #anyWrite: Successors;
  readonly #saves: Successors;

  constructor(writes: Operation[]) {
    for (const w of writes) if (typeof w.value === "string") this.#byValue.set(w.value, w);
    this.#nullWriters = [INITIAL, ...writes.filter((w) => w.value === null)];
    this.#anyWrite = new Successors(writes);
    this.#saves = new Successors(writes.filter((w) => SAVES.has(w.op)));
  }

  #replaced(w: Operation): Replacement | undefined {
    if (w.outcome !== "ok") return undefined;
    const next = (w.value === null ? this.#saves : this.#anyWrite).firstAfter(w.complete!);
    return next ? { at: next.complete!, by: next } : undefined;
  }

  /**
   * The writes that may have produced `value` for a read that completed at `before`, and when the value
   * was certainly replaced: the latest replacement of any candidate (undefined when one candidate never was).
   */
  explain(value: string | null, before: number): { writers: Operation[]; replaced: Replacement | undefined } {
    const writers =
      value === null
        ? this.#nullWriters.filter((w) => w.invoke <= before)
        : [this.#byValue.get(value)].filter((w): w is Operation => w !== undefined && w.invoke <= before);
    let replaced: Replacement | undefined;
    for (const w of writers) {
      const r = this.#replaced(w);
      if (!r) return { writers, replaced: undefined };
      if (!replaced || r.at > replaced.at) replaced = r;
    }
    return { writers, replaced: writers.length > 0 ? replaced : undefined };
  }
}

function countHistory(history: History, localProfiles: readonly string[]): HistoryCounts {
  const ops: Record<string, Record<string, number>> = {};
  const loads = { value: 0, notFound: 0, failed: 0, fromLocal: 0 };
  for (const o of history.ops) {
    const byOutcome = ops[o.op] ?? {};
    ops[o.op] = byOutcome;
    byOutcome[o.outcome] = (byOutcome[o.outcome] ?? 0) + 1;
    if (o.op !== "load") continue;
    if (o.outcome !== "ok") loads.failed++;
    else if (o.value === null) loads.notFound++;
    else loads.value++;
    if (o.outcome === "ok" && o.from !== undefined && localProfiles.includes(o.from)) loads.fromLocal++;
  }
  const faults: Record<string, number> = {};
  for (const f of history.faults) faults[f.kind] = (faults[f.kind] ?? 0) + 1;
  return { ops, loads, faults };
}

/** Checks a history against Δ (see the module doc). */
export function check(history: History, options: CheckOptions): CheckResult {
  const delta = options.deltaMs;
  const byKey = new Map<string, Operation[]>();
  for (const o of history.ops) {
    const list = byKey.get(o.key) ?? [];
    byKey.set(o.key, list);
    list.push(o);
  }
  for (const k of options.final?.keys() ?? []) if (!byKey.has(k)) byKey.set(k, []);
  const violations: Violation[] = [];
  let worst: Violation | undefined;
  let worstMs = 0;
  let staleWithinDelta = 0;
  for (const [key, ops] of byKey) {
    const model = new KeyModel(ops.filter((o) => WRITES.has(o.op)));
    for (const load of ops) {
      if (load.op !== "load" || load.outcome !== "ok" || load.value === undefined) continue;
      const { writers, replaced } = model.explain(load.value, load.complete!);
      if (writers.length === 0) {
        violations.push({
          kind: "phantom-read",
          key,
          op: load,
          value: load.value,
          detail: "a value never written, or written after the load completed",
        });
        continue;
      }
      if (!replaced) continue;
      const staleMs = load.invoke - replaced.at;
      if (staleMs <= 0) continue;
      const v: Violation = {
        kind: "stale-read",
        key,
        op: load,
        value: load.value,
        writtenBy: writers.at(-1),
        replacedBy: replaced.by,
        staleMs,
        detail: `returned a value replaced ${staleMs.toFixed(1)} ms before the load began (Δ ${delta} ms)`,
      };
      if (staleMs > worstMs) {
        worstMs = staleMs;
        worst = v;
      }
      if (staleMs > delta) violations.push(v);
      else staleWithinDelta++;
    }
    if (!options.final?.has(key)) continue;
    const value = options.final.get(key)!;
    const end: Operation = {
      id: "final",
      process: "final",
      op: "load",
      key,
      value,
      invoke: Infinity,
      complete: Infinity,
      outcome: "ok",
    };
    const { writers, replaced } = model.explain(value, Number.POSITIVE_INFINITY);
    if (writers.length === 0) {
      violations.push({
        kind: "phantom-read",
        key,
        op: end,
        value,
        detail: "the final state holds a value never written",
      });
    } else if (replaced) {
      violations.push({
        kind: "lost-write",
        key,
        op: replaced.by,
        value,
        writtenBy: writers.at(-1),
        replacedBy: replaced.by,
        detail: `acknowledged ${replaced.by.op} lost: the final state is ${JSON.stringify(value)}, which it certainly replaced`,
      });
    }
  }
  const byKind: Record<ViolationKind, number> = { "lost-write": 0, "stale-read": 0, "phantom-read": 0 };
  for (const v of violations) byKind[v.kind]++;
  return {
    valid: violations.length === 0,
    deltaMs: delta,
    violations,
    byKind,
    worstStalenessMs: worstMs,
    worstStale: worst,
    staleWithinDelta,
    counts: countHistory(history, options.localProfiles ?? []),
  };
}
