/** What the crash-consistency child and its test both need to know. */
import { join } from "node:path";
import type { StorageSettings } from "../../src/index.js";

/** Keys the child writes: `k0.json` ... `k29.json` (few, so that keys are overwritten and deleted often). */
export const CRASH_KEYS = 30;

/** The child's profiles: sqlite, redb and fs under `dir` (or, for the known-limit run, sled alone). */
export function crashSettings(dir: string, kind: "durable" | "sled" = "durable"): StorageSettings {
  if (kind === "sled") return { profiles: { sled: { type: "sled", datadir: join(dir, "sled") } } };
  return {
    profiles: {
      sqlite: { type: "sqlite", datadir: join(dir, "sqlite") },
      redb: { type: "redb", datadir: join(dir, "redb", "store.redb"), table: "terraphim" },
      fs: { type: "fs", root: join(dir, "fs") },
    },
  };
}

/**
 * The value of operation `i` on `key`: derivable from both, so a stored value
 * can be checked exactly. Every 40th is ~1.2 MiB of text, stored zstd-compressed.
 */
export function crashValue(key: string, i: number): { key: string; i: number; pad: string } {
  const pad =
    i % 40 === 39 ? `big ${i} `.repeat(150_000).slice(0, 1_200_000) : "x".repeat((i * 7919) % 3000) + String(i);
  return { key, i, pad };
}
