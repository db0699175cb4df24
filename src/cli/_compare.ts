/**
 * What verify and repair share: the keys to compare, every profile's copy of
 * each key (read with bounded concurrency, compared decoded), and the notes
 * on profiles that were left out.
 *
 * Values are compared decoded: a compressed and an uncompressed copy of the
 * same JSON are equal, and so are objects whose keys are in another order.
 */
import { createHash } from "node:crypto";
import { type DeviceStorage, decodeJson, PersistenceError, type Tier } from "../index.js";
import { listAll } from "./_list.js";
import { forEachLimit } from "./_pool.js";
import { messageOf, type Output } from "./_run.js";

/** One profile's copy of a key. */
export type Copy =
  | { state: "missing" }
  | { state: "ok"; digest: string }
  | { state: "undecodable"; error: string }
  | { state: "error"; error: string };

/** A key whose copies disagree (or could not be read), with every profile's copy. */
export interface KeyReport {
  key: string;
  copies: Map<string, Copy>;
}

/** Options verify and repair share. */
export interface CompareOptions {
  profiles?: string;
  prefix?: string;
  concurrency: number;
}

/** How many findings the text output shows (`--json` has them all). */
export const SHOWN = 50;

/** Configured profiles that could not be opened, for the JSON result. */
export function leftOut(storage: DeviceStorage): { profile: string; error: string }[] {
  return [...storage.profileErrors].map(([profile, e]) => ({ profile, error: e.message }));
}

/** ` (left out: a: why; b: why)`, or nothing. */
export function leftOutText(storage: DeviceStorage): string {
  const left = [...storage.profileErrors].map(([n, e]) => `${n}: ${e.message}`);
  return left.length ? ` (left out: ${left.join("; ")})` : "";
}

/** A note on stderr for each profile left out (text output only). */
export function noteLeftOut(output: Output, storage: DeviceStorage): void {
  if (output.json) return;
  for (const [n, e] of storage.profileErrors) output.note(`note: profile ${n} is left out: ${e.message}`);
}

/** Every key the listable profiles hold (merged). At least one profile must list. */
export async function keysOf(entries: readonly Tier[], prefix: string | undefined): Promise<string[]> {
  if (!entries.some((e) => e.capabilities.list)) {
    throw new PersistenceError(
      `none of ${entries.map((e) => `${e.name} (${e.scheme})`).join(", ")} can list its keys, so there is nothing to compare by; include a listable profile`,
    );
  }
  const listed = await listAll(entries, prefix ?? "");
  const failed = listed.profiles.filter((p) => p.error);
  if (failed.length) {
    throw new PersistenceError(`cannot list ${failed.map((p) => `${p.name}: ${p.error}`).join("; ")}`);
  }
  return listed.keys.map((k) => k.key);
}

/**
 * Reads every key from every profile (bounded concurrency) and calls
 * `onIssue` for each key whose copies are not all present and equal.
 */
export async function scan(
  entries: readonly Tier[],
  keys: readonly string[],
  concurrency: number,
  onIssue: (r: KeyReport) => void | Promise<void>,
): Promise<void> {
  await forEachLimit(keys, concurrency, async (key) => {
    const copies = new Map<string, Copy>();
    await Promise.all(
      entries.map(async (e) => {
        copies.set(e.name, await readCopy(e, key));
      }),
    );
    const states = [...copies.values()];
    const first = states[0];
    const same = first?.state === "ok" && states.every((c) => c.state === "ok" && c.digest === first.digest);
    if (!same) await onIssue({ key, copies: new Map(entries.map((e) => [e.name, copies.get(e.name)!])) });
  });
}

async function readCopy(e: Tier, key: string): Promise<Copy> {
  let raw: Uint8Array | undefined;
  try {
    // An expired copy counts as missing.
    raw = (await e.readEntry(key))?.data;
  } catch (err) {
    return { state: "error", error: messageOf(err) };
  }
  if (raw === undefined) return { state: "missing" };
  try {
    const value = decodeJson(raw, { profile: e.name, key });
    return { state: "ok", digest: createHash("sha256").update(canonicalJson(value)).digest("hex") };
  } catch (err) {
    return { state: "undecodable", error: messageOf(err) };
  }
}

/** JSON text with object keys sorted, so that equal values compare equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(",")}}`;
}
