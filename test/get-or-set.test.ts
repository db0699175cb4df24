/**
 * `storage.getOrSet` on real backends (memory over SQLite in a temp dir, and
 * memory over the machine's Redis under a unique root): single flight, TTL,
 * grace (stale served, failures served over), `timeoutMs`, typed errors, the
 * value in every profile as plain JSON, and `Persistable.getOrSet`.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { maybeDecompress } from "../src/codec.js";
import { FactoryError, PersistenceError } from "../src/errors.js";
import type { Logger } from "../src/logger.js";
import { createOperator } from "../src/operators/index.js";
import type { Operator } from "../src/operators/types.js";
import { Persistable } from "../src/persistable.js";
import { DeviceStorage } from "../src/storage/device-storage.js";
import { getOrSetStats } from "../src/storage/get-or-set.js";
import { requireServer } from "./helpers/servers.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Reads stored bytes the way the Rust crate does: maybe ZSTD, then JSON. */
const rustRead = (bytes: Uint8Array) => JSON.parse(Buffer.from(maybeDecompress(bytes)).toString("utf8"));
/** Waits until `check` holds (a background refresh has landed), failing after 5 s. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/** A logger that keeps its warnings (the failures getOrSet logs). */
function recordingLogger(): Logger & { warnings: { obj: unknown; msg: string | undefined }[] } {
  const warnings: { obj: unknown; msg: string | undefined }[] = [];
  return { debug() {}, info() {}, error() {}, warn: (obj, msg) => warnings.push({ obj, msg }), warnings };
}

/**
 * A real operator whose reads answer "absent" `ms` late (the chaos wrapper delays only answers that
 * succeed), and only asynchronously: a slow lookup that misses.
 */
