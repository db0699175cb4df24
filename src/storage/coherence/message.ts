/**
 * The coherence bus's messages: keys, never values. Each names its origin
 * (an instance id) and a per-origin sequence number, so a receiver sees a
 * missed message as a hole. On the wire, compact JSON:
 *
 * - `{"v":1,"o":"<origin>","s":12,"op":"save","k":["a.json","b.json"]}` (also `"delete"`)
 * - `{"v":1,"o":"<origin>","s":13,"op":"clear","p":"document_"}`: every key under a prefix (`""`: all)
 * - `{"v":1,"o":"<origin>","s":13,"op":"hb"}`: a heartbeat, saying the last sequence number sent
 *   (it takes none itself), so a lost last message is a hole too.
 *
 * @module
 */
import { PersistenceError } from "../../errors.js";

export const WIRE_VERSION = 1;

/** What changed: values saved or deleted under keys, or everything under a prefix cleared. */
export type BusOp = "save" | "delete" | "clear";

/** One message of the coherence bus, decoded. */
export interface BusMessage {
  /** The instance that sent it (see `storage.coherence.origin`). */
  origin: string;
  /** Its sender's sequence number (a heartbeat's is the last one sent). */
  seq: number;
  op: BusOp | "heartbeat";
  /** The keys saved or deleted (empty for `clear` and heartbeats). */
  keys: readonly string[];
  /** The prefix a `clear` dropped. */
  prefix?: string;
}

/** A message that is not one of ours (wrong shape or version): the receiver treats it as a gap. */
export class BusMessageError extends PersistenceError {}

const OPS: Readonly<Record<string, BusMessage["op"]>> = {
  save: "save",
  delete: "delete",
  clear: "clear",
  hb: "heartbeat",
};

export function encodeMessage(m: BusMessage): string {
  const op = m.op === "heartbeat" ? "hb" : m.op;
  const body: Record<string, unknown> = { v: WIRE_VERSION, o: m.origin, s: m.seq, op };
  if (m.op === "clear") body.p = m.prefix ?? "";
  else if (m.op !== "heartbeat") body.k = m.keys;
  return JSON.stringify(body);
}

/** @throws BusMessageError for anything that is not a message of this version. */
export function decodeMessage(text: string): BusMessage {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new BusMessageError(`coherence bus: a message that is not JSON (${text.length} chars)`);
  }
  const b = body as Record<string, unknown>;
  if (typeof b !== "object" || b === null || b.v !== WIRE_VERSION) {
    throw new BusMessageError(
      `coherence bus: expected a message of version ${WIRE_VERSION}, got ${JSON.stringify(b?.v)}`,
    );
  }
  const op = typeof b.op === "string" ? OPS[b.op] : undefined;
  if (typeof b.o !== "string" || b.o === "" || !Number.isSafeInteger(b.s) || op === undefined) {
    throw new BusMessageError("coherence bus: a message without origin, sequence number or known operation");
  }
  const keys = b.k ?? [];
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
    throw new BusMessageError("coherence bus: a message whose keys are not strings");
  }
  if (op === "clear" && typeof b.p !== "string") {
    throw new BusMessageError("coherence bus: a clear message without a prefix");
  }
  const m: BusMessage = { origin: b.o, seq: b.s as number, op, keys };
  if (op === "clear") m.prefix = b.p as string;
  return m;
}

/**
 * Splits `keys` into batches whose encoded message stays within `maxBytes`
 * (PostgreSQL NOTIFY payloads must stay under 8000 bytes). A key is at most
 * 1024 bytes (the key rules), so every batch holds at least one.
 */
export function batchKeys(keys: readonly string[], origin: string, maxBytes: number): string[][] {
  // The envelope with the largest sequence number a message can carry, and `"op":"delete"`.
  const envelope = Buffer.byteLength(encodeMessage({ origin, seq: Number.MAX_SAFE_INTEGER, op: "delete", keys: [] }));
  const batches: string[][] = [];
  let batch: string[] = [];
  let size = envelope;
  for (const key of keys) {
    // JSON.stringify escapes quotes, backslashes and control characters; +1 for the comma.
    const bytes = Buffer.byteLength(JSON.stringify(key)) + 1;
    if (batch.length > 0 && size + bytes > maxBytes) {
      batches.push(batch);
      batch = [];
      size = envelope;
    }
    batch.push(key);
    size += bytes;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}
