/**
 * Scenario 7: start-up of memory + sqlite + redb, probes included:
 * `DeviceStorage.fromSettings` in a fresh process (so the better-sqlite3 and
 * OpenDAL native bindings load inside the timed call, as in a real start),
 * against opening the same three raw (a `Map`, better-sqlite3 with the same
 * pragmas, an OpenDAL redb `Operator`, one call each) in another fresh
 * process. The files exist already (a restart: one untimed start creates
 * them). Medians of several starts; the target is absolute (<= 150 ms).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { median, type Row, row } from "../_harness.js";
import type { Context } from "../_setup.js";
import { child } from "../_spawn.js";

interface Start {
  ms: number;
  importMs?: number;
  ranking?: string;
  left?: string[];
}

export async function startup(ctx: Context): Promise<Row[]> {
  const dir = join(ctx.dir, "s7");
  mkdirSync(dir, { recursive: true });
  const runs = ctx.quick ? 2 : 7;
  ctx.log(`7 start-up: ${runs} fresh processes each`);
  const first = await child<Start>("startup-ours", dir);
  if (first.left?.length) throw new Error(`profiles left out at start-up: ${first.left.join(", ")}`);
  await child<Start>("startup-raw", dir);
  const ours: Start[] = [];
  const raw: Start[] = [];
  for (let i = 0; i < runs; i++) {
    ours.push(await child<Start>("startup-ours", dir));
    raw.push(await child<Start>("startup-raw", dir));
  }
  const o = median(ours.map((s) => s.ms));
  const b = median(raw.map((s) => s.ms));
  return [
    row(
      "7 start-up memory+sqlite+redb",
      [`DeviceStorage.fromSettings: ${o.toFixed(1)} ms`, 1000 / o],
      [`raw open of the 3 drivers: ${b.toFixed(1)} ms`, 1000 / b],
      { kind: "value<=", max: 150, value: o, text: "<= 150 ms" },
      `starts/s (1000 / median ms); our module import ${median(ours.map((s) => s.importMs ?? 0)).toFixed(0)} ms not counted; ranking ${ours[0]?.ranking ?? ""}`,
    ),
  ];
}
