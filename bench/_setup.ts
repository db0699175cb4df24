/**
 * The two-tier setup every scenario shares (memory over SQLite in WAL mode
 * with `synchronous=NORMAL`), ours and raw, plus what scenarios pass around.
 */
import { join } from "node:path";
import type { Redis } from "ioredis";
import { consoleLogger, silentLogger } from "../src/logger.js";
import { memoryOperator } from "../src/operators/drivers/memory.js";
import { sqliteOperator } from "../src/operators/drivers/sqlite.js";
import type { Operator } from "../src/operators/types.js";
import { DeviceStorage } from "../src/storage/device-storage.js";
import type { Row } from "./_harness.js";

/** What each scenario gets. */
export interface Context {
  /** `--quick`: every scenario, briefly (a smoke run, figures are rough). */
  quick: boolean;
  /** A temp folder for this run (removed at the end). */
  dir: string;
  /** Prints a progress line. */
  log(msg: string): void;
  /** `--no-live-ranking`: open our storages with `liveRanking: false` (default: the library's defaults). */
  liveRanking: boolean;
}

export type Scenario = (ctx: Context) => Promise<Row[]>;

/** Ours: memory over sqlite, probed and ranked as `DeviceStorage.fromSettings` does, with the operators kept at hand. */
export interface Ours {
  storage: DeviceStorage;
  /** The memory operator (tier 0): scenarios empty it to force misses. */
  memory: Operator;
  sqlite: Operator;
}

export async function openOurs(ctx: Context, name: string, tiers: "memory+sqlite" | "sqlite" = "memory+sqlite") {
  const memory = memoryOperator();
  const sqlite = sqliteOperator({ datadir: join(ctx.dir, name) });
  const profiles =
    tiers === "sqlite"
      ? [{ name: "sqlite", op: sqlite }]
      : [
          { name: "memory", op: memory },
          { name: "sqlite", op: sqlite },
        ];
  // BENCH_LOG=debug shows what the storage does (re-ranking, write-backs) while it is measured.
  const logger = process.env.BENCH_LOG ? consoleLogger(process.env.BENCH_LOG) : silentLogger;
  const storage = await DeviceStorage.fromOperators(profiles, {
    logger,
    ...(ctx.liveRanking ? {} : { liveRanking: false }),
  });
  if (storage.fastestProfile !== profiles[0]!.name) {
    throw new Error(`expected ${profiles[0]!.name} to rank fastest, got ${storage.fastestProfile}`);
  }
  return { storage, memory, sqlite } satisfies Ours;
}

export { type RawSqlite, rawSqlite } from "./_raw-sqlite.js";

/**
 * Somewhere results go so the JIT cannot drop the work that made them.
 * Read once at the end of the run.
 */
export const sink: { v: unknown } = { v: undefined };

/**
 * `n` calls of `call(i)`, i in [0, n): awaited one after the other (`width`
 * 1), or by `width` loops sharing the batch (calls in flight). The results go
 * to {@link sink}.
 */
export async function inFlight(n: number, width: number, call: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const loop = async () => {
    for (let i = next++; i < n; i = next++) sink.v = await call(i);
  };
  if (width === 1) return loop();
  await Promise.all(Array.from({ length: width }, loop));
}

/** Deletes every Redis key starting with `prefix` (SCAN + UNLINK), what a scenario leaves on the machine's Redis. */
export async function deleteRedisPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 5000);
    if (found.length) await redis.unlink(...found);
    cursor = next;
  } while (cursor !== "0");
}
