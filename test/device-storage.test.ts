import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { isCompressed, maybeDecompress } from "../src/codec.js";
import {
  BackendError,
  DeserializeError,
  InvalidKeyError,
  NoOperatorError,
  NotFoundError,
  PartialWriteError,
  ProfileError,
} from "../src/errors.js";
import { silentLogger } from "../src/logger.js";
import { createOperator } from "../src/operators/index.js";
import { chaosOperator } from "../src/operators/wrappers/chaos.js";
import { Persistable } from "../src/persistable.js";
import { DeviceStorage } from "../src/storage/device-storage.js";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-core-"));
  dirs.push(d);
  return d;
};
const open: DeviceStorage[] = [];
const track = (s: DeviceStorage) => {
  open.push(s);
  return s;
};
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const text = (b: Uint8Array) => Buffer.from(maybeDecompress(b)).toString("utf8");
const opts = { logger: silentLogger };

/** memory (fast) over a sqlite store wrapped in the chaos operator, ranked by fixed speeds. */
async function twoTier(faults: Parameters<typeof chaosOperator>[1] = {}) {
  const memory = chaosOperator(await createOperator("memory"));
  const sqlite = chaosOperator(await createOperator("sqlite", { datadir: tempDir() }), faults);
  const storage = track(
    await DeviceStorage.fromOperators(
      [
        { name: "sqlite", op: sqlite, speed: 100 },
        { name: "memory", op: memory, speed: 1 },
      ],
      opts,
    ),
  );
  return { memory, sqlite, storage };
}

class Note extends Persistable {
  static schema = z.object({ id: z.string(), text: z.string(), version: z.literal(2) });
  text = "";
  version = 2 as const;
  constructor(public id: string) {
    super();
  }
  getKey() {
    return `note_${this.normalizeKey(this.id)}.json`;
  }
}

class Loose extends Persistable {
  payload: unknown = null;
  constructor(public id: string) {
    super();
  }
  getKey() {
    return `loose_${this.normalizeKey(this.id)}.json`;
  }
}

