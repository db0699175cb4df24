/**
 * The history checker (checker.ts) and recorder (history.ts) on histories
 * written here: our own logic, so synthetic input is the point. Each kind of
 * violation is detected, and concurrent or indeterminate writes (errors, a
 * process killed mid-operation) never raise a false alarm.
 */
import { describe, expect, it } from "vitest";
import { check } from "./checker.js";
import { type History, type Operation, parseHistory, Recorder } from "./history.js";
import { formatReport } from "./report.js";

const DELTA = 600;
let n = 0;
/** An operation: process, kind, key, value, invoke, complete (undefined: unknown), outcome. */
function op(
  process: string,
  kind: Operation["op"],
  value: string | null | undefined,
  invoke: number,
  complete: number | undefined,
  outcome = complete === undefined ? "unknown" : "ok",
  key = "k",
): Operation {
  return { id: `${process}#${++n}`, process, op: kind, key, value, invoke, complete, outcome };
}
const save = (p: string, v: string, i: number, c: number | undefined, out?: string) => op(p, "save", v, i, c, out);
const del = (p: string, i: number, c: number | undefined, out?: string) => op(p, "delete", null, i, c, out);
const load = (p: string, v: string | null, i: number, c = i + 1) => op(p, "load", v, i, c, "ok");
const history = (...ops: Operation[]): History => ({ ops, faults: [] });
const kinds = (h: History, final?: Map<string, string | null>) =>
  check(h, { deltaMs: DELTA, final }).violations.map((v) => v.kind);

describe("history checker: stale reads", () => {
  it("flags a value read more than Δ after an acknowledged write replaced it, not within Δ", () => {
    const writes = [save("A", "a1", 0, 10), save("A", "a2", 20, 30)];
    const late = check(history(...writes, load("B", "a1", 30 + DELTA + 1)), { deltaMs: DELTA });
    expect(late.violations).toHaveLength(1);
    expect(late.violations[0]).toMatchObject({ kind: "stale-read", staleMs: DELTA + 1 });
    expect(late.violations[0]!.replacedBy!.value).toBe("a2");
    expect(late.worstStalenessMs).toBe(DELTA + 1);

    const early = check(history(...writes, load("B", "a1", 30 + DELTA - 1)), { deltaMs: DELTA });
    expect(early.valid).toBe(true);
    expect(early.staleWithinDelta).toBe(1);
    expect(early.worstStalenessMs).toBe(DELTA - 1);
  });

  it("concurrent writes replace nothing for certain: either order is possible", () => {
    // a2 was invoked before a1 completed.
    const writes = [save("A", "a1", 0, 10), save("C", "a2", 5, 30)];
    expect(kinds(history(...writes, load("B", "a1", 10_000), load("B", "a2", 10_000)))).toEqual([]);
    // A third write after both completed replaces both.
    const later = [save("A", "a3", 40, 50), load("B", "a1", 50 + DELTA + 5), load("B", "a2", 50 + DELTA + 5)];
    expect(kinds(history(...writes, ...later))).toEqual(["stale-read", "stale-read"]);
  });

  it("an indeterminate write (error or unknown) never replaces, and its value may appear at any time later", () => {
    const timedOut = save("A", "a2", 20, 30, "E_TIMEOUT");
    const killed = save("K", "k1", 35, undefined);
    const writes = [save("A", "a1", 0, 10), timedOut, killed];
    expect(kinds(history(...writes, load("B", "a1", 5000), load("B", "a2", 5000), load("B", "k1", 9000)))).toEqual([]);
    // An acknowledged write after them replaces a1 for certain, but not the indeterminate a2 (it may land later).
    const later = [save("A", "a3", 40, 50), load("B", "a1", 5000), load("B", "a2", 6000), load("B", "k1", 7000)];
    expect(kinds(history(...writes, ...later))).toEqual(["stale-read"]);
  });

  it("absence is the value of the initial state and of deletes; it is stale only when all of them were replaced", () => {
    const h = history(load("B", null, 0), save("A", "a1", 0, 10), load("B", null, 10 + DELTA + 1));
    expect(kinds(h)).toEqual(["stale-read"]);
    const d = [save("A", "a1", 0, 10), del("A", 20, 30)];
    expect(kinds(history(...d, load("B", null, 5000), load("B", "a1", 30 + DELTA - 1)))).toEqual([]);
    expect(kinds(history(...d, save("A", "a2", 40, 50), load("B", null, 50 + DELTA + 5)))).toEqual(["stale-read"]);
    // A delete of unknown outcome may land after any later save: absence is never certainly replaced again.
    const u = history(
      save("A", "a1", 0, 10),
      del("K", 20, undefined),
      save("A", "a2", 40, 50),
      load("B", null, 100_000),
    );
    expect(kinds(u)).toEqual([]);
  });

  it("foreign saves and deletes count as writes", () => {
    const h = history(
      save("A", "a1", 0, 10),
      op("foreign", "foreign-save", "f1", 20, 25),
      load("B", "a1", 25 + DELTA + 1),
      op("foreign", "foreign-delete", null, 30, 35),
      load("B", "f1", 35 + DELTA + 1),
      load("B", null, 36 + DELTA),
    );
    expect(kinds(h)).toEqual(["stale-read", "stale-read"]);
  });
});

