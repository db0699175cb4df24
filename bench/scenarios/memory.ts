/**
 * Scenario 8: resident memory after caching 100,000 documents of 1 KB
 * (memory + sqlite, every document saved once) in a fresh process, against
 * the payload (100,000 x 1,024 bytes of JSON). The figure is the growth of
 * RSS from just before the first save to after the last (two full GCs before
 * each reading): what caching costs, not Node's own ~40 MB. A raw Map of the
 * JSON strings + better-sqlite3 in another fresh process is shown for scale.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Row, row } from "../_harness.js";
import type { Context } from "../_setup.js";
import { child } from "../_spawn.js";

interface Usage {
  n: number;
  payload: number;
  before: NodeJS.MemoryUsage;
  after: NodeJS.MemoryUsage;
}

const MB = 1024 * 1024;

export async function memoryFootprint(ctx: Context): Promise<Row[]> {
  const n = ctx.quick ? 10_000 : 100_000;
  ctx.log(`8 memory: ${n} documents, fresh processes`);
  const dOurs = join(ctx.dir, "s8-ours");
  const dRaw = join(ctx.dir, "s8-raw");
  mkdirSync(dOurs, { recursive: true });
  mkdirSync(dRaw, { recursive: true });
  const ours = await child<Usage>("rss-ours", dOurs, n);
  const raw = await child<Usage>("rss-raw", dRaw, n);
  const growth = (u: Usage) => u.after.rss - u.before.rss;
  const payload = ours.payload;
  const fmt = (u: Usage) =>
    `RSS +${(growth(u) / MB).toFixed(1)} MB (heap +${((u.after.heapUsed - u.before.heapUsed) / MB).toFixed(1)}, ` +
    `buffers +${((u.after.arrayBuffers - u.before.arrayBuffers) / MB).toFixed(1)}), total ${(u.after.rss / MB).toFixed(0)} MB`;
  // "ops/s" here: documents per MB of RSS growth (higher is leaner); ratio = our growth / payload.
  const perMb = (bytes: number) => n / (bytes / MB);
  return [
    row(
      `8 RSS ${n / 1000}k docs vs payload`,
      [`ours: ${fmt(ours)}`, perMb(growth(ours))],
      [`payload ${(payload / MB).toFixed(1)} MB`, perMb(payload)],
      { kind: "value<=", max: 2, value: growth(ours) / payload, text: "<= 2x payload" },
      "documents per MB; ratio = RSS growth / payload",
    ),
    row(
      `8 RSS ${n / 1000}k docs vs raw`,
      [`ours: RSS +${(growth(ours) / MB).toFixed(1)} MB`, perMb(growth(ours))],
      [`raw Map<string,string> + better-sqlite3: ${fmt(raw)}`, perMb(growth(raw))],
      undefined,
      "for scale: documents per MB; ratio = our RSS growth / raw's",
    ),
  ];
}