function slowMisses(op: Operator, ms: number): Operator {
  return new Proxy(op, {
    get(target, prop) {
      if (prop === "readSync" || prop === "readStoredSync") return undefined;
      if (prop === "read") {
        return async (key: string) => {
          try {
            return await target.read(key);
          } catch (err) {
            await sleep(ms);
            throw err;
          }
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const open: DeviceStorage[] = [];
const redisRoots: DeviceStorage[] = [];
afterEach(async () => {
  // Remove everything this test wrote under its Redis root (values, TTL sidecars, marker).
  for (const s of redisRoots.splice(0)) {
    const op = s.ops.get("redis")?.op;
    if (op) for (const k of await op.list("")) await op.delete(k);
  }
  for (const s of open.splice(0)) await s.close();
});

type Backend = { name: "sqlite" | "redis"; make: (logger: Logger) => Promise<DeviceStorage | undefined> };
const sqliteDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-getorset-"));
  dirs.push(d);
  return d;
};
const backends: Backend[] = [
  {
    name: "sqlite",
    make: async (logger) => {
      const profiles = {
        memory: { type: "memory", speed: "1" },
        sqlite: { type: "sqlite", datadir: sqliteDir(), table: "kv", speed: "2" },
      };
      const s = await DeviceStorage.fromSettings({ profiles }, { logger });
      open.push(s);
      return s;
    },
  },
  {
    name: "redis",
    make: async (logger) => {
      if (!(await requireServer("redis (getOrSet)", "127.0.0.1", 6379))) return undefined;
      const root = `/tp-getorset-${process.pid}-${randomBytes(6).toString("hex")}/`;
      const profiles = {
        memory: { type: "memory", speed: "1" },
        redis: { type: "redis", endpoint: "tcp://127.0.0.1:6379", root, speed: "2" },
      };
      const s = await DeviceStorage.fromSettings({ profiles }, { logger });
      open.push(s);
      redisRoots.push(s);
      return s;
    },
  },
];

describe.each(backends)("getOrSet: memory over $name", ({ name, make }) => {
  const key = () => `getorset_${randomBytes(6).toString("hex")}.json`;

  it("100 concurrent calls on a cold key run the factory once and all get its value", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const k = key();
    let calls = 0;
    const factory = async () => {
      calls++;
      await sleep(30);
      return { n: calls, name };
    };
    const got = await Promise.all(Array.from({ length: 100 }, () => s.getOrSet(k, factory, { ttlMs: 60_000 })));
    expect(calls).toBe(1);
    for (const v of got) expect(v).toEqual({ n: 1, name });
    expect(getOrSetStats(s)).toMatchObject({ factoryCalls: 1, misses: 100, fresh: 0, factoryErrors: 0 });
    // Fresh now: no factory call.
    expect(await s.getOrSet(k, factory, { ttlMs: 60_000 })).toEqual({ n: 1, name });
    expect(calls).toBe(1);
    expect(getOrSetStats(s).fresh).toBe(1);
  });

  it("the value lands in every profile as the plain JSON, and a plain loadValue returns it unchanged", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const k = key();
    const value = { id: "x", list: [1, 2, 3], nested: { ok: true } };
    const before = Date.now();
    expect(await s.getOrSet(k, () => value, { ttlMs: 60_000, graceMs: 30_000 })).toEqual(value);
    for (const profile of ["memory", name]) {
      const entry = await s.profile(profile).readEntry(k);
      expect(entry, profile).toBeDefined();
      expect(rustRead(entry!.data), profile).toEqual(value);
      // Kept until ttlMs + graceMs after the save.
      expect(entry!.expiresAt).toBeGreaterThanOrEqual(before + 90_000);
      expect(entry!.expiresAt).toBeLessThanOrEqual(Date.now() + 90_000);
    }
    expect((await s.loadValue(k)).value).toEqual(value);
    expect((await s.loadValue(k)).value).not.toHaveProperty("expires_at");
  });

  it("without grace, an expired value is absent: the factory runs again", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const k = key();
    let calls = 0;
    const factory = () => ({ n: ++calls });
    expect(await s.getOrSet(k, factory, { ttlMs: 250 })).toEqual({ n: 1 });
    expect(await s.getOrSet(k, factory, { ttlMs: 250 })).toEqual({ n: 1 });
    await sleep(400);
    expect(await s.getOrSet(k, factory, { ttlMs: 250 })).toEqual({ n: 2 });
    expect(calls).toBe(2);
    expect((await s.loadValue(k)).value).toEqual({ n: 2 });
  });

  it("within grace a stale value is served at once while ONE background refresh runs", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const k = key();
    const opts = { ttlMs: 200, graceMs: 60_000 };
    await s.getOrSet(k, () => ({ v: "old" }), opts);
    await sleep(300);
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = async () => {
      calls++;
      await gate;
      return { v: "new" };
    };
    const got = await Promise.all(Array.from({ length: 20 }, () => s.getOrSet(k, slow, opts)));
    for (const v of got) expect(v).toEqual({ v: "old" });
    expect(calls).toBe(1);
    release();
    await until(async () => (await s.loadValue<{ v: string }>(k)).value.v === "new", "the refreshed value is saved");
    expect(await s.getOrSet(k, slow, opts)).toEqual({ v: "new" });
    expect(calls).toBe(1);
    expect(getOrSetStats(s)).toMatchObject({ stale: 20, fresh: 1, factoryCalls: 2 });
  });

  it("a failing factory with a graced value serves the old value, logs and counts it, and retries later", async () => {
    const logger = recordingLogger();
    const s = await make(logger);
    if (!s) return;
    const k = key();
    const opts = { ttlMs: 200, graceMs: 60_000 };
    await s.getOrSet(k, () => ({ v: "old" }), opts);
    await sleep(300);
    const boom = new Error("upstream is down");
    expect(
      await s.getOrSet(
        k,
        () => {
          throw boom;
        },
        opts,
      ),
    ).toEqual({ v: "old" });
    await until(() => getOrSetStats(s).factoryErrors === 1, "the failure is counted");
    await until(() => logger.warnings.length === 1, "the failure is logged");
    expect(logger.warnings[0]!.msg).toMatch(/factory failed, serving the stale value/);
    expect(logger.warnings[0]!.obj).toMatchObject({ key: k, err: boom });
    // Still the old value everywhere; a later call retries the refresh.
    expect((await s.loadValue(k)).value).toEqual({ v: "old" });
    expect(await s.getOrSet(k, async () => ({ v: "new" }), opts)).toEqual({ v: "old" });
    await until(async () => (await s.loadValue<{ v: string }>(k)).value.v === "new", "the retried refresh is saved");
    expect(getOrSetStats(s)).toMatchObject({ factoryCalls: 3, factoryErrors: 1, stale: 2 });
  });

  it("timeoutMs: a stale value is returned when the factory is slower, whose value is saved when it arrives", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const k = key();
    await s.getOrSet(k, () => ({ v: "old" }), { ttlMs: 200, graceMs: 60_000 });
    await sleep(300);
    const opts = { ttlMs: 60_000, graceMs: 60_000, timeoutMs: 50 };
    const started = Date.now();
    const got = await s.getOrSet(
      k,
      async () => {
        await sleep(600);
        return { v: "slow" };
      },
      opts,
    );
    expect(got).toEqual({ v: "old" });
    expect(Date.now() - started).toBeLessThan(500);
    await until(
      async () => (await s.loadValue<{ v: string }>(k)).value.v === "slow",
      "the slow factory's value is saved",
    );
    // A factory within timeoutMs gives the caller the fresh value.
    const k2 = key();
    await s.getOrSet(k2, () => ({ v: "old" }), { ttlMs: 200, graceMs: 60_000 });
    await sleep(300);
    expect(await s.getOrSet(k2, async () => ({ v: "quick" }), { ...opts, timeoutMs: 2000 })).toEqual({ v: "quick" });
  });

  it("with no value, timeoutMs does not cut the wait: the caller gets the factory's value", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const got = await s.getOrSet(
      key(),
      async () => {
        await sleep(150);
        return { v: 1 };
      },
      { ttlMs: 60_000, graceMs: 1000, timeoutMs: 10 },
    );
    expect(got).toEqual({ v: 1 });
  });

  it("no value and a failing factory: a FactoryError with code, key and cause, shared by every caller", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const k = key();
    const boom = new Error("upstream said 503");
    let calls = 0;
    const failing = async () => {
      calls++;
      await sleep(20);
      throw boom;
    };
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => s.getOrSet(k, failing)));
    expect(calls).toBe(1);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const err = (r as PromiseRejectedResult).reason;
      expect(err).toBeInstanceOf(FactoryError);
      expect(err).toMatchObject({ code: "E_FACTORY", key: k, cause: boom });
      expect(err.message).toMatch(/upstream said 503/);
    }
    await expect(s.loadValue(k)).rejects.toMatchObject({ code: "E_NOT_FOUND" });
    // The next call tries again.
    expect(await s.getOrSet(k, () => "ok")).toBe("ok");
    expect(calls).toBe(1);
  });

  it("a factory returning undefined, or a value JSON cannot hold, is a FactoryError; nothing is stored", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const k = key();
    const undef = s.getOrSet(k, () => undefined);
    await expect(undef).rejects.toBeInstanceOf(FactoryError);
    await expect(undef).rejects.toThrow(/got undefined/);
    await expect(s.getOrSet(k, () => ({ n: 1n }))).rejects.toMatchObject({ code: "E_FACTORY", key: k });
    expect(await s.exists(k)).toBe(false);
    // null is a JSON value.
    expect(await s.getOrSet(k, () => null)).toBeNull();
    expect(getOrSetStats(s).factoryErrors).toBe(2);
  });

  it("bad arguments are typed errors, as rejections", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const k = key();
    const f = () => 1;
    const bad: [Promise<unknown>, RegExp][] = [
      [s.getOrSet(k, "nope" as never), /Expected `factory` to be a function, got string/],
      [s.getOrSet(k, f, { ttlMs: -1 }), /Expected `ttlMs` to be a positive number of milliseconds, got -1/],
      [s.getOrSet(k, f, { ttlMs: Number.NaN }), /`ttlMs`.*got NaN/],
      [s.getOrSet(k, f, { ttlMs: 10, graceMs: -5 }), /`graceMs`.*got -5/],
      [s.getOrSet(k, f, { ttlMs: 10, timeoutMs: Number.POSITIVE_INFINITY }), /`timeoutMs` to be a finite/],
      [s.getOrSet(k, f, { graceMs: 1000 }), /Expected `ttlMs` with `graceMs`/],
      [s.getOrSet(k, f, { decode: 3 as never }), /Expected `decode` to be a function, got number/],
      [s.getOrSet("", f), /./],
    ];
    for (const [p, msg] of bad) {
      await expect(p).rejects.toBeInstanceOf(PersistenceError);
      await expect(p).rejects.toThrow(msg);
    }
    expect(getOrSetStats(s).factoryCalls).toBe(0);
  });

  it("decode: a stored value it refuses is replaced by the factory's", async () => {
    const s = await make(recordingLogger());
    if (!s) return;
    const k = key();
    await s.saveValue(k, { old: "shape" });
    const schema = z.object({ id: z.string() });
    const decode = (json: unknown) => schema.parse(json);
    expect(await s.getOrSet(k, () => ({ id: "a" }), { decode })).toEqual({ id: "a" });
    expect((await s.loadValue(k)).value).toEqual({ id: "a" });
    expect(await s.getOrSet(k, () => ({ id: "b" }), { decode })).toEqual({ id: "a" });
  });
});

