/**
 * The shared `mysql` tier: a storage with one mysql profile (our mysql2
 * driver) against raw mysql2 doing the same job on the same server, table and
 * pool size, 1 KB documents, GET and SET, one at a time and 64 in flight; and
 * the same storage on the OpenDAL 0.49.1 operator (what the scheme used before),
 * timed in the same rounds. Needs the MariaDB/MySQL at 127.0.0.1:3306 (root, no
 * password, database `test`); uses its own table, dropped at the end.
 */
import { randomBytes } from "node:crypto";
import mysql from "mysql2/promise";
import { silentLogger } from "../../../src/logger.js";
import { probeTcp } from "../../../src/operators/drivers/_net.js";
import { mysqlOperator } from "../../../src/operators/drivers/mysql.js";
import { opendalOperator } from "../../../src/operators/drivers/opendal.js";
import { DeviceStorage } from "../../../src/storage/device-storage.js";
import { docData, docKey } from "../../_data.js";
import { compareMany, type Row, row, type Side } from "../../_harness.js";
import { type Context, inFlight } from "../../_setup.js";

const HOST = "127.0.0.1";
const PORT = 3306;
/** Documents in the table; reads cycle over them. */
const K = 1000;
/** Calls in flight in the concurrent rows. */
const IN_FLIGHT = 64;
/** Connections, for every side (mysql2's and sqlx's default). */
const POOL_SIZE = 10;

export async function sharedMysql(ctx: Context): Promise<Row[]> {
  const unreachable = await probeTcp(HOST, PORT);
  if (unreachable) {
    ctx.log(`!!! shared mysql: SKIPPED, nothing answers on ${HOST}:${PORT} (${unreachable}) !!!`);
    return [];
  }
  const table = `tp_bench_${randomBytes(4).toString("hex")}`;
  const options = { connection_string: `mysql://root@${HOST}:${PORT}/test`, table };
  const ranking = ctx.liveRanking ? {} : { liveRanking: false };
  const keys = Array.from({ length: K }, (_, i) => docKey(i));
  const docs = Array.from({ length: K }, (_, i) => docData(i));

  const raw = mysql.createPool({ host: HOST, port: PORT, user: "root", database: "test", connectionLimit: POOL_SIZE });
  const closers: (() => Promise<unknown>)[] = [() => raw.end()];
  const rows: Row[] = [];
  try {
    // Ours creates the table (`key` VARBINARY PRIMARY KEY, `value` LONGBLOB).
    const op = await mysqlOperator({ ...options, pool_size: String(POOL_SIZE) }, "mysql");
    const ours = await DeviceStorage.fromOperators([{ name: "mysql", op }], { logger: silentLogger, ...ranking });
    closers.push(() => ours.close());
    const dal = await DeviceStorage.fromOperators([{ name: "mysql", op: await opendalOperator("mysql", options) }], {
      logger: silentLogger,
      ...ranking,
    });
    closers.push(() => dal.close());
    for (let i = 0; i < K; i++) await ours.saveValue(keys[i]!, docs[i]);

    const select = `SELECT \`value\` FROM \`${table}\` WHERE \`key\` = ?`;
    const upsert = `INSERT INTO \`${table}\` (\`key\`, \`value\`) VALUES (?, ?) ON DUPLICATE KEY UPDATE \`value\` = VALUES(\`value\`)`;
    const rawGet = async (key: string) => {
      const [r] = await raw.execute<mysql.RowDataPacket[]>(select, [key]);
      return JSON.parse(r[0]!.value);
    };
    const rawSet = (key: string, doc: unknown) => raw.execute(upsert, [key, JSON.stringify(doc)]);

    for (const width of [1, IN_FLIGHT]) {
      const how = width === 1 ? "one at a time" : `${IN_FLIGHT} in flight`;
      const opts = {
        n: (ctx.quick ? 300 : 2_000) * (width === 1 ? 1 : 4),
        rounds: ctx.quick ? 3 : 11,
      };
      const at = (s: number, i: number) => (s + i) % K;

      ctx.log(`shared mysql GET ${how}: loadValue vs mysql2 execute + JSON.parse (and OpenDAL)`);
      const get: Side[] = [
        { name: "ours", batch: (n, s) => inFlight(n, width, (i) => ours.loadValue(keys[at(s, i)]!)) },
        { name: "raw", batch: (n, s) => inFlight(n, width, (i) => rawGet(keys[at(s, i)]!)) },
        { name: "opendal", batch: (n, s) => inFlight(n, width, (i) => dal.loadValue(keys[at(s, i)]!)) },
      ];
      const [g, gr, gd] = await compareMany(get, opts);
      const rawGetLabel = "JSON.parse((await pool.execute(SELECT)).rows[0].value)";
      rows.push(
        row(
          `mysql GET ${how}`,
          ["await storage.loadValue(key) [mysql2 driver]", g!.opsPerS],
          [rawGetLabel, gr!.opsPerS],
          { kind: "ratio<=", max: 1.2, text: "<= 1.2x" },
          `pool of ${POOL_SIZE} connections on both sides`,
        ),
        row(
          `mysql GET ${how} (OpenDAL, before)`,
          ["await storage.loadValue(key) [OpenDAL 0.49.1]", gd!.opsPerS],
          [rawGetLabel, gr!.opsPerS],
        ),
      );

      ctx.log(`shared mysql SET ${how}: saveValue vs mysql2 execute(UPSERT, JSON.stringify) (and OpenDAL)`);
      const set: Side[] = [
        { name: "ours", batch: (n, s) => inFlight(n, width, (i) => ours.saveValue(keys[at(s, i)]!, docs[at(s, i)])) },
        { name: "raw", batch: (n, s) => inFlight(n, width, (i) => rawSet(keys[at(s, i)]!, docs[at(s, i)])) },
        { name: "opendal", batch: (n, s) => inFlight(n, width, (i) => dal.saveValue(keys[at(s, i)]!, docs[at(s, i)])) },
      ];
      const [w, wr, wd] = await compareMany(set, { ...opts, n: Math.round(opts.n / 2) });
      const rawSetLabel = "await pool.execute(UPSERT, [key, JSON.stringify(doc)])";
      rows.push(
        row(
          `mysql SET ${how}`,
          ["await storage.saveValue(key, doc) [mysql2 driver]", w!.opsPerS],
          [rawSetLabel, wr!.opsPerS],
          { kind: "ratio<=", max: 1.2, text: "<= 1.2x" },
          `pool of ${POOL_SIZE} connections on both sides; InnoDB commit per write`,
        ),
        row(
          `mysql SET ${how} (OpenDAL, before)`,
          ["await storage.saveValue(key, doc) [OpenDAL 0.49.1]", wd!.opsPerS],
          [rawSetLabel, wr!.opsPerS],
        ),
      );
    }
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
    const cleanup = await mysql.createConnection({ host: HOST, port: PORT, user: "root", database: "test" });
    await cleanup.query(`DROP TABLE IF EXISTS \`${table}\``);
    await cleanup.end();
  }
  return rows;
}