describe("history checker: phantom reads and lost writes", () => {
  it("flags a value never written, and one written only after the load completed", () => {
    expect(kinds(history(load("B", "zz", 10)))).toEqual(["phantom-read"]);
    expect(kinds(history(load("B", "a1", 10, 12), save("A", "a1", 13, 20)))).toEqual(["phantom-read"]);
    expect(kinds(history(save("A", "a1", 11, 20), load("B", "a1", 10, 12)))).toEqual([]);
  });

  it("flags a final state that an acknowledged write certainly replaced (the write was lost)", () => {
    const writes = [save("A", "a1", 0, 10), save("A", "a2", 20, 30)];
    const lost = check(history(...writes), { deltaMs: DELTA, final: new Map([["k", "a1"]]) });
    expect(lost.violations.map((v) => [v.kind, v.op.value])).toEqual([["lost-write", "a2"]]);
    expect(kinds(history(...writes), new Map([["k", "a2"]]))).toEqual([]);
    expect(kinds(history(...writes), new Map([["k", null]]))).toEqual(["lost-write"]);
    expect(kinds(history(...writes, del("A", 40, 50)), new Map([["k", "a2"]]))).toEqual(["lost-write"]);
    // Concurrent or indeterminate last writes: any of them may be last.
    expect(kinds(history(save("A", "a1", 0, 10), save("C", "a2", 5, 30)), new Map([["k", "a1"]]))).toEqual([]);
    expect(kinds(history(...writes, save("A", "a3", 40, 50, "E_TIMEOUT")), new Map([["k", "a3"]]))).toEqual([]);
    expect(kinds(history(...writes), new Map([["k", "nope"]]))).toEqual(["phantom-read"]);
    expect(kinds(history(), new Map([["k", null]]))).toEqual([]);
  });
});

describe("history recorder", () => {
  it("joins invocations and completions; a missing completion is unknown; a torn last line is skipped", () => {
    const lines: string[] = [];
    const a = new Recorder("w1.0", { lines });
    const b = new Recorder("w2.0", { lines });
    const s = a.invoke("save", "k", "w1.0:1", 100);
    a.complete(s, "ok", undefined, undefined, 110);
    a.invoke("save", "k", "w1.0:2", 120); // killed before it completed
    const l = b.invoke("load", "k", undefined, 130);
    b.complete(l, "ok", "w1.0:1", "mem", 131);
    const f = b.invoke("load", "k", undefined, 140);
    b.complete(f, "E_TIMEOUT", undefined, undefined, 150);
    const d = b.invoke("delete", "k", undefined, 160);
    b.complete(d, "ok", undefined, undefined, 170);
    const end = b.fault("hold-listener", "w2");
    end();
    const h = parseHistory([...lines, '{"t":"c","p":"w1.0","n":2,"at":']);
    expect(h.ops.map((o) => [o.process, o.op, o.value, o.outcome, o.from])).toEqual([
      ["w1.0", "save", "w1.0:1", "ok", undefined],
      ["w1.0", "save", "w1.0:2", "unknown", undefined],
      ["w2.0", "load", "w1.0:1", "ok", "mem"],
      ["w2.0", "load", undefined, "E_TIMEOUT", undefined],
      ["w2.0", "delete", null, "ok", undefined],
    ]);
    expect(h.ops[1]!.complete).toBeUndefined();
    expect(h.faults).toHaveLength(1);
    expect(h.faults[0]!.end).toBeGreaterThanOrEqual(h.faults[0]!.start);
  });

  it("reports counts, the worst staleness and each violation with its key's history", () => {
    const h = history(
      save("A", "a1", 0, 10),
      save("A", "a2", 20, 30),
      load("B", "a1", 2000),
      load("B", "a2", 2100),
      load("B", "a1", 5000, 5000),
    );
    h.faults.push({ kind: "hold-all", target: "B", start: 40, end: 3000 });
    h.ops.push(op("B", "load", undefined, 2500, 3000, "E_UNAVAILABLE"));
    const result = check(h, { deltaMs: DELTA, localProfiles: ["mem"] });
    expect(result.counts.loads).toMatchObject({ value: 3, failed: 1 });
    expect(result.counts.faults).toEqual({ "hold-all": 1 });
    const text = formatReport(result, h, { title: "synthetic", seed: 42, replay: "FAULT_SEED=40", t0: 0 });
    expect(text).toContain("seed 42 (FAULT_SEED=40 to replay the same choices)");
    expect(text).toContain("stale-read 2");
    expect(text).toContain(`worst staleness 4970.0 ms against Δ = ${DELTA} ms`);
    // Grouped by process, key and value: the worst of the group is shown.
    expect(text).toContain("stale-read on k by B (2 times)");
    expect(text).toMatch(/>> +5000\.0\.\.5000\.0 +B +load +k = a1 ok/);
    expect(text).toMatch(/R> +20\.0\.\.30\.0 +A +save +k = a2 ok/);
    expect(text).toContain("!! fault hold-all on B");
    expect(text).toContain("stale reads by likely cause: hold-all on the reader 2");
  });
});