describe("DeviceStorage ranking", () => {
  it("fastestOp is the measured fastest in 20 of 20 starts of memory + sqlite + redb, and no probe key is left", async () => {
    const dir = tempDir();
    const redbFile = join(dir, "store.redb");
    for (let i = 0; i < 20; i++) {
      // memory listed last: settings order must not decide.
      const s = await DeviceStorage.fromSettings(
        {
          profiles: {
            redb: { type: "redb", datadir: redbFile, table: "terraphim" },
            sqlite: { type: "sqlite", datadir: dir },
            memory: { type: "memory" },
          },
        },
        opts,
      );
      expect(s.profileErrors.size).toBe(0);
      expect(s.ops.size).toBe(3);
      const ranked = s.ranked;
      expect(ranked.map((e) => e.speed)).toEqual([...ranked.map((e) => e.speed)].sort((a, b) => a - b));
      expect(s.fastestOp).toBe(ranked[0]!.op);
      expect(s.fastestProfile).toBe("memory");
      expect([...s.ops.keys()]).toEqual(ranked.map((e) => e.name));
      for (const e of ranked) {
        expect(e.probeKey.startsWith(".terraphim-probe-")).toBe(true);
        expect(await e.op.exists(e.probeKey)).toBe(false);
        if (e.op.capabilities.list) expect(await e.op.list()).toEqual([]);
      }
      await s.close();
    }
  });

  it("a `speed` override ranks deterministically", async () => {
    const s = track(
      await DeviceStorage.fromSettings(
        {
          profiles: {
            memory: { type: "memory", speed: "1000" },
            sqlite: { type: "sqlite", datadir: tempDir(), speed: "1" },
          },
        },
        opts,
      ),
    );
    expect(s.fastestProfile).toBe("sqlite");
    expect(s.ranked.map((e) => e.name)).toEqual(["sqlite", "memory"]);
    expect(s.ranked[1]!.measuredSpeed).toBeGreaterThan(0);
  });

  it("an unknown or unbuilt scheme is left out with a ProfileError, never replaced by memory", async () => {
    const s = track(
      await DeviceStorage.fromSettings(
        {
          profiles: {
            sqlite: { type: "sqlite", datadir: tempDir() },
            atomicserver: { type: "atomicserver", endpoint: "http://localhost:9883" },
            bogus: { type: "no-such-scheme" },
            untyped: { root: "/tmp/x" },
          },
          profileErrors: { broken: new Error("profiles.broken.secret: environment variable X is not set") },
        },
        opts,
      ),
    );
    expect([...s.ops.keys()]).toEqual(["sqlite"]);
    expect(s.ops.get("sqlite")!.op.capabilities.durable).toBe(true);
    for (const name of ["atomicserver", "bogus", "untyped", "broken"]) {
      const err = s.profileErrors.get(name);
      expect(err, name).toBeInstanceOf(ProfileError);
      expect(err!.profile).toBe(name);
    }
    expect(s.profileErrors.get("atomicserver")!.message).toMatch(/atomicserver/);
    expect(s.profileErrors.get("untyped")!.message).toMatch(/profiles\.untyped\.type/);
  });

  it("NoOperatorError when no profile works, naming each failure", async () => {
    const err = await DeviceStorage.fromSettings({ profiles: { a: { type: "atomicserver" } } }, opts).catch((e) => e);
    expect(err).toBeInstanceOf(NoOperatorError);
    expect(err.message).toMatch(/a: /);
    await expect(DeviceStorage.fromSettings({ profiles: {} }, opts)).rejects.toBeInstanceOf(NoOperatorError);
  });

  it("a bad speed or timeout option is a per-profile error", async () => {
    const s = track(
      await DeviceStorage.fromSettings(
        {
          profiles: {
            memory: { type: "memory" },
            m2: { type: "memory", speed: "fast" },
            m3: { type: "memory", timeout_ms: "-1" },
          },
        },
        opts,
      ),
    );
    expect(s.profileErrors.get("m2")!.message).toMatch(/profiles\.m2\.speed/);
    expect(s.profileErrors.get("m3")!.message).toMatch(/profiles\.m3\.timeout_ms/);
  });

  it("a profile whose probe fails is left out", async () => {
    const bad = chaosOperator(await createOperator("memory"), { fail: ["write"] });
    const good = await createOperator("memory");
    const s = track(
      await DeviceStorage.fromOperators(
        [
          { name: "bad", op: bad },
          { name: "good", op: good },
        ],
        opts,
      ),
    );
    expect([...s.ops.keys()]).toEqual(["good"]);
    expect(s.profileErrors.get("bad")!.message).toMatch(/probe/);
  });

  it("a hung profile times out at start-up instead of hanging", async () => {
    const hung = chaosOperator(await createOperator("memory"), { hang: true });
    const s = track(
      await DeviceStorage.fromOperators(
        [
          { name: "hung", op: hung, timeoutMs: 200 },
          { name: "good", op: await createOperator("memory") },
        ],
        opts,
      ),
    );
    expect(s.profileErrors.get("hung")!.message).toMatch(/timed out/);
  });
});

