/**
 * The likely cause of a stale read, for the report: which fault kept the
 * reader from hearing of the write that replaced its value. A heuristic, in
 * this order: the replacing write was a foreign one; its writer was killed
 * right after it; a fault on the reader's slot was active between the
 * replacement and the load; a fault on the writer's slot was active while it
 * wrote or just after; the server restarted in between; else `unexplained`
 * (the bucket to look at first: no fault of the run accounts for it).
 *
 * @module
 */
import type { Violation } from "./checker.js";
import type { FaultRecord, History } from "./history.js";

/** The fault target of a process: `slot N` for a suite worker (`w1.0`, `r3.2`), else its own name. */
function slotOf(process: string): string {
  const m = /^[wr](\d+)\./.exec(process);
  return m ? `slot ${m[1]}` : process;
}

const overlaps = (f: FaultRecord, from: number, to: number) =>
  f.start <= to && (f.end ?? Number.POSITIVE_INFINITY) >= from;

/** The likely cause of one stale read (see the module doc). */
export function likelyCause(v: Violation, history: History, deltaMs: number): string {
  const x = v.replacedBy;
  if (v.kind !== "stale-read" || !x) return v.kind;
  if (x.op.startsWith("foreign-")) return "foreign write";
  const killed = history.faults.some((f) => f.kind === "kill-writer" && f.target === x.process);
  if (killed && !history.ops.some((o) => o.process === x.process && o.invoke > (x.complete ?? x.invoke))) {
    return "killed writer";
  }
  const replacedAt = x.complete ?? x.invoke;
  const reader = slotOf(v.op.process);
  const onReader = history.faults.find((f) => f.target === reader && overlaps(f, replacedAt, v.op.invoke));
  if (onReader) return `${onReader.kind} on the reader`;
  const writer = slotOf(x.process);
  const onWriter = history.faults.find((f) => f.target === writer && overlaps(f, x.invoke, replacedAt + deltaMs));
  if (onWriter) return `${onWriter.kind} on the writer`;
  if (history.faults.some((f) => f.kind === "restart-server" && overlaps(f, x.invoke, v.op.invoke))) {
    return "server restart";
  }
  return "unexplained";
}

/** Stale reads beyond Δ counted by likely cause, most first. */
export function causes(violations: readonly Violation[], history: History, deltaMs: number): [string, number][] {
  const counts = new Map<string, number>();
  for (const v of violations) {
    if (v.kind !== "stale-read") continue;
    const c = likelyCause(v, history, deltaMs);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}