describe("getOrSet single flight across a slow lookup", () => {
  it("a caller whose lookup began before another's factory value landed reads that value, no second factory call", async () => {
    const s = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: await createOperator("memory"), speed: 1 },
        { name: "sqlite", op: slowMisses(await createOperator("sqlite", { datadir: sqliteDir() }), 100), speed: 2 },
      ],
      { logger: recordingLogger() },
    );
    open.push(s);
    // sqlite says "absent" 100 ms late: A's lookup misses at ~100 ms, B's (begun at 50 ms) at ~150 ms,
    // after A's factory value was saved and its flight ended.
    let calls = 0;
    const factory = () => ({ n: ++calls });
    const a = s.getOrSet("getorset_race.json", factory, { ttlMs: 60_000 });
    await sleep(50);
    // Its own decoder, so its load does not share A's fallback read.
    const b = s.getOrSet("getorset_race.json", factory, { ttlMs: 60_000, decode: (j) => j });
    expect(await a).toEqual({ n: 1 });
    expect(await b).toEqual({ n: 1 });
    expect(calls).toBe(1);
  });
});

describe("getOrSet across a restart (sqlite)", () => {
  it("freshness and grace survive a restart: the expiry lives in the tiers' TTL metadata", async () => {
    const datadir = sqliteDir();
    const profiles = {
      memory: { type: "memory", speed: "1" },
      sqlite: { type: "sqlite", datadir, table: "kv", speed: "2" },
    };
    const logger = recordingLogger();
    const first = await DeviceStorage.fromSettings({ profiles }, { logger });
    await first.getOrSet("getorset_restart.json", () => ({ v: "old" }), { ttlMs: 300, graceMs: 60_000 });
    await first.close();
    const s = await DeviceStorage.fromSettings({ profiles }, { logger });
    open.push(s);
    let calls = 0;
    const factory = () => ({ v: `new${++calls}` });
    const opts = { ttlMs: 300, graceMs: 60_000 };
    // Still fresh: from sqlite, no factory call.
    expect(await s.getOrSet("getorset_restart.json", factory, opts)).toEqual({ v: "old" });
    expect(calls).toBe(0);
    await sleep(400);
    // Stale now: served, and refreshed in the background.
    expect(await s.getOrSet("getorset_restart.json", factory, opts)).toEqual({ v: "old" });
    await until(
      async () => (await s.loadValue<{ v: string }>("getorset_restart.json")).value.v === "new1",
      "refresh saved",
    );
    expect(calls).toBe(1);
  });
});

