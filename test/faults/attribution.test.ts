/**
 * The report's likely cause of a stale read (attribution.ts), on histories
 * written here: each rule in its order, and `unexplained` when no fault of
 * the run accounts for it.
 */
import { describe, expect, it } from "vitest";
import { causes } from "./attribution.js";
import { check } from "./checker.js";
import type { FaultRecord, History, Operation } from "./history.js";

const DELTA = 600;
let n = 0;
const op = (
  process: string,
  kind: Operation["op"],
  value: string | null,
  invoke: number,
  complete: number,
): Operation => ({
  id: `${process}#${++n}`,
  process,
  op: kind,
  key: "k",
  value,
  invoke,
  complete,
  outcome: "ok",
});
const fault = (kind: string, target: string, start: number, end: number): FaultRecord => ({ kind, target, start, end });

/** v1 by w0.0, replaced at 30 by `replacer`, then read by r2.0 at 2000. */
function causeOf(replacer: Operation, faults: FaultRecord[], more: Operation[] = []): [string, number][] {
  const history: History = {
    ops: [op("w0.0", "save", "v1", 0, 10), replacer, ...more, op("r2.0", "load", "v1", 2000, 2001)],
    faults,
  };
  return causes(check(history, { deltaMs: DELTA }).violations, history, DELTA);
}

describe("likely cause of a stale read", () => {
  it("foreign write, killed writer, a fault on the reader, on the writer, a restart; else unexplained", () => {
    expect(causeOf(op("foreign", "foreign-save", "f1", 20, 30), [])).toEqual([["foreign write", 1]]);
    expect(causeOf(op("w1.0", "save", "v2", 20, 30), [fault("kill-writer", "w1.0", 31, 31)])).toEqual([
      ["killed writer", 1],
    ]);
    // The same writer went on after that save: not the kill that hid it.
    expect(
      causeOf(
        op("w1.0", "save", "v2", 20, 30),
        [fault("kill-writer", "w1.0", 900, 900)],
        [op("w1.0", "load", "v2", 40, 41)],
      ),
    ).toEqual([["unexplained", 1]]);
    expect(causeOf(op("w1.0", "save", "v2", 20, 30), [fault("hold-listener", "slot 2", 5, 1500)])).toEqual([
      ["hold-listener on the reader", 1],
    ]);
    expect(causeOf(op("w1.0", "save", "v2", 20, 30), [fault("delay-all", "slot 1", 25, 400)])).toEqual([
      ["delay-all on the writer", 1],
    ]);
    expect(causeOf(op("w1.0", "save", "v2", 20, 30), [fault("restart-server", "redis", 100, 900)])).toEqual([
      ["server restart", 1],
    ]);
    expect(causeOf(op("w1.0", "save", "v2", 20, 30), [fault("hold-all", "slot 3", 5, 1500)])).toEqual([
      ["unexplained", 1],
    ]);
  });
});
