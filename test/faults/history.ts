/**
 * The history of a fault-injection run: every operation of every process
 * (invoke time, completion time, value, outcome) and every fault injected.
 * Each process appends JSON lines to its own file with `fs.writeSync`, an
 * invocation before the operation starts and a completion after it ends, so a
 * SIGKILL loses nothing already acknowledged: an invocation without a
 * completion is an operation whose outcome is unknown. Times are ms from a
 * clock every process of the machine shares ({@link now}).
 *
 * @module
 */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";

/** Wall-clock ms with sub-ms resolution, comparable across the processes of one machine. */
export const now = (): number => performance.timeOrigin + performance.now();

/** What an operation did. Foreign ones were made by a raw client, not by this library. */
export type OpKind = "save" | "delete" | "load" | "foreign-save" | "foreign-delete";

/** `ok`, an error code (`E_TIMEOUT`, ...), or `unknown`: the process died before the operation completed. */
export type Outcome = string;

/** One operation, invocation and completion joined. */
export interface Operation {
  /** Unique in the history: `<process>#<n>`. */
  id: string;
  process: string;
  op: OpKind;
  key: string;
  /**
   * A save: the value id written. A load: the value id returned (`null`: not found; `undefined`: it
   * failed or never completed). A delete: `null`.
   */
  value: string | null | undefined;
  invoke: number;
  /** `undefined` when the outcome is unknown. */
  complete: number | undefined;
  outcome: Outcome;
  /** A load: the profile that answered. */
  from?: string | undefined;
}

/** One fault injected (or observed, such as a writer killed right after a save). */
export interface FaultRecord {
  kind: string;
  /** The process or proxy it hit (`server` for a restart). */
  target: string;
  start: number;
  end: number | undefined;
  detail?: string | undefined;
}

/** Everything a run recorded. */
export interface History {
  ops: Operation[];
  faults: FaultRecord[];
}

type Line =
  | { t: "i"; p: string; n: number; op: OpKind; k: string; v?: string | null; at: number }
  | { t: "c"; p: string; n: number; at: number; out: Outcome; v?: string | null; from?: string }
  | { t: "fs"; p: string; n: number; kind: string; target: string; at: number; detail?: string }
  | { t: "fe"; p: string; n: number; at: number };

/** Where a recorder's lines go: a file (appended synchronously), or an array (tests in one process). */
export type Sink = { file: string } | { lines: string[] };

/** Records the operations of one process (see the module doc). */
export class Recorder {
  readonly process: string;
  readonly #fd: number | undefined;
  readonly #lines: string[] | undefined;
  #n = 0;

  constructor(process: string, sink: Sink) {
    this.process = process;
    if ("file" in sink) this.#fd = openSync(sink.file, "a");
    else this.#lines = sink.lines;
  }

  #write(line: Line): void {
    const text = JSON.stringify(line);
    if (this.#fd !== undefined) writeSync(this.#fd, `${text}\n`);
    else this.#lines!.push(text);
  }

  /** Records the start of an operation (a save names its value); returns its number for {@link complete}. */
  invoke(op: OpKind, key: string, value?: string | null, at = now()): number {
    const n = ++this.#n;
    this.#write({ t: "i", p: this.process, n, op, k: key, ...(value !== undefined ? { v: value } : {}), at });
    return n;
  }

  /** Records the end of operation `n`: `ok` (a load with the value it returned) or an error code. */
  complete(n: number, outcome: Outcome, value?: string | null, from?: string, at = now()): void {
    const line: Line = { t: "c", p: this.process, n, at, out: outcome };
    if (value !== undefined) line.v = value;
    if (from !== undefined) line.from = from;
    this.#write(line);
  }

  /** Records the start of a fault; call the function returned when it ends. */
  fault(kind: string, target: string, detail?: string): () => void {
    const n = ++this.#n;
    this.#write({ t: "fs", p: this.process, n, kind, target, at: now(), ...(detail ? { detail } : {}) });
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#write({ t: "fe", p: this.process, n, at: now() });
    };
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
  }
}

/** Joins recorded lines into a history (a torn last line, from a kill mid-write, is skipped). */
export function parseHistory(lines: Iterable<string>): History {
  const ops = new Map<string, Operation>();
  const faults = new Map<string, FaultRecord>();
  for (const text of lines) {
    if (text.trim() === "") continue;
    let l: Line;
    try {
      l = JSON.parse(text) as Line;
    } catch {
      continue;
    }
    const id = `${l.p}#${l.n}`;
    if (l.t === "i") {
      const value = l.op === "delete" || l.op === "foreign-delete" ? null : l.op === "load" ? undefined : l.v;
      ops.set(id, {
        id,
        process: l.p,
        op: l.op,
        key: l.k,
        value,
        invoke: l.at,
        complete: undefined,
        outcome: "unknown",
      });
    } else if (l.t === "c") {
      const o = ops.get(id);
      if (!o) continue;
      o.complete = l.at;
      o.outcome = l.out;
      if (o.op === "load") o.value = l.out === "ok" ? (l.v ?? null) : undefined;
      if (l.from !== undefined) o.from = l.from;
    } else if (l.t === "fs") {
      faults.set(id, { kind: l.kind, target: l.target, start: l.at, end: undefined, detail: l.detail });
    } else if (l.t === "fe") {
      const f = faults.get(id);
      if (f) f.end = l.at;
    }
  }
  return {
    ops: [...ops.values()].sort((a, b) => a.invoke - b.invoke),
    faults: [...faults.values()].sort((a, b) => a.start - b.start),
  };
}

/** Reads and joins the history files of every process of a run. */
export function readHistory(files: readonly string[]): History {
  const lines: string[] = [];
  for (const f of files) {
    try {
      lines.push(...readFileSync(f, "utf8").split("\n"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return parseHistory(lines);
}
