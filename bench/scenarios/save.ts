/**
 * Scenario 2: `saveValue` to memory + sqlite against the honest floor: one
 * `JSON.stringify`, a better-sqlite3 UPSERT (prepared once, same pragmas) and
 * a `Map.set`. Both sides overwrite the same 1,000 existing keys (the update
 * path), each in its own database file of the same size.
 */
import { join } from "node:path";
import { docData, docKey } from "../_data.js";
import { compare, row } from "../_harness.js";
import { type Context, openOurs, rawSqlite } from "../_setup.js";

export async function save(ctx: Context) {
  const K = 1000;
  const keys = Array.from({ length: K }, (_, i) => docKey(i));
  const docs = Array.from({ length: K }, (_, i) => docData(i));
  const { storage } = await openOurs(ctx, "s2");
  const raw = rawSqlite(join(ctx.dir, "s2-raw.db"));
  const map = new Map<string, string>();
  for (let i = 0; i < K; i++) {
    await storage.saveValue(keys[i]!, docs[i]);
    const s = JSON.stringify(docs[i]);
    raw.put.run(keys[i]!, s);
    map.set(keys[i]!, s);
  }
  ctx.log("2 save: saveValue (memory + sqlite) vs JSON.stringify + UPSERT + Map.set");
  const [o, b] = await compare(
    {
      name: "ours",
      async batch(n, s) {
        for (let i = 0; i < n; i++) await storage.saveValue(keys[(s + i) % K]!, docs[(s + i) % K]);
      },
    },
    {
      name: "raw",
      batch(n, s) {
        for (let i = 0; i < n; i++) {
          const j = (s + i) % K;
          const text = JSON.stringify(docs[j]);
          raw.put.run(keys[j]!, text);
          map.set(keys[j]!, text);
        }
      },
    },
    // 21 rounds: a round holds WAL checkpoints (fsyncs) at times the shared disk makes noisy.
    { n: ctx.quick ? 1_000 : 10_000, rounds: ctx.quick ? 3 : 21 },
  );
  await storage.close();
  raw.close();
  return [
    row(
      "2 save",
      ["await storage.saveValue(key, doc)", o.opsPerS],
      ["JSON.stringify + UPSERT + Map.set", b.opsPerS],
      { kind: "ratio<=", max: 1.1, text: "<= 1.10x" },
      "raw stores the JSON string (TEXT); ours stores UTF-8 bytes (BLOB, as the Rust crate)",
    ),
  ];
}
