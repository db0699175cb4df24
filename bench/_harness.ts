/**
 * Timing for the benchmark suite: ours and its baseline run in the same
 * process, in alternating rounds (ours first on even rounds, the baseline
 * first on odd ones), and each side's figure is the median of its rounds.
 * Alternation cancels most of the drift of a shared machine (another process
 * waking up hits both sides); the median drops the rounds a GC pause or a
 * neighbour spoiled.
 *
 * A round times a batch of `n` operations with one pair of clock reads, so the
 * clock and the harness cost nothing per operation: a 0.5 µs operation is
 * measured as 0.5 µs, not as 0.5 µs plus a `performance.now()` and an await
 * of the harness's own (which would flatter whichever side is slower).
 */
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
/**
 * A full collection between rounds, so one side's garbage is not collected on the other's clock
 * (Bun's JavaScriptCore has no V8 flags: `Bun.gc(true)`).
 */
export const gc: () => void = bun ? () => bun.gc(true) : runInNewContext("gc");

/** One side of a comparison: runs `n` operations (the loop is the side's own, so it stays monomorphic). */
export interface Side {
  name: string;
  /** Runs `n` operations starting at operation index `start`. */
  batch(n: number, start: number): unknown;
  /** Untimed work before each round (e.g. emptying a cache tier so every read misses). */
  before?(): unknown;
  /** Work after each round (e.g. `flush`): untimed, unless `afterTimed`. */
  after?(): unknown;
  /** Count `after` in the round's time (background work the operations caused, such as write-backs). */
  afterTimed?: boolean;
}

export interface CompareOptions {
  /** Operations per round. */
  n: number;
  /** Timed rounds per side. */
  rounds: number;
  /** Untimed warm-up rounds per side (JIT, caches). @default 1 */
  warmup?: number;
}

export interface Measured {
  /** Median operations per second over the rounds. */
  opsPerS: number;
  /** Every round's operations per second, in run order. */
  samples: number[];
}

/** Runs `a` and `b` in alternating rounds; returns each side's median ops/s. */
export async function compare(a: Side, b: Side, o: CompareOptions): Promise<[Measured, Measured]> {
  const [x, y] = await compareMany([a, b], o);
  return [x!, y!];
}

/**
 * Runs several sides in rotating order (round r starts with side r mod n), so
 * each sees the others' drift equally; returns each side's median ops/s.
 */
export async function compareMany(sides: readonly Side[], o: CompareOptions): Promise<Measured[]> {
  const samples: number[][] = sides.map(() => []);
  let start = 0;
  const warmup = o.warmup ?? 1;
  for (let r = 0; r < warmup + o.rounds; r++) {
    for (let j = 0; j < sides.length; j++) {
      const which = (r + j) % sides.length;
      const side = sides[which]!;
      gc();
      await side.before?.();
      const t0 = performance.now();
      await side.batch(o.n, start);
      if (side.afterTimed) await side.after?.();
      const ms = performance.now() - t0;
      if (!side.afterTimed) await side.after?.();
      if (r >= warmup) samples[which]!.push((o.n * 1000) / ms);
    }
    start += o.n;
  }
  return samples.map(measured);
}

/** Times one side alone (where the baseline cannot share the process, or is not timed in rounds). */
export async function timeSide(side: Side, o: CompareOptions): Promise<Measured> {
  return (await compareMany([side], o))[0]!;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function measured(samples: number[]): Measured {
  return { opsPerS: median(samples), samples };
}

/** How a row's target is judged. */
export type Target =
  /** ours' time at most `max` times the baseline's (ratio <= max). */
  | { kind: "ratio<="; max: number; text: string }
  /** ours faster than the baseline (ratio < 1). */
  | { kind: "faster"; text: string }
  /** ours at least `min` operations per second. */
  | { kind: "ops>="; min: number; text: string }
  /** a measured value (in `value`) at most `max`. */
  | { kind: "value<="; max: number; value: number; text: string };

/** One line of the table and of `bench/results.json`. */
export interface Row {
  /** Scenario number and name, e.g. `1 hot load (loadValue)`. */
  scenario: string;
  /** What "ours" is in this row. */
  ours: string;
  ours_ops_per_s: number;
  /** What the baseline is (library and call), with any work it skips. */
  baseline: string;
  baseline_ops_per_s: number;
  /**
   * Our time over the baseline's: `baseline_ops_per_s / ours_ops_per_s`.
   * Below 1 we are faster; 1.5 means we take 1.5x the baseline's time.
   */
  ratio: number;
  /** The target for this row, if it has one. */
  target?: string;
  /** Whether the target holds in this run. */
  met?: boolean;
  /** Anything a reader needs to read the row right (units, skipped work). */
  note?: string;
}

export function row(
  scenario: string,
  ours: [string, number],
  baseline: [string, number],
  target?: Target,
  note?: string,
): Row {
  const ratio = baseline[1] / ours[1];
  const r: Row = {
    scenario,
    ours: ours[0],
    ours_ops_per_s: round(ours[1]),
    baseline: baseline[0],
    baseline_ops_per_s: round(baseline[1]),
    ratio: Number(ratio.toFixed(3)),
  };
  if (target) {
    r.target = target.text;
    r.met =
      target.kind === "ratio<="
        ? ratio <= target.max
        : target.kind === "faster"
          ? ratio < 1
          : target.kind === "ops>="
            ? ours[1] >= target.min
            : target.value <= target.max;
  }
  if (note) r.note = note;
  return r;
}

function round(x: number): number {
  return x >= 100 ? Math.round(x) : Number(x.toPrecision(4));
}

/** `12345.6` -> `12.3k`, for the printed table. */
export function fmtOps(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(2)}k`;
  if (x >= 10) return x.toFixed(1);
  return x.toPrecision(3);
}

/** Prints rows as an aligned text table. */
export function printTable(rows: readonly Row[]): void {
  const cells = rows.map((r) => [
    r.scenario,
    r.ours,
    fmtOps(r.ours_ops_per_s),
    r.baseline,
    fmtOps(r.baseline_ops_per_s),
    `${r.ratio.toFixed(2)}x`,
    r.target === undefined ? "" : `${r.met ? "met" : "MISSED"} (${r.target})`,
  ]);
  const head = ["scenario", "ours", "ops/s", "baseline", "ops/s", "ratio", "target"];
  const widths = head.map((h, i) => Math.min(48, Math.max(h.length, ...cells.map((c) => c[i]!.length))));
  const line = (c: string[]) =>
    c.map((x, i) => (i === 2 || i === 4 || i === 5 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join("  ");
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) console.log(line(c));
}
