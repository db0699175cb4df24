/**
 * The hot paths taken for speed must give exactly what the general paths give:
 * values kept as text (memory, sqlite), batched loads (`loadValues`,
 * `loadDocumentsByIds`), and Document's direct decoder.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { decodeJson, decodeStored, encodeJsonStored } from "../src/codec.js";
import { Document, documentSchema, loadDocumentsByIds } from "../src/domain/document.js";
import { DeserializeError, InvalidKeyError, NotFoundError, PersistenceError } from "../src/errors.js";
import { validateKey } from "../src/keys/index.js";
import { silentLogger } from "../src/logger.js";
import { memoryOperator } from "../src/operators/drivers/memory.js";
import { sqliteOperator } from "../src/operators/drivers/sqlite.js";
import type { Operator } from "../src/operators/types.js";
import { quotaOperator } from "../src/operators/wrappers/quota.js";
import { Persistable } from "../src/persistable.js";
import { DeviceStorage } from "../src/storage/device-storage.js";
import { RawSqlite } from "./helpers/raw-sqlite.js";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-fast-"));
  dirs.push(d);
  return d;
};
const open: (DeviceStorage | Operator)[] = [];
function track<T extends DeviceStorage | Operator>(x: T): T {
  open.push(x);
  return x;
}
afterEach(async () => {
  for (const x of open.splice(0)) await x.close();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const opts = { logger: silentLogger };

/** Invalid UTF-8 sequences: each must be refused, never turned into U+FFFD. */
const INVALID_UTF8: Record<string, number[]> = {
  "bare continuation": [0x80],
  "overlong NUL": [0xc0, 0x80],
  "overlong slash": [0xe0, 0x80, 0xaf],
  "UTF-16 surrogate": [0xed, 0xa0, 0x80],
  "above U+10FFFF": [0xf4, 0x90, 0x80, 0x80],
  "truncated 3-byte": [0xe2, 0x82],
  "0xFE": [0xfe],
  "0xFF": [0xff],
};
const jsonWith = (bad: number[]) => Buffer.concat([Buffer.from('{"a":"x'), Buffer.from(bad), Buffer.from('y"}')]);

/** Writes raw bytes into a sqlite profile's table behind its back (what another program might store). */
function putRaw(dir: string, key: string, value: Buffer | string) {
  const db = new RawSqlite(join(dir, "terraphim.db"));
  db.prepare(
    "INSERT INTO terraphim_kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
  ).run(key, value);
  db.close();
}
function storedType(dir: string, key: string): { type: string; hex: string } {
  const db = new RawSqlite(join(dir, "terraphim.db"), { readonly: true });
  const r = db.prepare("SELECT typeof(value) AS type, hex(value) AS hex FROM terraphim_kv WHERE key = ?").get(key) as {
    type: string;
    hex: string;
  };
  db.close();
  return r;
}

