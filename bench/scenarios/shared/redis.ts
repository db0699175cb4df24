/**
 * Shared tier, Redis: a storage whose one profile is the native `redis`
 * driver (ioredis) against raw ioredis doing the same job, on the machine's
 * Redis (127.0.0.1:6379, nothing started here), 1 KB documents, GET and SET,
 * one call at a time and 64 in flight. A third side times the same storage
 * on the OpenDAL operator (what served `redis` before), without a target.
 * Every key lives under a random prefix, deleted at the end.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { silentLogger } from "../../../src/logger.js";
import { opendalOperator } from "../../../src/operators/drivers/opendal.js";
import { redisOperator } from "../../../src/operators/drivers/redis.js";
import type { Operator } from "../../../src/operators/types.js";
import { DeviceStorage } from "../../../src/storage/device-storage.js";
import { docData, docKey } from "../../_data.js";
import { compareMany, row, type Side } from "../../_harness.js";
import { type Context, deleteRedisPrefix, inFlight, sink } from "../../_setup.js";

/** Documents stored (and cycled through by every side). */
const K = 1000;
/** Calls in flight in the concurrent rows. */
const IN_FLIGHT = 64;
const HOST = "127.0.0.1";
const PORT = 6379;

export async function sharedRedis(ctx: Context) {
  const prefix = `tp-bench-${randomBytes(4).toString("hex")}/`;
  const keys = Array.from({ length: K }, (_, i) => docKey(i));
  const docs = Array.from({ length: K }, (_, i) => docData(i));
  const texts = docs.map((d) => JSON.stringify(d));
  const raw = new Redis({ host: HOST, port: PORT, lazyConnect: true });
  try {
    await raw.connect();
  } catch (err) {
    raw.disconnect();
    throw new Error(`shared redis scenario needs the machine's Redis on ${HOST}:${PORT}: ${(err as Error).message}`);
  }
  const options = { endpoint: `tcp://${HOST}:${PORT}`, root: `/${prefix}` };
  const open = (op: Operator) =>
    DeviceStorage.fromOperators([{ name: "redis", op }], {
      logger: silentLogger,
      ...(ctx.liveRanking ? {} : { liveRanking: false }),
    });
  const ours = await open(await redisOperator(options, "redis"));
  const opendal = await open(await opendalOperator("redis", options, { profile: "redis" }));
  const opts = { n: ctx.quick ? 500 : 4000, rounds: ctx.quick ? 3 : 15 };
  const rows = [];
  try {
    // raw stores under the same prefix, so every side reads the same documents from the same server.
    for (let i = 0; i < K; i++) await raw.set(prefix + keys[i]!, texts[i]!);

    const load = (storage: DeviceStorage) => (i: number) =>
      storage.loadValue(keys[i % K]!).then((v) => {
        sink.v = v;
      });
    const get = async (i: number) => {
      sink.v = JSON.parse((await raw.get(prefix + keys[i % K]!))!);
    };
    const save = (storage: DeviceStorage) => (i: number) => storage.saveValue(keys[i % K]!, docs[i % K]);
    const set = (i: number) => raw.set(prefix + keys[i % K]!, JSON.stringify(docs[i % K]));

    const cases: [
      string,
      string,
      string,
      (s: DeviceStorage) => (i: number) => Promise<unknown>,
      (i: number) => Promise<unknown>,
    ][] = [
      ["GET", "await storage.loadValue(key)", "JSON.parse(await redis.get(key))", load, get],
      ["SET", "await storage.saveValue(key, doc)", "await redis.set(key, JSON.stringify(doc))", save, set],
    ];
    for (const [what, oursCall, rawCall, call, rawOp] of cases) {
      for (const width of [1, IN_FLIGHT]) {
        const shape = width === 1 ? "one at a time" : `${width} in flight`;
        ctx.log(`shared redis ${what}, ${shape}: ioredis driver vs raw ioredis vs OpenDAL`);
        const side = (name: string, op: (i: number) => Promise<unknown>): Side => ({
          name,
          batch: (n, s) => inFlight(n, width, (i) => op(s + i)),
        });
        const [o, b, d] = await compareMany(
          [side("ours", call(ours)), side("raw", rawOp), side("opendal", call(opendal))],
          opts,
        );
        const scenario = `redis ${what}, ${shape}`;
        rows.push(
          row(scenario, [oursCall, o!.opsPerS], [`ioredis ${rawCall}`, b!.opsPerS], {
            kind: "ratio<=",
            max: 1.2,
            text: "<= 1.2x",
          }),
          row(
            scenario,
            [`${oursCall} (OpenDAL operator)`, d!.opsPerS],
            [`ioredis ${rawCall}`, b!.opsPerS],
            undefined,
            "before: the same storage on OpenDAL 0.49.1's redis service",
          ),
        );
      }
    }
    // Against the fastest way a Node user gets there by hand: ioredis with auto-pipelining.
    const auto = new Redis({ host: HOST, port: PORT, enableAutoPipelining: true });
    try {
      const autoGet = async (i: number) => {
        sink.v = JSON.parse((await auto.get(prefix + keys[i % K]!))!);
      };
      const autoSet = (i: number) => auto.set(prefix + keys[i % K]!, JSON.stringify(docs[i % K]));
      for (const [what, oursCall, call, autoCall, target] of [
        ["GET", "await storage.loadValue(key)", load(ours), autoGet, true],
        ["SET", "await storage.saveValue(key, doc)", save(ours), autoSet, false],
      ] as const) {
        ctx.log(`shared redis ${what}, ${IN_FLIGHT} in flight: ioredis driver vs ioredis with enableAutoPipelining`);
        const side = (name: string, op: (i: number) => Promise<unknown>): Side => ({
          name,
          batch: (n, s) => inFlight(n, IN_FLIGHT, (i) => op(s + i)),
        });
        const [o, a] = await compareMany([side("ours", call), side("auto", autoCall)], opts);
        rows.push(
          row(
            `redis ${what}, ${IN_FLIGHT} in flight`,
            [oursCall, o!.opsPerS],
            [
              `ioredis (enableAutoPipelining) ${what === "GET" ? "JSON.parse(await redis.get(key))" : "await redis.set(key, JSON.stringify(doc))"}`,
              a!.opsPerS,
            ],
            target ? { kind: "ratio<=", max: 1.0, text: "<= 1.0x" } : undefined,
            target
              ? "ours: the reads of one event-loop turn go as one MGET"
              : "for scale: one SET per save, the commands of a turn in one write",
          ),
        );
      }
    } finally {
      auto.disconnect();
    }
  } finally {
    await ours.close();
    await opendal.close();
    await deleteRedisPrefix(raw, prefix);
    raw.disconnect();
  }
  return rows;
}
