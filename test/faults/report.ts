/**
 * The checker's result (checker.ts) as text: a summary (operations, faults
 * by kind, violations by kind, worst staleness against Δ), then each
 * violation with the history of its key around it, times in ms from the
 * start of the run.
 *
 * @module
 */
import type { CheckResult, Violation } from "./checker.js";
import type { History, Operation } from "./history.js";

/** What a report says besides the result. */
export interface ReportContext {
  /** The run's title (engine, local tier). */
  title: string;
  seed: number;
  /** Times are printed relative to this (ms, {@link now}). */
  t0: number;
  /** Violations printed in full (the rest are counted). @default 12 */
  maxViolations?: number;
  /** History lines printed before and after a violation's load. @default 1000 ms before its replacement, 300 after */
  excerptMs?: { before: number; after: number };
}

const ms = (t: number | undefined, t0: number) =>
  t === undefined ? "?" : Number.isFinite(t) ? (t - t0).toFixed(1) : t > 0 ? "end" : "start";

/** One operation as a history line: `+1234.5..+1240.1 w1.0 save k3 = w1.0:17 ok (mem)`. */
export function formatOp(o: Operation, t0: number): string {
  const value = o.value === undefined ? "" : ` = ${o.value === null ? "∅" : o.value}`;
  const from = o.from ? ` (${o.from})` : "";
  return `${ms(o.invoke, t0).padStart(9)}..${ms(o.complete, t0).padEnd(9)} ${o.process.padEnd(10)} ${o.op.padEnd(14)} ${o.key}${value} ${o.outcome}${from}`;
}

/** The operations on `v.key` around the violation. */
function excerpt(v: Violation, history: History, ctx: ReportContext): string[] {
  const around = ctx.excerptMs ?? { before: 1000, after: 300 };
  const anchor = Number.isFinite(v.op.invoke) ? v.op.invoke : (v.replacedBy?.invoke ?? 0);
  const from = Math.min(anchor, v.replacedBy?.invoke ?? anchor, v.writtenBy?.invoke ?? anchor) - around.before;
  const to = (Number.isFinite(v.op.complete ?? Number.NaN) ? v.op.complete! : anchor) + around.after;
  const lines = history.ops
    .filter((o) => o.key === v.key && (o.complete ?? o.invoke) >= from && o.invoke <= to)
    .map((o) => {
      const mark = o === v.op ? ">>" : o === v.replacedBy ? "R>" : o === v.writtenBy ? "W>" : "  ";
      return `      ${mark} ${formatOp(o, ctx.t0)}`;
    });
  const faults = history.faults
    .filter((f) => (f.end ?? to) >= from && f.start <= to)
    .map(
      (f) =>
        `      !! fault ${f.kind} on ${f.target} ${ms(f.start, ctx.t0)}..${ms(f.end, ctx.t0)}${f.detail ? ` (${f.detail})` : ""}`,
    );
  return [...faults, ...lines];
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
    `${ctx.title}: seed ${ctx.seed} (FAULT_SEED=${ctx.seed} to replay the same choices)`,
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
  const max = ctx.maxViolations ?? 12;
  for (const v of result.violations.slice(0, max)) {
    lines.push(`  ✗ ${v.kind} on ${v.key}: ${v.detail}`);
    lines.push(...excerpt(v, history, ctx));
  }
  if (result.violations.length > max) lines.push(`  ... and ${result.violations.length - max} more violations`);
  return lines.join("\n");
}