describe("Persistable.getOrSet", () => {
  class Note extends Persistable {
    static schema = z.object({ id: z.string(), text: z.string() });
    text = "";
    constructor(public id: string) {
      super();
    }
    getKey() {
      return `note_${this.normalizeKey(this.id)}.json`;
    }
  }

  it("returns the stored object as an instance, else saves the factory's", async () => {
    const s = await backends[0]!.make(recordingLogger());
    const id = `n${randomBytes(4).toString("hex")}`;
    let calls = 0;
    const build = () => {
      calls++;
      return Object.assign(new Note(id), { text: "from the factory" });
    };
    const a = await new Note(id).withStorage(s!).getOrSet(build, { ttlMs: 60_000 });
    expect(a).toBeInstanceOf(Note);
    expect(a.text).toBe("from the factory");
    const b = await new Note(id).withStorage(s!).getOrSet(build, { ttlMs: 60_000 });
    expect(b).toBeInstanceOf(Note);
    expect(b).not.toBe(a);
    expect(b.text).toBe("from the factory");
    expect(calls).toBe(1);
    // Plain JSON in storage, readable by load().
    expect((await s!.loadValue(a.getKey())).value).toEqual({ id, text: "from the factory" });
    expect((await new Note(id).withStorage(s!).load()).text).toBe("from the factory");
  });
});
