/**
 * What the unstorage driver asks of the storage's tiers directly, where
 * `DeviceStorage` has no storage-wide call: listing keys across profiles
 * (`getKeys`, `clear`) and a value's metadata (`getMeta`).
 *
 * @module
 */
import type { StorageMeta } from "unstorage";
import {
  type DeviceStorage,
  NotFoundError,
  type Tier,
  type TierStat,
  UnavailableError,
  UnsupportedError,
} from "../index.js";

type Listing = { tier: Tier; keys: string[] } | { tier: Tier; error: unknown };

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Every storage key under `prefix`, from every tier that can list (a value is
 * saved to every profile, but a cache may hold one another process saved, or
 * may have evicted one): the union, sorted.
 *
 * "Every key" needs a durable profile that answered when the storage has one:
 * @throws UnavailableError when every durable profile that can list is down or failed (naming each and why).
 * @throws UnsupportedError when the storage has durable profiles and none of them can list.
 */
export async function listStored(storage: DeviceStorage, prefix: string): Promise<string[]> {
  const listers = storage.tiers.filter((t) => t.capabilities.list);
  const listings: Listing[] = await Promise.all(
    listers.map((tier) =>
      tier.list(prefix).then(
        (keys) => ({ tier, keys }),
        (error: unknown) => ({ tier, error }),
      ),
    ),
  );
  const answered = listings.filter((l): l is { tier: Tier; keys: string[] } => "keys" in l);
  const durable = storage.tiers.filter((t) => t.capabilities.durable);
  if (durable.length > 0 && !answered.some((l) => l.tier.capabilities.durable)) {
    const failed = listings.filter((l) => "error" in l && l.tier.capabilities.durable);
    if (failed.length === 0) {
      const names = durable.map((t) => `"${t.name}" (${t.scheme})`).join(", ");
      throw new UnsupportedError(`Expected a durable profile that can list its keys, got only ${names}, which cannot`);
    }
    throw new UnavailableError(
      `Cannot list the keys under ${JSON.stringify(prefix)}: no durable profile that can list answered`,
      failed.map((l) => ({ profile: l.tier.name, reason: reason("error" in l ? l.error : undefined) })),
    );
  }
  if (answered.length === 0) {
    const first = listings.find((l) => "error" in l);
    if (first && "error" in first) throw first.error;
    throw new UnsupportedError("Expected a profile that can list its keys, got none");
  }
  const keys = new Set<string>();
  for (const l of answered) for (const k of l.keys) keys.add(k);
  return [...keys].sort();
}

/**
 * unstorage metadata of storage key `key`, from the fastest tier holding it:
 * `size` (the stored bytes), `mtime` (from the fastest holding tier that
 * keeps modification times), `ttl` (seconds left, when the value has a TTL).
 * `null` when no tier holds it.
 * @throws the first tier failure when no tier that answered holds it.
 */
export async function metaOf(storage: DeviceStorage, key: string): Promise<StorageMeta | null> {
  let found: TierStat | undefined;
  let failure: unknown;
  let mtime: Date | undefined;
  for (const tier of storage.ranked) {
    // Once the size is known, only a tier that keeps modification times can add anything.
    if (found && !tier.capabilities.lastModified) continue;
    let stat: TierStat;
    try {
      stat = await tier.stat(key);
    } catch (err) {
      if (!(err instanceof NotFoundError)) failure ??= err;
      continue;
    }
    found ??= stat;
    mtime = stat.lastModified;
    if (mtime) break;
  }
  if (!found) {
    if (failure !== undefined) throw failure;
    return null;
  }
  const meta: StorageMeta = { size: found.contentLength };
  if (mtime) meta.mtime = mtime;
  if (found.expiresAt !== undefined) meta.ttl = Math.max(0, Math.ceil((found.expiresAt - Date.now()) / 1000));
  return meta;
}
