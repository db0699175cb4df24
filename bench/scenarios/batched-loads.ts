/**
 * Scenario 13: `loadValues` of 1,000 keys from a shared tier (a storage whose
 * one profile is Redis, then PostgreSQL), against the raw batched loop a user
 * would write: one `MGET` of the 1,000 keys (ioredis) / one
 * `SELECT key, value ... WHERE key = ANY($1)` (pg), then `JSON.parse` of each
 * value. 1 KB documents; the machine's servers; own key prefix and table,
 * removed at the end.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { silentLogger } from "../../src/logger.js";
import { DeviceStorage } from "../../src/storage/device-storage.js";
import { docData, docKey } from "../_data.js";
import { compare, type Row, row } from "../_harness.js";
import { type Context, sink } from "../_setup.js";

const BATCH = 1000;
const PG_URL = "postgresql://postgres@127.0.0.1:5432/test";
const TARGET = { kind: "ratio<=", max: 1.1, text: "<= 1.1x" } as const;

/** `loadValues` of every key; throws when one did not load (the figure would be of errors). */
async function loadAll(storage: DeviceStorage, keys: readonly string[]) {
  const out = await storage.loadValues(keys);
  for (const o of out) if (!o.ok) throw o.error;
  sink.v = out;
}

export async function batchedLoads(ctx: Context): Promise<Row[]> {
  const keys = Array.from({ length: BATCH }, (_, i) => docKey(i));
  const texts = keys.map((_, i) => JSON.stringify(docData(i)));
  // A round is 10 calls of 1,000 keys (ops are keys, so the figures are keys/s).
  const opts = { n: 10 * BATCH, rounds: ctx.quick ? 3 : 15 };
  const times = (n: number, call: () => Promise<void>) => async () => {
    for (let i = 0; i < n / BATCH; i++) await call();
  };
  const rows: Row[] = [];
  const open = (profile: Record<string, string>) =>
    DeviceStorage.fromSettings(
      { profiles: { shared: profile } },
      { logger: silentLogger, ...(ctx.liveRanking ? {} : { liveRanking: false }) },
    );

  {
    const prefix = `tp-bench-many-${randomBytes(4).toString("hex")}/`;
    const raw = new Redis(6379, "127.0.0.1");
    const storage = await open({ type: "redis", endpoint: "tcp://127.0.0.1:6379", root: `/${prefix}` });
    try {
      await raw.mset(...keys.flatMap((k, i) => [prefix + k, texts[i]!]));
      const full = keys.map((k) => prefix + k);
      ctx.log("13 loadValues of 1,000 keys, redis: ours vs one MGET + JSON.parse");
      const [o, b] = await compare(
        { name: "ours", batch: (n) => times(n, () => loadAll(storage, keys))() },
        {
          name: "raw",
          batch: (n) =>
            times(n, async () => {
              sink.v = (await raw.mget(full)).map((t) => JSON.parse(t!));
            })(),
        },
        opts,
      );
      rows.push(
        row(
          "13 loadValues 1,000 keys, redis",
          ["await storage.loadValues(keys)", o.opsPerS],
          ["ioredis (await redis.mget(keys)).map(JSON.parse)", b.opsPerS],
          TARGET,
          "keys/s",
        ),
      );
    } finally {
      await storage.close();
      await raw.del(...keys.map((k) => prefix + k));
      raw.disconnect();
    }
  }

  {
    const table = `tp_bench_many_${randomBytes(4).toString("hex")}`;
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
    await pool.query(`CREATE TABLE ${table} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
    const storage = await open({ type: "postgresql", connection_string: PG_URL, table });
    try {
      await pool.query(`INSERT INTO ${table} SELECT * FROM unnest($1::text[], $2::bytea[])`, [
        keys,
        texts.map((t) => Buffer.from(t)),
      ]);
      const client = await pool.connect();
      try {
        const many = `SELECT key, value FROM ${table} WHERE key = ANY($1)`;
        ctx.log("13 loadValues of 1,000 keys, postgresql: ours vs one = ANY($1) + JSON.parse");
        const [o, b] = await compare(
          { name: "ours", batch: (n) => times(n, () => loadAll(storage, keys))() },
          {
            name: "raw",
            batch: (n) =>
              times(n, async () => {
                const r = await client.query<[string, Buffer]>({
                  name: "many",
                  text: many,
                  values: [keys],
                  rowMode: "array",
                });
                sink.v = r.rows.map((x) => JSON.parse(x[1].toString("utf8")));
              })(),
          },
          opts,
        );
        rows.push(
          row(
            "13 loadValues 1,000 keys, postgresql",
            ["await storage.loadValues(keys)", o.opsPerS],
            ["pg (await client.query(SELECT key, value ... = ANY($1))).rows.map(JSON.parse)", b.opsPerS],
            TARGET,
            "keys/s",
          ),
        );
      } finally {
        client.release();
      }
    } finally {
      await storage.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    }
  }
  return rows;
}
