/**
 * Scenario 11: the coherence bus (issue 13), over Redis pub/sub and over
 * PostgreSQL LISTEN/NOTIFY, on the machine's servers (127.0.0.1:6379, :5432).
 *
 * (a) What the bus costs a save: the same profiles (memory over the shared
 *     tier) with and without a `[coherence]` table, in alternating rounds, one
 *     save at a time and 64 in flight; each round ends with `flush()`, so the
 *     announcements it caused are counted. Another instance (a child process)
 *     listens on the channel meanwhile, as in a real deployment.
 * (b) Invalidation latency across processes: instance B (a child process,
 *     `_coherence-child.ts`) holds version 1 of a key in its memory profile
 *     and loads it on every turn of its event loop; instance A (this process)
 *     saves version 2; the latency runs from A's acknowledged save to the end
 *     of B's first load returning version 2 (CLOCK_MONOTONIC, the same clock in
 *     both processes). The baseline is the floor under it: a raw write, then a
 *     raw PUBLISH / pg_notify, until B's raw subscriber receives it.
 *     Since issue 19 the shared tier's server itself reports the change
 *     (Redis tracking, the table's trigger), so the same rows also time a
 *     *foreign* write: a raw client (as the Rust crate or an operator would)
 *     writes version 2, and B's load returns it.
 * (c) What the lease costs a hit: a load served by the memory profile, with
 *     the bus (one clock read per load, the lease check) vs without.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import pg from "pg";
import { silentLogger } from "../../src/logger.js";
import { DeviceStorage } from "../../src/storage/device-storage.js";
import { docData, docKey } from "../_data.js";
import { compareMany, median, type Row, row, type Side } from "../_harness.js";
import { type Context, inFlight } from "../_setup.js";
import type { FromB, RawBus, ToB } from "./_coherence-child.js";

const REDIS = { host: "127.0.0.1", port: 6379 };
const PG_URL = "postgresql://postgres@127.0.0.1:5432/test";
/** Documents saved (cycled through) in the cost rows. */
const K = 1000;
const IN_FLIGHT = 64;
/** The targets. */
const COST_TARGET = { kind: "ratio<=", max: 1.3, text: "<= 1.3x" } as const;
const LATENCY_MAX_MS = 100;
const compiled = import.meta.url.endsWith(".js");
const CHILD = fileURLToPath(new URL(compiled ? "./_coherence-child.js" : "./_coherence-child.ts", import.meta.url));

const now = () => Number(process.hrtime.bigint()) / 1e6;

interface Engine {
  name: "redis" | "postgresql";
  /** Profiles (memory `mem` over the shared tier), without the bus. */
  profiles: Record<string, Record<string, string>>;
  bus: Record<string, string>;
  raw: RawBus;
  /** A raw write of `key`, then (not awaited by the caller's clock) a raw announcement. */
  rawWrite(key: string): Promise<void>;
  /** Another program writes `value` (JSON) under `key` of the shared profile, with its own client. */
  foreignWrite(key: string, value: unknown): Promise<void>;
  rawAnnounce(key: string): Promise<void>;
  cleanup(): Promise<void>;
}

async function redisEngine(tag: string): Promise<Engine> {
  const client = new Redis({ ...REDIS, lazyConnect: true });
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw new Error(
      `the coherence scenario needs the machine's Redis on ${REDIS.host}:${REDIS.port}: ${(err as Error).message}`,
    );
  }
  const endpoint = `tcp://${REDIS.host}:${REDIS.port}`;
  const raw: RawBus = { type: "redis", ...REDIS, channel: `${tag}-raw` };
  return {
    name: "redis",
    profiles: { mem: { type: "memory" }, shared: { type: "redis", endpoint, root: `/${tag}/` } },
    bus: { type: "redis", endpoint, channel: tag },
    raw,
    rawWrite: async (key) => void (await client.set(`${tag}-raw/${key}`, "2")),
    foreignWrite: async (key, value) => void (await client.set(`${tag}/${key}`, JSON.stringify(value))),
    rawAnnounce: async (key) => void (await client.publish(raw.channel, key)),
    cleanup: async () => {
      let cursor = "0";
      do {
        const [next, found] = await client.scan(cursor, "MATCH", `*${tag}*`, "COUNT", 1000);
        if (found.length) await client.del(...found);
        cursor = next;
      } while (cursor !== "0");
      client.disconnect();
    },
  };
}

