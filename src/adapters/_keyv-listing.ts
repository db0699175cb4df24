/**
 * What `clear` and the iterator make of the storage's listing across profiles
 * (`storage.listKeys`): a profile that could not be asked is named, so a
 * `clear` never looks complete when it was not; and the batching of both.
 *
 * @module
 */
import { type MissedProfile, type PersistenceError, UnavailableError, UnsupportedError } from "../index.js";

/** Keys per batch read (the iterator) and deletes in flight (`clear`, `deleteMany`). */
export const BATCH = 32;

/**
 * The error of a `clear` or an iteration that could not list every profile:
 * `UnsupportedError` when the only ones missed cannot list at all, else an
 * `UnavailableError` naming each.
 */
export function incomplete(
  what: "clear" | "iterator",
  namespace: string | undefined,
  missed: readonly MissedProfile[],
): PersistenceError {
  const ns = namespace === undefined ? "no namespace" : `namespace ${JSON.stringify(namespace)}`;
  const detail = missed.map((m) => `${m.profile}: ${m.reason}`).join("; ");
  const lost = what === "clear" ? "not deleted" : "not iterated";
  const message = `Keyv ${what} (${ns}) expected to list every profile, but ${missed.length} could not be listed (${detail}); keys only there were ${lost}`;
  if (missed.every((m) => m.unsupported)) return new UnsupportedError(message);
  return new UnavailableError(
    message,
    missed.map(({ profile, reason }) => ({ profile, reason })),
  );
}

/** `fn` over `items`, at most {@link BATCH} at a time; the results in order. */
export async function inBatches<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += BATCH) {
    out.push(...(await Promise.all(items.slice(i, i + BATCH).map(fn))));
  }
  return out;
}
