/**
 * Shared tier, PostgreSQL: a storage whose one profile is the native
 * `postgresql` driver (node-postgres) against a raw `pg.Pool` doing the same
 * job with the same prepared statements, on the machine's PostgreSQL
 * (127.0.0.1:5432, database `test`), 1 KB documents, GET and SET, one call at
 * a time and 64 in flight. A third side times the same storage on the OpenDAL
 * operator (what served `postgresql` before), without a target. Everything
 * lives in a table of its own, dropped at the end.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import postgres from "postgres";
import { silentLogger } from "../../../src/logger.js";
import { opendalOperator } from "../../../src/operators/drivers/opendal.js";
import { postgresqlOperator } from "../../../src/operators/drivers/postgresql.js";
import type { Operator } from "../../../src/operators/types.js";
import { DeviceStorage } from "../../../src/storage/device-storage.js";
import { docData, docKey } from "../../_data.js";
import { compareMany, type Measured, row, type Side } from "../../_harness.js";
import { type Context, inFlight, sink } from "../../_setup.js";

const PG_URL = "postgresql://postgres@127.0.0.1:5432/test";
/** Documents stored (every side cycles through the same ones). */
const K = 1000;
/** Calls in flight in the concurrent rows. */
const IN_FLIGHT = 64;
/** The driver's default pool size, given to the raw pool too. */
const POOL_SIZE = 10;
const TARGET = { kind: "ratio<=", max: 1.2, text: "<= 1.2x" } as const;

type Call = (i: number) => Promise<unknown>;