async function postgresqlEngine(tag: string): Promise<Engine> {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  try {
    await pool.query(`CREATE TABLE ${tag} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
  } catch (err) {
    await pool.end();
    throw new Error(`the coherence scenario needs the machine's PostgreSQL at ${PG_URL}: ${(err as Error).message}`);
  }
  const upsert = `INSERT INTO ${tag} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;
  const raw: RawBus = { type: "postgresql", connectionString: PG_URL, channel: `${tag}_raw` };
  return {
    name: "postgresql",
    profiles: {
      mem: { type: "memory" },
      shared: { type: "postgresql", connection_string: PG_URL, table: tag },
    },
    bus: { type: "postgresql", connection_string: PG_URL, channel: tag },
    raw,
    rawWrite: async (key) => void (await pool.query(upsert, [`raw/${key}`, Buffer.from("2")])),
    foreignWrite: async (key, value) => void (await pool.query(upsert, [key, Buffer.from(JSON.stringify(value))])),
    rawAnnounce: async (key) => void (await pool.query("SELECT pg_notify($1, $2)", [raw.channel, key])),
    cleanup: async () => {
      await pool.query(`DROP TABLE IF EXISTS ${tag}`);
      await pool.end();
    },
  };
}

/** Instance B in its own process, and the next message it sends. */
async function startB(settings: object, raw: RawBus) {
  const proc: ChildProcess = fork(CHILD, [JSON.stringify(settings), JSON.stringify(raw)], {
    execArgv: compiled ? [] : ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const queue: FromB[] = [];
  let waiter: ((m: FromB) => void) | undefined;
  let failure: Error | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    waiter?.({ t: "error", error: err.message });
  };
  proc.on("message", (m: FromB) => {
    if (m.t === "error") return fail(new Error(`instance B: ${m.error}`));
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      w(m);
    } else queue.push(m);
  });
  const exited = new Promise<void>((resolve) =>
    proc.once("exit", (code) => {
      fail(new Error(`instance B exited (${code})`));
      resolve();
    }),
  );
  const next = async (t: FromB["t"], timeoutMs = 20_000): Promise<FromB> => {
    if (failure) throw failure;
    const m =
      queue.shift() ??
      (await new Promise<FromB>((resolve) => {
        const timer = setTimeout(
          () => resolve({ t: "error", error: `no "${t}" from instance B within ${timeoutMs} ms` }),
          timeoutMs,
        );
        waiter = (got) => {
          clearTimeout(timer);
          resolve(got);
        };
      }));
    if (m.t === "error") throw failure ?? new Error(m.error);
    if (m.t !== t) throw new Error(`expected "${t}" from instance B, got ${JSON.stringify(m)}`);
    return m;
  };
  const send = (m: ToB) => proc.send(m);
  try {
    await next("ready", 30_000);
  } catch (err) {
    proc.kill("SIGKILL");
    throw err;
  }
  const stop = async () => {
    if (proc.connected) send({ t: "stop" });
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    proc.kill("SIGKILL");
  };
  return { next, send, stop };
}

/** A storage (memory over the shared tier), with or without the bus, ready to serve from memory. */
async function open(e: Engine, bus: boolean): Promise<DeviceStorage> {
  const storage = await DeviceStorage.fromSettings(
    bus ? { profiles: e.profiles, coherence: e.bus } : { profiles: e.profiles },
    { logger: silentLogger },
  );
  const start = now();
  while (bus && (storage.coherenceStats()?.distrusted.length ?? 0) > 0) {
    if (now() - start > 15_000) throw new Error(`the ${e.name} bus did not connect within 15 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return storage;
}

async function cost(ctx: Context, e: Engine, withBus: DeviceStorage, without: DeviceStorage): Promise<Row[]> {
  const docs = Array.from({ length: K }, (_, i) => docData(i));
  const keys = Array.from({ length: K }, (_, i) => docKey(i));
  const rows: Row[] = [];
  for (const width of [1, IN_FLIGHT]) {
    const shape = width === 1 ? "one at a time" : `${width} in flight`;
    ctx.log(`11 coherence: save over ${e.name}, ${shape}, with the bus vs without`);
    // A Redis save takes ~0.2 ms one at a time, a PostgreSQL one (a commit) ~1 ms: rounds of similar length.
    const n = (ctx.quick ? 200 : e.name === "redis" ? 1500 : 500) * (width === 1 ? 1 : 4);
    const side = (name: string, s: DeviceStorage): Side => ({
      name,
      batch: (count, start) =>
        inFlight(count, width, (i) => s.saveValue(keys[(start + i) % K]!, docs[(start + i) % K])),
      after: () => s.flush(),
      afterTimed: true,
    });
    const [b, o] = await compareMany([side("bus", withBus), side("no bus", without)], {
      n,
      rounds: ctx.quick ? 3 : 9,
    });
    rows.push(
      row(
        `coherence save, memory over ${e.name}, ${shape}`,
        [`await storage.saveValue(key, doc) with a ${e.name} bus`, b!.opsPerS],
        ["the same storage without a bus", o!.opsPerS],
        COST_TARGET,
        "each round ends with flush() (announcements sent); another instance listens on the channel",
      ),
    );
  }
  return rows;
}

async function latency(ctx: Context, e: Engine, a: DeviceStorage, b: Awaited<ReturnType<typeof startB>>) {
  const samples = ctx.quick ? 30 : 300;
  ctx.log(`11 coherence: invalidation latency over ${e.name}, ${samples} samples (and the raw floor)`);
  const ours: number[] = [];
  const foreign: number[] = [];
  const raw: number[] = [];
  const run = randomBytes(3).toString("hex");
  for (let i = 0; i < samples; i++) {
    // A foreign write: nothing of this library takes part in announcing it.
    const fkey = `cohf_${run}_${i}.json`;
    await a.saveValue(fkey, { v: 1 });
    b.send({ t: "arm", key: fkey });
    await b.next("armed");
    await e.foreignWrite(fkey, { v: 2 });
    const foreignAckAt = now();
    const fseen = await b.next("seen");
    if (fseen.t !== "seen" || !fseen.ok)
      throw new Error(`instance B still read version 1 of ${fkey} 5 s after a foreign write`);
    foreign.push(fseen.at - foreignAckAt);

    const key = `coh_${run}_${i}.json`;
    await a.saveValue(key, { v: 1 });
    b.send({ t: "arm", key });
    await b.next("armed");
    await a.saveValue(key, { v: 2 });
    const ackAt = now();
    const seen = await b.next("seen");
    if (seen.t !== "seen" || !seen.ok) throw new Error(`instance B still read version 1 of ${key} 5 s after the save`);
    ours.push(seen.at - ackAt);

    b.send({ t: "raw-arm" });
    await b.next("armed");
    await e.rawWrite(key);
    const rawAckAt = now();
    await e.rawAnnounce(key);
    const rawSeen = await b.next("seen");
    if (rawSeen.t === "seen") raw.push(rawSeen.at - rawAckAt);
  }
  const q = (xs: number[], p: number) =>
    [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)]!;
  const what = e.name === "redis" ? "SET, then PUBLISH -> B's SUBSCRIBE" : "UPSERT, then pg_notify -> B's LISTEN";
  const rows: Row[] = [];
  for (const [who, xs] of [
    ["our save", ours],
    ["foreign write", foreign],
  ] as const) {
    for (const [label, p] of [
      ["p50", 0.5],
      ["p99", 0.99],
    ] as const) {
      const o = q(xs, p);
      const r = q(raw, p);
      const by = who === "our save" ? "save acked in A" : `another program's write acked`;
      rows.push(
        row(
          `coherence invalidation latency over ${e.name}, ${who}, ${label}`,
          [`${by} -> B's load returns it: ${o.toFixed(2)} ms`, 1000 / o],
          [`raw ${what}: ${r.toFixed(2)} ms`, 1000 / r],
          label === "p99"
            ? { kind: "value<=", max: LATENCY_MAX_MS, value: o, text: `<= ${LATENCY_MAX_MS} ms` }
            : undefined,
          `per second (1000 / ms); ${samples} samples, median ${median(xs).toFixed(2)} ms, max ${Math.max(...xs).toFixed(2)} ms`,
        ),
      );
    }
  }
  return rows;
}