describe("values kept as text", () => {
  it("a saved value is stored in sqlite as a BLOB of its UTF-8 bytes, exactly what the bytes path stores", async () => {
    const dir = tempDir();
    const storage = track(
      await DeviceStorage.fromOperators([{ name: "sqlite", op: sqliteOperator({ datadir: dir }) }], opts),
    );
    const value = { id: "é€😀", text: "snowman ☃", n: 1 };
    await storage.saveValue("k.json", value);
    const r = storedType(dir, "k.json");
    expect(r.type).toBe("blob");
    expect(r.hex).toBe(Buffer.from(JSON.stringify(value), "utf8").toString("hex").toUpperCase());
    expect((await storage.loadValue("k.json")).value).toEqual(value);
    expect(storage.stats().sqlite?.bytesWritten).toBe(Buffer.byteLength(JSON.stringify(value)));
  });

  for (const [name, bad] of Object.entries(INVALID_UTF8)) {
    it(`invalid UTF-8 in sqlite (${name}) is a DeserializeError on every read path, never U+FFFD`, async () => {
      const dir = tempDir();
      const op = track(sqliteOperator({ datadir: dir }));
      putRaw(dir, "bad.json", jsonWith(bad));
      const stored = op.readStoredSync!("bad.json")!;
      expect(typeof stored.data).not.toBe("string");
      expect(Buffer.from(stored.data as Uint8Array).equals(jsonWith(bad))).toBe(true);
      expect(op.readManyStoredSync!(["bad.json"])[0]!.data).toBeInstanceOf(Uint8Array);
      await op.close();
      const storage = track(
        await DeviceStorage.fromOperators([{ name: "sqlite", op: track(sqliteOperator({ datadir: dir })) }], opts),
      );
      await expect(storage.loadValue("bad.json")).rejects.toThrow(/not valid UTF-8/);
      const [o] = await storage.loadValues(["bad.json"]);
      expect(o!.ok).toBe(false);
      expect(!o!.ok && o!.error).toBeInstanceOf(DeserializeError);
    });
  }

  it("a real U+FFFD, a BOM, a TEXT-typed value and a value starting with ZSTD read as the bytes path reads them", async () => {
    const dir = tempDir();
    const op = track(sqliteOperator({ datadir: dir }));
    putRaw(dir, "fffd.json", Buffer.from('{"a":"\uFFFD"}', "utf8"));
    putRaw(dir, "bom.json", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')]));
    putRaw(dir, "text.json", '{"a":"stored as TEXT"}');
    putRaw(dir, "zstd.json", Buffer.from("ZSTD{}"));
    for (const key of ["fffd.json", "bom.json", "text.json", "zstd.json"]) {
      const bytes = op.readSync!(key)!;
      const stored = op.readStoredSync!(key)!;
      expect(stored.size).toBe(bytes.length);
      let viaBytes: unknown;
      let viaStored: unknown;
      try {
        viaBytes = decodeJson(bytes);
      } catch (err) {
        viaBytes = (err as Error).message;
      }
      try {
        viaStored = decodeStored(stored.data);
      } catch (err) {
        viaStored = (err as Error).message;
      }
      expect(viaStored, key).toEqual(viaBytes);
    }
    expect(decodeStored(op.readStoredSync!("fffd.json")!.data)).toEqual({ a: "\uFFFD" });
  });

  it("a database in UTF-16 takes the bytes path (SQLite would recode text): values stay UTF-8 BLOBs", async () => {
    const dir = tempDir();
    const db = new RawSqlite(join(dir, "terraphim.db"));
    db.pragma("encoding = 'UTF-16le'");
    db.exec("CREATE TABLE terraphim_kv (key TEXT PRIMARY KEY, value BLOB)");
    db.close();
    const storage = track(
      await DeviceStorage.fromOperators([{ name: "sqlite", op: sqliteOperator({ datadir: dir }) }], opts),
    );
    await storage.saveValue("u.json", { s: "é😀" });
    expect(storedType(dir, "u.json")).toEqual({
      type: "blob",
      hex: Buffer.from('{"s":"é😀"}', "utf8").toString("hex").toUpperCase(),
    });
    expect((await storage.loadValue("u.json")).value).toEqual({ s: "é😀" });
    expect((await storage.loadValues(["u.json"]))[0]).toMatchObject({ ok: true, value: { s: "é😀" } });
  });

  it("the memory tier keeps text and bytes apart: read() and stat() give the UTF-8 bytes either way", async () => {
    const op = track(memoryOperator());
    op.writeSync!("t", "héllo");
    op.writeSync!("b", new Uint8Array([1, 2, 3]));
    // A lone surrogate has no UTF-8 form: it is stored as TextEncoder encodes it (U+FFFD).
    op.writeSync!("s", "a\ud800b");
    expect(op.readStoredSync!("t")).toEqual({ data: "héllo", size: 6, mtime: expect.any(Number) });
    expect(Buffer.from(await op.read("t")).toString("utf8")).toBe("héllo");
    expect((await op.stat("t")).contentLength).toBe(6);
    expect(Array.from(op.readSync!("b")!)).toEqual([1, 2, 3]);
    expect(Array.from(op.readSync!("s")!)).toEqual([0x61, 0xef, 0xbf, 0xbd, 0x62]);
    // read() hands out a copy: mutating it changes nothing stored.
    const copy = await op.read("t");
    copy[0] = 0x41;
    expect(Buffer.from(await op.read("t")).toString("utf8")).toBe("héllo");
  });

  it("a quota counts text by its UTF-8 bytes", async () => {
    const op = track(await quotaOperator(memoryOperator(), { maxSize: 10, policy: "reject", profile: "q" }));
    await op.write("a", "ééééé"); // 10 bytes, 5 characters
    expect(op.usage!().bytes).toBe(10);
    await expect(op.write("b", "x")).rejects.toThrow(/quota/);
  });

  it("an LRU quota counts synchronous and batched reads as uses (the read-back keys are kept)", async () => {
    const op = track(
      await quotaOperator(sqliteOperator({ datadir: tempDir() }), { maxItems: 3, policy: "lru", profile: "q" }),
    );
    for (const k of ["a", "b", "c"]) await op.write(k, `"${k}"`);
    expect(op.readManyStoredSync!(["a"])[0]?.data).toBe('"a"');
    expect(op.readStoredSync!("b")?.data).toBe('"b"');
    await op.write("d", '"d"'); // evicts the least recently used: c
    expect((await op.list()).sort()).toEqual(["a", "b", "d"]);
  });

  it("encodeJsonStored keeps small values as text and compresses large ones like encodeJson", () => {
    const small = encodeJsonStored({ a: "é" });
    expect(small).toEqual({ data: '{"a":"é"}', size: 10 });
    const big = encodeJsonStored({ s: "x".repeat(2 * 1024 * 1024) });
    expect(big.data).toBeInstanceOf(Uint8Array);
    expect(
      Buffer.from(big.data as Uint8Array)
        .subarray(0, 4)
        .toString(),
    ).toBe("ZSTD");
    expect(big.size).toBe((big.data as Uint8Array).length);
  });
});

describe("write-backs keep text", () => {
  it("a value read as bytes from a slower tier is written back as text standing for exactly those bytes", async () => {
    const memory = memoryOperator();
    const slow = memoryOperator();
    const storage = track(
      await DeviceStorage.fromOperators(
        [
          { name: "memory", op: memory, speed: 1 },
          { name: "slow", op: slow, speed: 100 },
        ],
        opts,
      ),
    );
    const bom = Buffer.from('\ufeff{"a":"é"}');
    await slow.write("one.json", bom);
    await slow.write("many.json", Buffer.from('{"b":2}'));
    await slow.write("bad.json", jsonWith([0xff]));
    expect(await storage.loadValue("one.json")).toMatchObject({ value: { a: "é" }, profile: "slow" });
    const [many, bad] = await storage.loadValues(["many.json", "bad.json"]);
    expect(many).toMatchObject({ ok: true, value: { b: 2 }, profile: "slow" });
    expect(!bad!.ok && bad!.error).toBeInstanceOf(DeserializeError);
    await storage.flush();

    // Both paths wrote text, and text that reads back as the very bytes (the BOM kept).
    expect(typeof memory.readStoredSync!("one.json")?.data).toBe("string");
    expect(typeof memory.readStoredSync!("many.json")?.data).toBe("string");
    expect(Buffer.from(memory.readSync!("one.json")!)).toEqual(bom);
    // Bytes that are not UTF-8 are refused and never written back.
    expect(memory.readSync!("bad.json")).toBeUndefined();
    expect(await storage.loadValue("one.json")).toMatchObject({ value: { a: "é" }, profile: "memory" });
    expect(await storage.loadValue("many.json")).toMatchObject({ value: { b: 2 }, profile: "memory" });
  });
});

describe("validateKey remembers the last valid key only", () => {
  it("an invalid key after a valid one, or twice in a row, is still refused", () => {
    expect(validateKey("a/b.json")).toBe("a/b.json");
    expect(validateKey("a/b.json")).toBe("a/b.json");
    for (let i = 0; i < 2; i++) {
      expect(() => validateKey("../x")).toThrow(InvalidKeyError);
      expect(() => validateKey("")).toThrow(InvalidKeyError);
      expect(() => validateKey(undefined)).toThrow(InvalidKeyError);
    }
  });
});

/** memory over sqlite, ranked by fixed speeds. */
async function twoTier() {
  const dir = tempDir();
  const memory = memoryOperator();
  const sqlite = sqliteOperator({ datadir: dir });
  const storage = track(
    await DeviceStorage.fromOperators(
      [
        { name: "memory", op: memory, speed: 1 },
        { name: "sqlite", op: sqlite, speed: 100 },
      ],
      opts,
    ),
  );
  return { dir, memory, sqlite, storage };
}

describe("loadValues", () => {
  it("gives, key by key and in order, what loadValue gives: hits, fallbacks with write-back, absences, errors", async () => {
    const { dir, memory, storage } = await twoTier();
    const keys = Array.from({ length: 70 }, (_, i) => `k/${i}.json`);
    for (const [i, k] of keys.entries()) if (i % 7 !== 3) await storage.saveValue(k, { i });
    // Some only in sqlite (fallback), one corrupt in sqlite only, one invalid key, a duplicate.
    for (const k of keys.slice(0, 20)) await memory.delete(k);
    putRaw(dir, "corrupt.json", Buffer.from("{not json"));
    const asked = [...keys, "corrupt.json", "../bad", keys[5]!];

    const many = await storage.loadValues(asked);
    expect(many).toHaveLength(asked.length);
    for (const [i, key] of asked.entries()) {
      const o = many[i]!;
      if (key === "../bad") {
        expect(!o.ok && o.error).toBeInstanceOf(InvalidKeyError);
      } else if (key === "corrupt.json") {
        expect(!o.ok && o.error).toBeInstanceOf(DeserializeError);
      } else if (Number(key.slice(2, -5)) % 7 === 3) {
        expect(!o.ok && o.error).toBeInstanceOf(NotFoundError);
      } else {
        expect(o.ok, key).toBe(true);
        expect(o.ok && o.value).toEqual({ i: Number(key.slice(2, -5)) });
        // Read in one pass: both asks of a key missing from memory are served by sqlite.
        expect(o.ok && o.profile).toBe(Number(key.slice(2, -5)) < 20 ? "sqlite" : "memory");
      }
    }
    await storage.flush();
    // The fallbacks were written back: a second call is served by memory for every stored key.
    const again = await storage.loadValues(keys);
    for (const [i, o] of again.entries()) {
      if (i % 7 === 3) expect(o.ok).toBe(false);
      else expect(o.ok && o.profile).toBe("memory");
    }
  });

  it("schema evolution and TTL behave as in loadValue", async () => {
    const { memory, storage } = await twoTier();
    const v2 = z.object({ v: z.literal(2) });
    await storage.saveValue("s.json", { v: 2 });
    memory.writeSync!("s.json", '{"v":1}'); // an old shape in the cache
    await storage.saveValue("t.json", { v: 2 }, { ttlMs: 40 });
    const [s, t] = await storage.loadValues(["s.json", "t.json"], (j) => v2.parse(j));
    expect(s).toMatchObject({ ok: true, value: { v: 2 }, profile: "sqlite" });
    expect(t).toMatchObject({ ok: true, value: { v: 2 } });
    await new Promise((r) => setTimeout(r, 60));
    const [t2] = await storage.loadValues(["t.json"]);
    expect(!t2!.ok && t2!.error).toBeInstanceOf(NotFoundError);
    await storage.flush();
    expect(decodeStored(memory.readStoredSync!("s.json")!.data)).toEqual({ v: 2 });
  });

  it("a sqlite fastest profile is read in one batch; a bad key is its own outcome and does not spoil the batch", async () => {
    const inner = sqliteOperator({ datadir: tempDir() });
    let batches = 0;
    const op: Operator = {
      ...inner,
      readManyStoredSync(paths) {
        batches++;
        return inner.readManyStoredSync!(paths);
      },
    };
    const storage = track(await DeviceStorage.fromOperators([{ name: "sqlite", op }], opts));
    for (let i = 0; i < 40; i++) await storage.saveValue(`k${i}.json`, i);
    const asked = [...Array.from({ length: 40 }, (_, i) => `k${i}.json`), "../bad", "missing.json"];
    const out = await storage.loadValues(asked);
    expect(batches).toBe(1);
    expect(out.slice(0, 40).map((o) => o.ok && o.value)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(!out[40]!.ok && out[40]!.error).toBeInstanceOf(InvalidKeyError);
    expect(!out[41]!.ok && out[41]!.error).toBeInstanceOf(NotFoundError);
    // The bad key never reached the profile (as with loadValue): one miss.
    expect(storage.stats().sqlite).toMatchObject({ hits: 40, misses: 1 });
  });

  it("more keys than one synchronous pass reads at a time: every outcome lands at its own index", async () => {
    const { storage } = await twoTier();
    const keys = Array.from({ length: 600 }, (_, i) => `m/${i}.json`);
    for (const [i, k] of keys.entries())
      if (i % 7) await storage.saveValue(k, i, { profiles: [i % 2 ? "memory" : "sqlite"] });
    const out = await storage.loadValues(keys);
    out.forEach((o, i) => {
      if (i % 7 === 0) expect(!o.ok && o.error, keys[i]).toBeInstanceOf(NotFoundError);
      else expect(o.ok && [o.value, o.profile], keys[i]).toEqual([i, i % 2 ? "memory" : "sqlite"]);
    });
  });

  it("sqlite batches: many keys across chunk boundaries, absent ones and duplicates", async () => {
    const dir = tempDir();
    const op = track(sqliteOperator({ datadir: dir }));
    const keys = Array.from({ length: 100 }, (_, i) => `d/${i}`);
    keys.forEach((k, i) => {
      if (i % 5) op.writeSync!(k, `{"i":${i}}`);
    });
    const asked = [...keys, "d/1", "d/0", "nope"];
    const got = op.readManyStoredSync!(asked);
    expect(got).toHaveLength(asked.length);
    asked.forEach((k, i) => {
      const one = op.readStoredSync!(k);
      expect(got[i], k).toEqual(one);
    });
    expect(() => op.readManyStoredSync!(["ok", "a//b"])).toThrow(InvalidKeyError);
  });

  it("rejects bad arguments and a closed storage; traced loads give the same outcomes", async () => {
    const { storage } = await twoTier();
    await storage.saveValue("a.json", 1);
    await expect(storage.loadValues("a.json" as never)).rejects.toThrow(PersistenceError);
    await expect(storage.loadValues(["a.json"], undefined, { concurrency: 0 })).rejects.toThrow(/concurrency/);
    const { subscribe, unsubscribe } = await import("node:diagnostics_channel");
    const { CHANNELS } = await import("../src/diagnostics.js");
    const seen: unknown[] = [];
    const onStart = (m: unknown) => seen.push(m);
    subscribe(`tracing:${CHANNELS.load}:start`, onStart);
    try {
      const traced = await storage.loadValues(["a.json", "b.json"]);
      expect(traced[0]).toMatchObject({ ok: true, value: 1 });
      expect(!traced[1]!.ok && traced[1]!.error).toBeInstanceOf(NotFoundError);
      expect(seen).toHaveLength(2);
    } finally {
      unsubscribe(`tracing:${CHANNELS.load}:start`, onStart);
    }
    const zodSchema = z.number();
    await expect(storage.loadValue("a.json", zodSchema as never)).rejects.toThrow(/schemaDecoder\(schema\)/);
    await expect(storage.loadValues(["a.json"], zodSchema as never)).rejects.toThrow(/schemaDecoder\(schema\)/);
    await expect(storage.loadValue("a.json", 42 as never)).rejects.toThrow(/got number/);
    await storage.close();
    await expect(storage.loadValues(["a.json"])).rejects.toMatchObject({ code: "E_CLOSED" });
    // A closed storage rejects; it never throws synchronously from a promise-returning call.
    let pending: Promise<unknown> | undefined;
    expect(() => {
      pending = storage.loadValue("a.json");
    }).not.toThrow();
    await expect(pending).rejects.toMatchObject({ code: "E_CLOSED" });
  });
});

describe("Document loads", () => {
  it("load() gives a Document bound to the storage; a template's extra fields survive; a subclass stays itself", async () => {
    const { storage } = await twoTier();
    const saved = new Document("d-1", { title: "T", body: "B", tags: ["x"], rank: 7 });
    await saved.withStorage(storage).save();

    const plain = await new Document("d-1").withStorage(storage).load();
    expect(plain).toBeInstanceOf(Document);
    expect(plain.toJSON()).toEqual(saved.toJSON());
    plain.title = "T2";
    await plain.save(); // bound to `storage`
    expect((await storage.loadValue(saved.getKey())).value).toMatchObject({ title: "T2" });

    const template = Object.assign(new Document("d-1"), { extra: 42 });
    const withExtra = await template.withStorage(storage).load();
    expect(withExtra).toMatchObject({ extra: 42, title: "T2" });

    class Tagged extends Document {
      label = "default";
    }
    const sub = await new Tagged("d-1").withStorage(storage).load();
    expect(sub).toBeInstanceOf(Tagged);
    expect(sub.label).toBe("default");
    expect(sub.title).toBe("T2");
  });

  it("a value that does not fit the Document schema is refused with the schema's message on every path", async () => {
    const { storage } = await twoTier();
    await storage.saveValue("document_bad.json", { id: "bad", url: "u", title: 3, body: "b" });
    const viaSchema = documentSchema["~standard"].validate({ id: "bad", url: "u", title: 3, body: "b" });
    expect("issues" in viaSchema && viaSchema.issues?.[0]?.message).toMatch(/expected a string/);
    await expect(new Document("bad").withStorage(storage).load()).rejects.toThrow(/title: expected a string/);
    const r = await loadDocumentsByIds(["bad"], { storage });
    expect(r.failed[0]?.error.message).toMatch(/title: expected a string/);
  });

  it("a replaced Document.schema is honoured (the direct decoder is only used with the built-in schema)", async () => {
    const { storage } = await twoTier();
    await new Document("z").withStorage(storage).save();
    const before = Document.schema;
    Document.schema = { "~standard": { version: 1, vendor: "t", validate: () => ({ issues: [{ message: "no" }] }) } };
    try {
      await expect(new Document("z").withStorage(storage).load()).rejects.toThrow(/no/);
      const r = await loadDocumentsByIds(["z"], { storage });
      expect(r.failed[0]?.error.message).toMatch(/no/);
      // A schema that accepts: the documents are still Documents, bound to the storage.
      Document.schema = {
        "~standard": { version: 1, vendor: "t", validate: (v) => ({ value: { ...(v as object), title: "seen" } }) },
      } as typeof Document.schema;
      const ok = await loadDocumentsByIds(["z"], { storage });
      expect(ok.documents[0]).toBeInstanceOf(Document);
      expect(ok.documents[0]?.title).toBe("seen");
    } finally {
      Document.schema = before;
    }
    expect(await new Document("z").withStorage(storage).load()).toBeInstanceOf(Document);
  });

  it("loadDocumentsByIds returns Documents bound to the storage, in input order, with missing ids reported", async () => {
    const { memory, storage } = await twoTier();
    for (let i = 0; i < 50; i++) await new Document(`id ${i}`, { body: `b${i}` }).withStorage(storage).save();
    for (let i = 0; i < 10; i++) await memory.delete(new Document(`id ${i}`).getKey());
    const ids = ["nope", ...Array.from({ length: 50 }, (_, i) => `id ${49 - i}`)];
    const r = await loadDocumentsByIds(ids, { storage });
    expect(r.missing).toEqual(["nope"]);
    expect(r.failed).toEqual([]);
    expect(r.documents.map((d) => d.body)).toEqual(ids.slice(1).map((id) => `b${id.slice(3)}`));
    expect(r.documents.every((d) => d instanceof Document)).toBe(true);
    const first = r.documents[0]!;
    first.body = "changed";
    await first.save();
    expect((await storage.loadValue(first.getKey())).value).toMatchObject({ body: "changed" });
  });
});

// A Persistable without the fast decoder still loads through its own schema.
class Plain extends Persistable {
  static schema = z.object({ id: z.string(), n: z.number() });
  n = 0;
  constructor(public id: string) {
    super();
  }
  getKey() {
    return `plain_${this.normalizeKey(this.id)}.json`;
  }
}

describe("Persistable.load", () => {
  it("still copies fields onto the template's class and rejects (never throws) on a bad key", async () => {
    const { storage } = await twoTier();
    const p = new Plain("p");
    p.n = 5;
    await p.withStorage(storage).save();
    const back = await new Plain("p").withStorage(storage).load();
    expect(back).toBeInstanceOf(Plain);
    expect(back.n).toBe(5);
    class BadKey extends Plain {
      override getKey(): string {
        throw new InvalidKeyError("no key");
      }
    }
    const pending = new BadKey("x").withStorage(storage).load();
    expect(pending).toBeInstanceOf(Promise);
    await expect(pending).rejects.toThrow(InvalidKeyError);
  });

  it("load() still goes through a subclass's own loadWithSource", async () => {
    const { storage } = await twoTier();
    await Object.assign(new Plain("q"), { n: 1 }).withStorage(storage).save();
    const seen: string[] = [];
    class Audited extends Plain {
      override async loadWithSource() {
        const r = await super.loadWithSource();
        seen.push(r.profile);
        return r;
      }
    }
    const back = await new Audited("q").withStorage(storage).load();
    expect(back.n).toBe(1);
    expect(seen).toEqual(["memory"]);
  });
});
