/**
 * The checker's result (checker.ts) as text: a summary (operations, faults
 * by kind, violations by kind, worst staleness against Δ), then the
 * violations grouped by process, key and value returned (the worst of each
 * group, with the history of its key around it), times in ms from the start
 * of the run.
 *
 * @module
 */
import { causes, likelyCause } from "./attribution.js";
import type { CheckResult, Violation } from "./checker.js";
import type { History, Operation } from "./history.js";

/** What a report says besides the result. */
export interface ReportContext {
  /** The run's title (engine, local tier). */
  title: string;
  seed: number;
  /** How to replay it (`FAULT_SEED=42`), if it can be. */
  replay?: string | undefined;
  /** Times are printed relative to this (ms, {@link now}). */
  t0: number;
  /** Groups of violations printed in full (the rest are counted). @default 8 */
  maxViolations?: number;
  /** History printed before the value's write and the replacement, and after the load. @default 300 ms each */
  excerptMs?: { before: number; after: number };
}

/** History lines of one violation at most. */
const MAX_LINES = 24;

const ms = (t: number | undefined, t0: number) =>
  t === undefined ? "?" : Number.isFinite(t) ? (t - t0).toFixed(1) : t > 0 ? "end" : "start";

/** One operation as a history line: `+1234.5..+1240.1 w1.0 save k3 = w1.0:17 ok (mem)`. */
export function formatOp(o: Operation, t0: number): string {
  const value = o.value === undefined ? "" : ` = ${o.value === null ? "∅" : o.value}`;
  const from = o.from ? ` (${o.from})` : "";
  return `${ms(o.invoke, t0).padStart(9)}..${ms(o.complete, t0).padEnd(9)} ${o.process.padEnd(10)} ${o.op.padEnd(14)} ${o.key}${value} ${o.outcome}${from}`;
}

/**
 * The history of `v.key` around the violation: every write from shortly before the value's write to the
 * load, and the loads of the same process from shortly before the replacement on (at most `MAX_LINES`).
 */
function excerpt(v: Violation, history: History, ctx: ReportContext): string[] {
  const around = ctx.excerptMs ?? { before: 300, after: 300 };
  const load = v.op;
  const loadEnd = Number.isFinite(load.complete ?? Number.NaN) ? load.complete! : (v.replacedBy?.complete ?? 0);
  const writesFrom =
    (v.writtenBy && Number.isFinite(v.writtenBy.invoke) ? v.writtenBy.invoke : loadEnd) - around.before;
  const loadsFrom = (v.replacedBy?.invoke ?? loadEnd) - around.before;
  const to = loadEnd + around.after;
  const picked = history.ops.filter((o) => {
    if (o.key !== v.key || o.invoke > to) return false;
    if (o.op !== "load") return (o.complete ?? o.invoke) >= writesFrom;
    return o === load || (o.process === load.process && o.invoke >= loadsFrom);
  });
  // Keep the writes and the lines nearest the violation.
  const at = picked.indexOf(load);
  const lines = picked.filter((o, i) => o.op !== "load" || Math.abs(i - at) <= MAX_LINES / 2 || at < 0);
  const faults = history.faults
    .filter((f) => (f.end ?? to) >= loadsFrom && f.start <= to)
    .map(
      (f) =>
        `      !! fault ${f.kind} on ${f.target} ${ms(f.start, ctx.t0)}..${ms(f.end, ctx.t0)}${f.detail ? ` (${f.detail})` : ""}`,
    );
  return [
    ...faults,
    ...lines.slice(-MAX_LINES).map((o) => {
      const mark = o === load ? ">>" : o === v.replacedBy ? "R>" : o === v.writtenBy ? "W>" : "  ";
      return `      ${mark} ${formatOp(o, ctx.t0)}`;
    }),
  ];
}

/** Violations of one kind by one process on one key with one value: the same mistake, repeated. */
function groups(violations: readonly Violation[]): { worst: Violation; count: number }[] {
  const byGroup = new Map<string, { worst: Violation; count: number }>();
  for (const v of violations) {
    const id = `${v.kind} ${v.op.process} ${v.key} ${v.value}`;
    const g = byGroup.get(id);
    if (!g) byGroup.set(id, { worst: v, count: 1 });
    else {
      g.count++;
      if ((v.staleMs ?? 0) > (g.worst.staleMs ?? 0)) g.worst = v;
    }
  }
  return [...byGroup.values()].sort((a, b) => (b.worst.staleMs ?? Infinity) - (a.worst.staleMs ?? Infinity));
}

/** The whole report (see the module doc). */
export function formatReport(result: CheckResult, history: History, ctx: ReportContext): string {
  const c = result.counts;
  const ops = Object.entries(c.ops)
    .map(([op, outcomes]) => {
      const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
      const detail = Object.entries(outcomes)
        .map(([o, n]) => `${o} ${n}`)
        .join(", ");
      return `${op} ${total} (${detail})`;
    })
    .join("; ");
  const faults = Object.entries(c.faults)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  const lines = [
    `${ctx.title}: seed ${ctx.seed}${ctx.replay ? ` (${ctx.replay} to replay the same choices)` : ""}`,
    `  operations: ${ops}`,
    `  loads: ${c.loads.value} values, ${c.loads.notFound} not found, ${c.loads.failed} failed, ${c.loads.fromLocal} served by a local tier`,
    `  faults: ${faults || "none"}`,
    `  violations: lost-write ${result.byKind["lost-write"]}, stale-read ${result.byKind["stale-read"]}, phantom-read ${result.byKind["phantom-read"]}` +
      ` (stale within Δ, allowed: ${result.staleWithinDelta})`,
    `  worst staleness ${result.worstStalenessMs.toFixed(1)} ms against Δ = ${result.deltaMs} ms` +
      (result.worstStale
        ? ` (${result.worstStale.op.process} load of ${result.worstStale.key} at ${ms(result.worstStale.op.invoke, ctx.t0)})`
        : ""),
  ];
  const byCause = causes(result.violations, history, result.deltaMs);
  if (byCause.length > 0)
    lines.push(`  stale reads by likely cause: ${byCause.map(([c, n]) => `${c} ${n}`).join(", ")}`);
  const max = ctx.maxViolations ?? 8;
  const all = groups(result.violations);
  for (const { worst: v, count } of all.slice(0, max)) {
    const who = v.op.process === "final" ? "the final state" : `${v.op.process} (${count} time${count > 1 ? "s" : ""})`;
    const cause = v.kind === "stale-read" ? ` [${likelyCause(v, history, result.deltaMs)}]` : "";
    lines.push(`  ✗ ${v.kind} on ${v.key} by ${who}${cause}: ${v.detail}`);
    lines.push(...excerpt(v, history, ctx));
  }
  if (all.length > max) lines.push(`  ... and ${all.length - max} more groups of violations (process, key, value)`);
  return lines.join("\n");
}