export async function sharedPostgresql(ctx: Context) {
  const table = `tp_bench_${randomBytes(4).toString("hex")}`;
  const keys = Array.from({ length: K }, (_, i) => docKey(i));
  const docs = Array.from({ length: K }, (_, i) => docData(i));
  const raw = new pg.Pool({ connectionString: PG_URL, max: POOL_SIZE });
  try {
    await raw.query(`CREATE TABLE ${table} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
  } catch (err) {
    await raw.end();
    throw new Error(
      `the shared postgresql scenario needs the machine's PostgreSQL at ${PG_URL}: ${(err as Error).message}`,
    );
  }
  const options = { connection_string: PG_URL, table };
  const storage = async (op: Operator) =>
    DeviceStorage.fromOperators([{ name: "postgresql", op }], {
      logger: silentLogger,
      ...(ctx.liveRanking ? {} : { liveRanking: false }),
    });
  const ours = await storage(await postgresqlOperator(options, "postgresql"));
  const opendal = await storage(await opendalOperator("postgresql", options, { profile: "postgresql" }));
  const rows = [];
  try {
    const get = `SELECT value FROM ${table} WHERE key = $1`;
    const put = `INSERT INTO ${table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
    for (let i = 0; i < K; i++) await raw.query(put, [keys[i], Buffer.from(JSON.stringify(docs[i]))]);

    const load =
      (s: DeviceStorage): Call =>
      async (i) => {
        sink.v = await s.loadValue(keys[i % K]!);
      };
    const save =
      (s: DeviceStorage): Call =>
      (i) =>
        s.saveValue(keys[i % K]!, docs[i % K]);
    const rawGet: Call = async (i) => {
      const r = await raw.query<[Buffer]>({ name: "get", text: get, values: [keys[i % K]], rowMode: "array" });
      sink.v = JSON.parse(r.rows[0]![0].toString("utf8"));
    };
    const rawSet: Call = (i) =>
      raw.query({
        name: "put",
        text: put,
        values: [keys[i % K], Buffer.from(JSON.stringify(docs[i % K]), "utf8")],
        rowMode: "array",
      });

    const cases = [
      ["GET", "await storage.loadValue(key)", "JSON.parse(await pool.query(SELECT value ...))", load, rawGet],
      [
        "SET",
        "await storage.saveValue(key, doc)",
        "await pool.query(INSERT ... ON CONFLICT, JSON.stringify(doc))",
        save,
        rawSet,
      ],
    ] as const;
    for (const [what, oursCall, rawCall, call, rawCallFn] of cases) {
      for (const width of [1, IN_FLIGHT]) {
        const shape = width === 1 ? "one at a time" : `${width} in flight`;
        ctx.log(`shared postgresql ${what}, ${shape}: pg driver vs raw pg.Pool vs OpenDAL`);
        const side = (name: string, c: Call): Side => ({ name, batch: (n, s) => inFlight(n, width, (i) => c(s + i)) });
        // A GET takes ~100 µs, a SET (a commit) ~1 ms one at a time: rounds of roughly equal time.
        const n = ctx.quick ? 300 : (what === "GET" ? 2 : 1) * (width === 1 ? 1000 : 3000);
        const [o, b, d] = (await compareMany(
          [side("ours", call(ours)), side("raw", rawCallFn), side("opendal", call(opendal))],
          { n, rounds: ctx.quick ? 3 : 15 },
        )) as [Measured, Measured, Measured];
        const scenario = `postgresql ${what}, ${shape}`;
        const baseline: [string, number] = [`pg ${rawCall}`, b.opsPerS];
        rows.push(
          row(scenario, [oursCall, o.opsPerS], baseline, TARGET),
          row(
            scenario,
            [`${oursCall} (OpenDAL operator)`, d.opsPerS],
            baseline,
            undefined,
            "before: the same storage on OpenDAL 0.49.1's postgresql service",
          ),
        );
      }
    }
    rows.push(...(await pipelined(ctx, ours, table, keys, docs)));
  } finally {
    await ours.close();
    await opendal.close();
    await raw.query(`DROP TABLE IF EXISTS ${table}`);
    await raw.end();
  }
  return rows;
}

/**
 * 64 in flight against the pipelined clients a Node user can pick: node-postgres in pipeline
 * mode (outside a Pool: 1, 2 and 4 connections, calls spread over them) and postgres.js
 * (which pipelines on its own; pools of 2 and 10). Ours is judged against the fastest of them
 * in this run.
 */
async function pipelined(ctx: Context, ours: DeviceStorage, table: string, keys: string[], docs: unknown[]) {
  const get = `SELECT value FROM ${table} WHERE key = $1`;
  const put = `INSERT INTO ${table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
  const clients: pg.Client[] = [];
  const pgPipeline = async (n: number) => {
    const cs: pg.Client[] = [];
    for (let i = 0; i < n; i++) {
      const c = new pg.Client({ connectionString: PG_URL, pipeline: true });
      await c.connect();
      cs.push(c);
    }
    clients.push(...cs);
    return cs;
  };
  const sqls = [postgres(PG_URL, { max: 2 }), postgres(PG_URL, { max: 10 })];
  const rows = [];
  try {
    const sides: [string, Call, Call][] = [];
    for (const n of [1, 2, 4]) {
      const cs = await pgPipeline(n);
      let next = 0;
      const pick = () => cs[next++ % n]!;
      sides.push([
        `pg pipeline mode (${n} connection${n > 1 ? "s" : ""})`,
        async (i) => {
          const r = await pick().query<[Buffer]>({ name: "get", text: get, values: [keys[i % K]], rowMode: "array" });
          sink.v = JSON.parse(r.rows[0]![0].toString("utf8"));
        },
        (i) =>
          pick().query({
            name: "put",
            text: put,
            values: [keys[i % K], Buffer.from(JSON.stringify(docs[i % K]), "utf8")],
            rowMode: "array",
          }),
      ]);
    }
    for (const sql of sqls) {
      sides.push([
        `postgres.js (pool of ${sql.options.max})`,
        async (i) => {
          const r = await sql.unsafe(get, [keys[i % K]!], { prepare: true });
          sink.v = JSON.parse((r[0]!.value as Buffer).toString("utf8"));
        },
        (i) => sql.unsafe(put, [keys[i % K]!, Buffer.from(JSON.stringify(docs[i % K]), "utf8")], { prepare: true }),
      ]);
    }
    for (const [what, oursCall, call] of [
      [
        "GET",
        "await storage.loadValue(key)",
        async (i: number) => {
          sink.v = await ours.loadValue(keys[i % K]!);
        },
      ],
      ["SET", "await storage.saveValue(key, doc)", (i: number) => ours.saveValue(keys[i % K]!, docs[i % K])],
    ] as const) {
      ctx.log(
        `shared postgresql ${what}, ${IN_FLIGHT} in flight: ours vs pipelined clients (pg pipeline mode, postgres.js)`,
      );
      const side = (name: string, c: Call): Side => ({
        name,
        batch: (n, s) => inFlight(n, IN_FLIGHT, (i) => c(s + i)),
      });
      const measured = await compareMany(
        [side("ours", call), ...sides.map(([name, g, p]) => side(name, what === "GET" ? g : p))],
        { n: ctx.quick ? 300 : what === "GET" ? 4000 : 2000, rounds: ctx.quick ? 3 : 11 },
      );
      const o = measured[0]!.opsPerS;
      let best = 1;
      for (let j = 2; j < measured.length; j++) if (measured[j]!.opsPerS > measured[best]!.opsPerS) best = j;
      const scenario = `postgresql ${what}, ${IN_FLIGHT} in flight`;
      rows.push(
        row(
          scenario,
          [oursCall, o],
          [`fastest pipelined client: ${sides[best - 1]![0]}`, measured[best]!.opsPerS],
          what === "GET" ? { kind: "ratio<=", max: 1.0, text: "<= 1.0x" } : undefined,
          what === "GET"
            ? "ours: the reads of one event-loop turn go as one = ANY($1)"
            : "for scale: one INSERT ... ON CONFLICT per save (server-bound: a commit each)",
        ),
      );
      for (let j = 1; j < measured.length; j++) {
        if (j === best) continue;
        rows.push(
          row(scenario, [oursCall, o], [sides[j - 1]![0], measured[j]!.opsPerS], undefined, "another pipelined client"),
        );
      }
    }
  } finally {
    for (const c of clients) await c.end();
    for (const sql of sqls) await sql.end();
  }
  return rows;
}
