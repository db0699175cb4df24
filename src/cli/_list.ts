/** Listing several profiles at once and merging their keys, for ls, verify and repair. */
import type { Tier } from "../index.js";
import { messageOf } from "./_run.js";

/** One profile's part of a listing: whether it can list, how many keys it listed, or why it failed. */
export interface ListedProfile {
  name: string;
  scheme: string;
  listable: boolean;
  count?: number;
  error?: string;
}

/** The keys of every listable profile, merged and sorted, with which profiles hold each (in `targets` order). */
export async function listAll(
  targets: readonly Tier[],
  prefix: string,
): Promise<{ keys: { key: string; profiles: string[] }[]; profiles: ListedProfile[] }> {
  const byKey = new Map<string, string[]>();
  const profiles = await Promise.all(
    targets.map(async (e): Promise<ListedProfile> => {
      const info = { name: e.name, scheme: e.scheme, listable: e.capabilities.list };
      if (!info.listable) return info;
      try {
        // Without the library's reserved keys and expired values.
        const keys = await e.list(prefix);
        for (const k of keys) {
          const held = byKey.get(k);
          if (held) held.push(e.name);
          else byKey.set(k, [e.name]);
        }
        return { ...info, count: keys.length };
      } catch (err) {
        return { ...info, error: messageOf(err) };
      }
    }),
  );
  const order = new Map(targets.map((e, i) => [e.name, i]));
  const keys = [...byKey]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, held]) => ({ key, profiles: held.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0)) }));
  return { keys, profiles };
}