/** (c) A hit in the memory profile with the bus (the lease asked on every load) vs without. */
async function hit(ctx: Context, e: Engine, withBus: DeviceStorage, without: DeviceStorage): Promise<Row> {
  ctx.log(`11 coherence: hot load over ${e.name}, with the bus (lease check) vs without`);
  // One key per storage: both share the engine's store, so a save of the same key by the storage
  // without a bus would reach the other through the change feed and drop its memory copy.
  const tag = randomBytes(3).toString("hex");
  const keyOf = (s: DeviceStorage) => `coh_hit_${tag}_${s === withBus ? "bus" : "plain"}.json`;
  for (const s of [withBus, without]) await s.saveValue(keyOf(s), docData(1));
  for (const s of [withBus, without]) {
    if ((await s.loadValue(keyOf(s))).profile !== "mem")
      throw new Error("the hot-load key is not in the memory profile");
  }
  const side = (name: string, s: DeviceStorage): Side => {
    const key = keyOf(s);
    return {
      name,
      batch: async (count) => {
        for (let i = 0; i < count; i++) await s.loadValue(key);
      },
    };
  };
  const [b, o] = await compareMany([side("bus", withBus), side("no bus", without)], {
    n: ctx.quick ? 20_000 : 200_000,
    rounds: ctx.quick ? 3 : 9,
  });
  if ((await withBus.loadValue(keyOf(withBus))).profile !== "mem")
    throw new Error("the lease lapsed during the hot-load rows");
  return row(
    `coherence hot load, memory over ${e.name}`,
    [`await storage.loadValue(key) with a ${e.name} bus (lease checked)`, b!.opsPerS],
    ["the same storage without a bus", o!.opsPerS],
    { kind: "ratio<=", max: 1.1, text: "<= 1.1x" },
    "a hit in the memory profile: with a bus each load reads the monotonic clock once (the lease)",
  );
}

async function part(ctx: Context, name: Engine["name"]): Promise<Row[]> {
  const tag = `tp_bench_coh_${randomBytes(4).toString("hex")}`;
  const e = name === "redis" ? await redisEngine(tag) : await postgresqlEngine(tag);
  const closers: (() => Promise<unknown>)[] = [];
  try {
    const b = await startB({ profiles: e.profiles, coherence: e.bus }, e.raw);
    closers.push(b.stop);
    const a = await open(e, true);
    closers.push(() => a.close());
    const plain = await open(e, false);
    closers.push(() => plain.close());
    return [...(await cost(ctx, e, a, plain)), await hit(ctx, e, a, plain), ...(await latency(ctx, e, a, b))];
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
    await e.cleanup();
  }
}

export async function coherence(ctx: Context): Promise<Row[]> {
  const rows: Row[] = [];
  const failed: string[] = [];
  for (const name of ["redis", "postgresql"] as const) {
    try {
      rows.push(...(await part(ctx, name)));
    } catch (err) {
      failed.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  // A part that could not run must not pass silently: the scenario fails after the other's figures.
  if (failed.length) throw new Error(`coherence could not measure ${failed.join("; ")}`);
  return rows;
}
