/** Copying a value between profiles, for migrate and repair. */
import type { Tier } from "../index.js";

/**
 * Copies `key` from `src` to `dst` as stored bytes (compressed stays
 * compressed) with its expiry, each side under its profile's rules (time
 * limit, retries, TTL, quota, counters). Returns the number of bytes copied,
 * or `undefined` when the source does not hold the key (absent, or expired).
 */
export async function copyValue(src: Tier, dst: Tier, key: string): Promise<number | undefined> {
  const entry = await src.readEntry(key);
  if (entry === undefined) return undefined;
  await dst.write(key, entry.data, { expiresAt: entry.expiresAt });
  return entry.data.length;
}