describe("writes", () => {
  it("save goes to every profile, compressed when large, with the Rust ZSTD layout", async () => {
    const { storage, memory, sqlite } = await twoTier();
    const big = { id: "big", body: "lorem ipsum dolor sit amet ".repeat(60_000) };
    await storage.saveValue("document_big.json", big);
    for (const op of [memory.inner, sqlite.inner]) {
      const raw = await op.read("document_big.json");
      expect(isCompressed(raw)).toBe(true);
      expect(Buffer.from(raw.subarray(0, 4)).toString()).toBe("ZSTD");
      expect(JSON.parse(text(raw))).toEqual(big);
    }
    await storage.saveValue("document_small.json", { id: "small" });
    expect(Buffer.from(await sqlite.inner.read("document_small.json")).toString()).toBe('{"id":"small"}');
  });

  it("writes to all profiles in parallel: a hung profile does not stop the others", async () => {
    const memory = await createOperator("memory");
    const hung = chaosOperator(await createOperator("memory"));
    const sqlite = chaosOperator(await createOperator("sqlite", { datadir: tempDir() }));
    const storage = track(
      await DeviceStorage.fromOperators(
        [
          { name: "hung", op: hung, speed: 1, timeoutMs: 300 },
          { name: "memory", op: memory, speed: 2 },
          { name: "sqlite", op: sqlite, speed: 3 },
        ],
        opts,
      ),
    );
    hung.faults.hang = true;
    const save = storage.saveValue("k.json", { v: 1 });
    // While the first profile hangs, the others have already been written.
    await new Promise((r) => setTimeout(r, 50));
    expect(sqlite.calls.write).toBeGreaterThanOrEqual(2); // probe + this save
    expect(text(await sqlite.inner.read("k.json"))).toBe('{"v":1}');
    const err = await save.catch((e) => e);
    expect(err).toBeInstanceOf(PartialWriteError);
    expect(err.outcomes.map((o: { profile: string; ok: boolean }) => [o.profile, o.ok])).toEqual([
      ["hung", false],
      ["memory", true],
      ["sqlite", true],
    ]);
    expect(err.message).toMatch(/hung: .*timed out/);
  });

  it("a failing profile -> PartialWriteError naming it, while the others keep the value", async () => {
    const { storage, memory, sqlite } = await twoTier();
    sqlite.faults.fail = ["write"];
    const err = await storage.saveValue("doc.json", { a: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(PartialWriteError);
    expect(err.code).toBe("E_PARTIAL_WRITE");
    expect(err.message).toMatch(/sqlite: chaos: injected permanent write failure/);
    expect(err.outcomes).toEqual([
      { profile: "memory", ok: true },
      expect.objectContaining({ profile: "sqlite", ok: false }),
    ]);
    expect(text(await memory.inner.read("doc.json"))).toBe('{"a":1}');
    expect(await sqlite.inner.exists("doc.json")).toBe(false);
  });

  it("the synchronous save path (memory + sqlite) reports a failing profile like the async one", async () => {
    const dir = tempDir();
    const storage = track(
      await DeviceStorage.fromSettings(
        { profiles: { memory: { type: "memory", speed: "1" }, sqlite: { type: "sqlite", datadir: dir, speed: "2" } } },
        opts,
      ),
    );
    expect(storage.ops.get("sqlite")!.op.writeSync).toBeTypeOf("function");
    await storage.saveValue("sync.json", { v: 1 });
    expect(text(await storage.ops.get("sqlite")!.op.read("sync.json"))).toBe('{"v":1}');
    // Break the sqlite table behind the operator's back.
    const { RawSqlite } = await import("./helpers/raw-sqlite.js");
    const db = new RawSqlite(join(dir, "terraphim.db"));
    db.exec("DROP TABLE terraphim_kv");
    db.close();
    const err = await storage.saveValue("sync.json", { v: 2 }).catch((e) => e);
    expect(err).toBeInstanceOf(PartialWriteError);
    expect(err.outcomes.map((o: { profile: string; ok: boolean }) => [o.profile, o.ok])).toEqual([
      ["memory", true],
      ["sqlite", false],
    ]);
    expect(text(await storage.ops.get("memory")!.op.read("sync.json"))).toBe('{"v":2}');
    await expect(storage.saveValue("../bad", {})).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it("the synchronous fallback (memory over sqlite) writes back at once, and leaves the unusual to the general path", async () => {
    const storage = track(
      await DeviceStorage.fromSettings(
        {
          profiles: {
            memory: { type: "memory", speed: "1" },
            sqlite: { type: "sqlite", datadir: tempDir(), speed: "2" },
          },
        },
        opts,
      ),
    );
    const sqlite = storage.ops.get("sqlite")!.op;
    const memory = storage.ops.get("memory")!.op;
    await sqlite.write("f.json", '{"v":1}');
    expect(await storage.loadValue("f.json")).toEqual({ value: { v: 1 }, profile: "sqlite", writeBack: true });
    expect(text(memory.readSync!("f.json")!)).toBe('{"v":1}'); // already there, no flush needed
    await expect(storage.loadValue("none.json")).rejects.toBeInstanceOf(NotFoundError);
    await sqlite.write("bad.json", "{oops");
    await expect(storage.loadValue("bad.json")).rejects.toBeInstanceOf(DeserializeError);
    expect(await memory.exists("bad.json")).toBe(false);
    const s = storage.stats();
    expect(s.sqlite).toMatchObject({ fallbacks: 1, misses: 1 });
    expect(s.memory).toMatchObject({ writeBacks: 1, misses: 3 });
  });

  it("unknown profile names are a ProfileError listing the available ones, and nothing is written", async () => {
    const { storage, memory } = await twoTier();
    const err = await storage.saveValue("x.json", {}, { profiles: ["memory", "nope"] }).catch((e) => e);
    expect(err).toBeInstanceOf(ProfileError);
    expect(err.message).toBe("Unknown profile name: nope. Available profiles: memory, sqlite");
    expect(await memory.inner.exists("x.json")).toBe(false);
  });

  it("saveToProfile writes one profile only", async () => {
    const { storage, memory, sqlite } = await twoTier();
    const n = Object.assign(new Note("one"), { text: "hello" }).withStorage(storage);
    await n.saveToProfile("sqlite");
    expect(await memory.inner.exists("note_one.json")).toBe(false);
    expect(JSON.parse(text(await sqlite.inner.read("note_one.json")))).toEqual({
      id: "one",
      text: "hello",
      version: 2,
    });
  });

  it("concurrent saves of one key land in the same order in every profile", async () => {
    const { storage, memory, sqlite } = await twoTier();
    sqlite.faults.latencyMs = 5;
    await Promise.all(Array.from({ length: 30 }, (_, i) => storage.saveValue("race.json", { i })));
    expect(text(await memory.inner.read("race.json"))).toBe('{"i":29}');
    expect(text(await sqlite.inner.read("race.json"))).toBe('{"i":29}');
  });
});

describe("retries", () => {
  /** A real memory store whose next `failures` writes fail with a transient (or permanent) error. */
  async function flaky(failures: number, transient: boolean) {
    const inner = await createOperator("memory");
    const state = { failures, writes: 0 };
    const op = {
      ...inner,
      capabilities: inner.capabilities,
      read: inner.read,
      write: async (k: string, d: Uint8Array | string) => {
        state.writes++;
        if (!k.startsWith(".terraphim-probe-") && state.failures > 0) {
          state.failures--;
          throw new BackendError("flaky: try again", { transient });
        }
        return inner.write(k, d);
      },
    };
    return { op, inner, state };
  }

  it("a transient write failure is retried with backoff and succeeds", async () => {
    const f = await flaky(2, true);
    const storage = track(await DeviceStorage.fromOperators([{ name: "flaky", op: f.op, retries: 2 }], opts));
    const before = f.state.writes;
    await storage.saveValue("r.json", { ok: 1 });
    expect(f.state.writes - before).toBe(3);
    expect(text(await f.inner.read("r.json"))).toBe('{"ok":1}');
  });

  it("a permanent failure is not retried", async () => {
    const f = await flaky(1, false);
    const storage = track(await DeviceStorage.fromOperators([{ name: "flaky", op: f.op, retries: 3 }], opts));
    const before = f.state.writes;
    await expect(storage.saveValue("r.json", {})).rejects.toBeInstanceOf(PartialWriteError);
    expect(f.state.writes - before).toBe(1);
  });

  it("more transient failures than retries -> PartialWriteError after retries + 1 attempts", async () => {
    const f = await flaky(5, true);
    const storage = track(await DeviceStorage.fromOperators([{ name: "flaky", op: f.op, retries: 1 }], opts));
    const before = f.state.writes;
    const err = await storage.saveValue("r.json", {}).catch((e) => e);
    expect(err).toBeInstanceOf(PartialWriteError);
    expect(err.message).toMatch(/flaky: try again/);
    expect(f.state.writes - before).toBe(2);
  });

  it("retries come from the profile option, defaulting to 0 for native schemes", async () => {
    const s = track(
      await DeviceStorage.fromSettings(
        {
          profiles: {
            memory: { type: "memory" },
            m2: { type: "memory", retries: "3" },
            bad: { type: "memory", retries: "1.5" },
          },
        },
        opts,
      ),
    );
    expect(s.ops.get("memory")!.retries).toBe(0);
    expect(s.ops.get("m2")!.retries).toBe(3);
    expect(s.profileErrors.get("bad")!.message).toMatch(/profiles\.bad\.retries/);
  });

  it("a stuck write gives up its place after the time limit, and if it lands late the last call still wins", async () => {
    const slow = chaosOperator(await createOperator("memory"));
    const storage = track(await DeviceStorage.fromOperators([{ name: "slow", op: slow, timeoutMs: 150 }], opts));
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const writesBefore = slow.calls.write;
    slow.faults.latencyMs = 400; // the first write reaches the store only after 400 ms
    const first = storage.saveValue("q.json", { n: 1 }).catch((e) => e);
    slow.faults.latencyMs = 0;
    const second = storage.saveValue("q.json", { n: 2 }).catch((e) => e);
    expect(await first).toBeInstanceOf(PartialWriteError);
    expect((await first).message).toMatch(/timed out after 150 ms/);
    await second; // it waited behind the first for the whole limit: it may time out too
    await sleep(100);
    // The key was not blocked until the stuck call answered: the second write ran at ~150 ms.
    expect(text(await slow.inner.read("q.json"))).toBe('{"n":2}');
    await sleep(350);
    // At 400 ms the first write landed over it; the newest write was then applied again.
    expect(slow.calls.write - writesBefore).toBe(3);
    expect(text(await slow.inner.read("q.json"))).toBe('{"n":2}');
  });
});

describe("tiered reads", () => {
  it("reads the fastest first, then the others in speed order, never the fastest twice", async () => {
    const a = chaosOperator(await createOperator("memory"));
    const b = chaosOperator(await createOperator("sqlite", { datadir: tempDir() }));
    const c = chaosOperator(await createOperator("fs", { root: tempDir() }));
    const storage = track(
      await DeviceStorage.fromOperators(
        [
          { name: "c", op: c, speed: 30 },
          { name: "a", op: a, speed: 10 },
          { name: "b", op: b, speed: 20 },
        ],
        opts,
      ),
    );
    await storage.saveValue("only-in-c.json", { where: "c" }, { profiles: ["c"] });
    const before = { a: a.calls.read, b: b.calls.read, c: c.calls.read };
    const r = await storage.loadValue("only-in-c.json");
    expect(r).toEqual({ value: { where: "c" }, profile: "c", writeBack: true });
    expect([a.calls.read - before.a, b.calls.read - before.b, c.calls.read - before.c]).toEqual([1, 1, 1]);
    await storage.flush();
    // Written back to the fastest only.
    expect(await a.inner.exists("only-in-c.json")).toBe(true);
    expect(await b.inner.exists("only-in-c.json")).toBe(false);
    const again = await storage.loadValue("only-in-c.json");
    expect(again.profile).toBe("a");
    expect(storage.stats().a!.writeBacks).toBe(1);
    expect(storage.stats().c!.fallbacks).toBe(1);
  });

  it("missing everywhere is NotFoundError; a failing profile makes it a BackendError (absence not certain)", async () => {
    const { storage, sqlite } = await twoTier();
    await expect(storage.loadValue("nope.json")).rejects.toBeInstanceOf(NotFoundError);
    sqlite.faults.fail = ["read"];
    const err = await storage.loadValue("nope.json").catch((e) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(err).not.toBeInstanceOf(NotFoundError);
    expect(err.message).toMatch(/memory: not found; sqlite: chaos/);
  });

  it("a failing slower profile is skipped and the next one answers", async () => {
    const a = await createOperator("memory");
    const b = chaosOperator(await createOperator("sqlite", { datadir: tempDir() }));
    const c = await createOperator("fs", { root: tempDir() });
    const storage = track(
      await DeviceStorage.fromOperators(
        [
          { name: "a", op: a, speed: 1 },
          { name: "b", op: b, speed: 2 },
          { name: "c", op: c, speed: 3 },
        ],
        opts,
      ),
    );
    await storage.saveValue("k.json", { v: "c" }, { profiles: ["b", "c"] });
    b.faults.fail = ["read"];
    expect(await storage.loadValue("k.json")).toMatchObject({ value: { v: "c" }, profile: "c" });
  });

  it("a write-back never replaces a save that starts while the fallback read is in flight", async () => {
    const { storage, memory, sqlite } = await twoTier();
    await storage.saveValue("wb.json", { v: "old" }, { profiles: ["sqlite"] });
    sqlite.faults.replyDelayMs = 100;
    const load = storage.loadValue("wb.json");
    await new Promise((r) => setTimeout(r, 20)); // the fallback read has its bytes but has not returned
    sqlite.faults.replyDelayMs = 0;
    await storage.saveValue("wb.json", { v: "new" });
    expect((await load).value).toEqual({ v: "old" }); // read began before the save
    await storage.flush();
    expect(text(await memory.inner.read("wb.json"))).toBe('{"v":"new"}');
    expect(storage.stats().memory!.writeBacksSkipped).toBe(1);
    expect((await storage.loadValue("wb.json")).value).toEqual({ v: "new" });
  });

  it("a write-back never lands after a save that was already in progress when the read began", async () => {
    const { storage, memory } = await twoTier();
    await storage.saveValue("wb2.json", { v: "old" }, { profiles: ["sqlite"] });
    memory.faults.latencyMs = 80; // the save's write to memory is slow...
    const save = storage.saveValue("wb2.json", { v: "new" }, { profiles: ["memory"] });
    memory.faults.latencyMs = 0;
    const r = await storage.loadValue("wb2.json"); // ...so this load misses memory and finds "old" in sqlite
    expect(r.value).toEqual({ v: "old" });
    await save;
    await storage.flush();
    expect(text(await memory.inner.read("wb2.json"))).toBe('{"v":"new"}');
  });

  it("a delete during a fallback read is not undone by the write-back", async () => {
    const { storage, memory, sqlite } = await twoTier();
    await storage.saveValue("del.json", { v: 1 }, { profiles: ["sqlite"] });
    sqlite.faults.replyDelayMs = 80;
    const load = storage.loadValue("del.json");
    await new Promise((r) => setTimeout(r, 20));
    sqlite.faults.replyDelayMs = 0;
    await storage.deleteValue("del.json");
    expect((await load).value).toEqual({ v: 1 });
    await storage.flush();
    expect(await memory.inner.exists("del.json")).toBe(false);
    await expect(storage.loadValue("del.json")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("a delete right after a fallback load (before its write-back ran) is not undone", async () => {
    const { storage, memory } = await twoTier();
    await storage.saveValue("gone.json", { v: 1 }, { profiles: ["sqlite"] });
    memory.faults.latencyMs = 30; // the write-back into the cache is still in flight...
    const r = await storage.loadValue("gone.json");
    expect(r.writeBack).toBe(true);
    await storage.deleteValue("gone.json"); // ...when the delete comes
    await storage.flush();
    expect(await memory.inner.exists("gone.json")).toBe(false);
    await expect(storage.loadValue("gone.json")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("single-flight: 100 concurrent loads of a key cause one read per slower profile", async () => {
    const { storage, sqlite } = await twoTier();
    await storage.saveValue("hot.json", { n: 42, list: [1, 2, 3] }, { profiles: ["sqlite"] });
    sqlite.faults.latencyMs = 30;
    const before = sqlite.calls.read;
    const results = await Promise.all(Array.from({ length: 100 }, () => storage.loadValue("hot.json")));
    expect(sqlite.calls.read - before).toBe(1);
    for (const r of results) expect(r.value).toEqual({ n: 42, list: [1, 2, 3] });
    // Each caller gets its own object: mutating one does not change another.
    (results[0]!.value as { list: number[] }).list.push(4);
    expect((results[1]!.value as { list: number[] }).list).toEqual([1, 2, 3]);
    await storage.flush();
    expect(storage.stats().memory!.writeBacks).toBe(1);
  });

  it("loads with the fastest profile down still succeed from the others", async () => {
    const { storage, memory } = await twoTier();
    await storage.saveValue("k.json", { ok: true });
    memory.faults.fail = ["read", "write"];
    expect(await storage.loadValue("k.json")).toMatchObject({ value: { ok: true }, profile: "sqlite" });
    await storage.flush(); // write-back fails in the background, never into the caller
    expect(storage.stats().memory!.failures).toBeGreaterThanOrEqual(2);
  });
});

describe("schema evolution and corruption", () => {
  it("a cached value that no longer fits the zod schema is replaced from a slower profile", async () => {
    const { storage, memory, sqlite } = await twoTier();
    await memory.inner.write("note_n1.json", JSON.stringify({ id: "n1", body: "old shape", version: 1 }));
    await sqlite.inner.write("note_n1.json", JSON.stringify({ id: "n1", text: "new shape", version: 2 }));
    const note = await new Note("n1").withStorage(storage).load();
    expect(note).toBeInstanceOf(Note);
    expect(note.text).toBe("new shape");
    await storage.flush();
    expect(JSON.parse(text(await memory.inner.read("note_n1.json")))).toEqual({
      id: "n1",
      text: "new shape",
      version: 2,
    });
    expect((await new Note("n1").withStorage(storage).loadWithSource()).profile).toBe("memory");
  });

  it("corrupt bytes everywhere -> DeserializeError (not NotFound), and the stored bytes are left alone", async () => {
    const { storage, memory, sqlite } = await twoTier();
    await memory.inner.write("loose_c.json", "{not json");
    await sqlite.inner.write("loose_c.json", new Uint8Array([0x5a, 0x53, 0x54, 0x44, 1, 2, 3])); // ZSTD + garbage
    const err = await new Loose("c")
      .withStorage(storage)
      .load()
      .catch((e) => e);
    expect(err).toBeInstanceOf(DeserializeError);
    expect(err.code).toBe("E_DESERIALIZE");
    expect(err.message).toMatch(/loose_c\.json/);
    await storage.flush();
    expect(Buffer.from(await memory.inner.read("loose_c.json")).toString()).toBe("{not json");
    expect(Array.from(await sqlite.inner.read("loose_c.json"))).toEqual([0x5a, 0x53, 0x54, 0x44, 1, 2, 3]);
  });

  it("a value that fails the schema in every profile is a DeserializeError naming the issue", async () => {
    const { storage } = await twoTier();
    await storage.saveValue("note_x.json", { id: "x", version: 1 });
    const err = await new Note("x")
      .withStorage(storage)
      .load()
      .catch((e) => e);
    expect(err).toBeInstanceOf(DeserializeError);
    expect(err.message).toMatch(/text/);
  });

  it("corrupt in the cache only: the good value is served and the cache repaired", async () => {
    const { storage, memory, sqlite } = await twoTier();
    await sqlite.inner.write("loose_r.json", JSON.stringify({ id: "r", payload: [1] }));
    await memory.inner.write("loose_r.json", "\u0000garbage");
    const r = await new Loose("r").withStorage(storage).loadWithSource();
    expect(r.profile).toBe("sqlite");
    expect(r.value.payload).toEqual([1]);
    await storage.flush();
    expect(JSON.parse(text(await memory.inner.read("loose_r.json")))).toEqual({ id: "r", payload: [1] });
  });
});

describe("Persistable", () => {
  it("load resolves to a new instance of the subclass; the object itself is unchanged", async () => {
    const { storage } = await twoTier();
    const saved = Object.assign(new Note("p"), { text: "stored" }).withStorage(storage);
    await saved.save();
    const blank = new Note("p").withStorage(storage);
    const loaded = await blank.load();
    expect(loaded).toBeInstanceOf(Note);
    expect(loaded).not.toBe(blank);
    expect(loaded.text).toBe("stored");
    expect(blank.text).toBe("");
    expect(loaded.getKey()).toBe("note_p.json");
    // The storage reference is never part of the stored JSON.
    expect(JSON.stringify(saved)).toBe('{"id":"p","text":"stored","version":2}');
    // and the loaded copy keeps using the same storage
    expect(await loaded.storage()).toBe(storage);
  });

  it("loadConfig gives the ranked profiles and the fastest operator", async () => {
    const { storage, memory } = await twoTier();
    const cfg = await new Note("z").withStorage(storage).loadConfig();
    expect(cfg.fastestOp).toBe(memory);
    expect([...cfg.ops.keys()]).toEqual(["memory", "sqlite"]);
  });

  it("a stored non-object is a DeserializeError", async () => {
    const { storage } = await twoTier();
    await storage.saveValue("loose_arr.json", [1, 2]);
    await expect(new Loose("arr").withStorage(storage).load()).rejects.toBeInstanceOf(DeserializeError);
  });
});

describe("singleton", () => {
  afterEach(() => DeviceStorage.resetInstance());

  it("initMemoryOnly makes instance() a memory-only store, created once", async () => {
    const a = await DeviceStorage.initMemoryOnly();
    const b = await DeviceStorage.instance();
    expect(b).toBe(a);
    expect([...a.ops.keys()]).toEqual(["memory"]);
    expect(a.fastestOp.capabilities.durable).toBe(false);
    expect(await DeviceStorage.initMemoryOnly()).toBe(a);
    const n = Object.assign(new Note("s"), { text: "t" });
    await n.save();
    expect((await new Note("s").load()).text).toBe("t");
  });

  it("concurrent first calls share one initialisation", async () => {
    const [a, b] = await Promise.all([DeviceStorage.initMemoryOnly(), DeviceStorage.initMemoryOnly()]);
    expect(a).toBe(b);
  });
});

describe("hostile stored data", () => {
  it('a stored "__proto__" key cannot replace the loaded object\'s prototype', async () => {
    const { storage, sqlite } = await twoTier();
    await sqlite.inner.write("loose_p.json", '{"id":"p","payload":1,"__proto__":{"evil":1}}');
    const loaded = await new Loose("p").withStorage(storage).load();
    expect(loaded).toBeInstanceOf(Loose);
    expect(loaded.getKey()).toBe("loose_p.json");
    expect((loaded as unknown as { evil?: number }).evil).toBeUndefined();
    expect(loaded.payload).toBe(1);
  });

  it("exists() with a failing profile is a BackendError, not false", async () => {
    const { storage, sqlite } = await twoTier();
    await storage.saveValue("e.json", {}, { profiles: ["sqlite"] });
    expect(await storage.exists("e.json")).toBe(true);
    expect(await storage.exists("none.json")).toBe(false);
    sqlite.faults.fail = ["exists"];
    await expect(storage.exists("e.json")).rejects.toBeInstanceOf(BackendError);
  });
});
