/**
 * Scenario 10: the shared tiers (what several application instances share)
 * on their native Node clients, each against the raw client doing the same
 * job in the same run: Redis (ioredis), PostgreSQL (pg) and MySQL/MariaDB
 * (mysql2), GET and SET, one call at a time and 64 in flight, plus the same
 * storage on the OpenDAL operator that served these schemes before (no
 * target). Uses the machine's servers (127.0.0.1:6379, :5432, :3306); a
 * server that does not answer fails its part loudly, the others still run.
 */
import type { Row } from "../_harness.js";
import type { Context } from "../_setup.js";
import { sharedMysql } from "./shared/mysql.js";
import { sharedPostgresql } from "./shared/postgresql.js";
import { sharedRedis } from "./shared/redis.js";

const PARTS: [string, (ctx: Context) => Promise<Row[]>][] = [
  ["redis", sharedRedis],
  ["postgresql", sharedPostgresql],
  ["mysql", sharedMysql],
];

export async function sharedTiers(ctx: Context): Promise<Row[]> {
  const rows: Row[] = [];
  const failed: string[] = [];
  for (const [name, run] of PARTS) {
    try {
      rows.push(...(await run(ctx)));
    } catch (err) {
      failed.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  // A part that could not run must not pass silently: the scenario fails after the others' figures.
  if (failed.length) throw new Error(`shared tiers could not measure ${failed.join("; ")}`);
  return rows;
}
