/**
 * What the unstorage driver asks of the storage's tiers directly, where
 * `DeviceStorage` has no storage-wide call: listing keys across profiles
 * (`getKeys`, `clear`) and a value's metadata (`getMeta`).
 *
 * @module
 */
import type { StorageMeta } from "unstorage";
import { type DeviceStorage, NotFoundError, type TierStat, UnavailableError, UnsupportedError } from "../index.js";

/**
 * Every storage key under `prefix`, from every profile that can list (`storage.listKeys`: a value is
 * saved to every profile, but a cache may hold one another process saved, or may have evicted one).
 *
 * "Every key" needs a durable profile that answered when the storage has one:
 * @throws UnavailableError when every durable profile that can list is down or failed (naming each and why).
 * @throws UnsupportedError when the storage has durable profiles and none of them can list.
 */
export async function listStored(storage: DeviceStorage, prefix: string): Promise<string[]> {
  const { keys, asked, missed } = await storage.listKeys(prefix);
  const durable = storage.tiers.filter((t) => t.capabilities.durable || t.state.kind === "down");
  if (durable.length > 0 && !durable.some((t) => asked.includes(t.name))) {
    const failed = missed.filter((m) => !m.unsupported && (m.durable || durable.some((t) => t.name === m.profile)));
    if (failed.length === 0) {
      const names = durable.map((t) => `"${t.name}" (${t.scheme})`).join(", ");
      throw new UnsupportedError(`Expected a durable profile that can list its keys, got only ${names}, which cannot`);
    }
    throw new UnavailableError(
      `Cannot list the keys under ${JSON.stringify(prefix)}: no durable profile that can list answered`,
      failed.map(({ profile, reason }) => ({ profile, reason })),
    );
  }
  if (asked.length === 0) {
    throw new UnsupportedError("Expected a profile that can list its keys, got none");
  }
  return keys;
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
