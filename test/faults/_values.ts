/**
 * The values of the fault tests: JSON objects whose `id` is unique per save
 * (`<process>:<n>`), so that the checker knows which write produced what a
 * load returned. Workers save them through the library; the foreign writer
 * writes the same JSON text with a raw client.
 *
 * @module
 */

/** What is stored under every key of a fault test. */
export interface FaultValue {
  /** Unique per save: `<process>:<n>`. */
  id: string;
  /** The process that wrote it. */
  by: string;
  pad: string;
}

/** Padding, so that values are not trivially small. */
const PAD = "x".repeat(64);

/** The value of save number `n` of `process`. */
export function faultValue(process: string, n: number): FaultValue {
  return { id: `${process}:${n}`, by: process, pad: PAD };
}

/** The stored text of a value, exactly as `saveValue` writes it (JSON, no compression below 1 MiB). */
export function encodeFaultValue(v: FaultValue): string {
  return JSON.stringify(v);
}

/** The id of a loaded or stored value; something else is reported as `<malformed ...>` (never a real id). */
export function faultValueId(v: unknown): string {
  const value = typeof v === "string" ? safeParse(v) : v;
  if (typeof value === "object" && value !== null && typeof (value as FaultValue).id === "string") {
    return (value as FaultValue).id;
  }
  return `<malformed ${JSON.stringify(v)?.slice(0, 60)}>`;
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
