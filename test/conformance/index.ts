/**
 * The one operator conformance suite. Every driver's test file calls
 * `describeOperatorConformance` with a factory for a real backend; the suite
 * branches on `capabilities`, never on the scheme name.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ClosedError, InvalidKeyError, NotFoundError, UnsupportedError } from "../../src/errors.js";
import type { Operator } from "../../src/operators/types.js";

export interface ConformanceTarget {
  /** Shown in every test name, e.g. "sqlite". */
  name: string;
  /** A fresh operator on a real backend. Backends may be shared between calls: tests use random key prefixes. */
  create(): Promise<Operator>;
  /** Called once after the suite. */
  teardown?(): Promise<void>;
  /**
   * Known limits of the *server* under test (not of our driver), each with the
   * reason. The affected test prints the reason loudly and checks what still holds.
   */
  serverLimitations?: {
    /** Concurrent PUTs of one key can interleave their bytes (s3rver writes objects in place). */
    tornConcurrentOverwrite?: string;
  };
}

export const HOSTILE_KEYS: unknown[] = [
  "",
  "/etc/passwd",
  "../escape.json",
  "a/../../escape.json",
  "a/./b",
  "./a",
  "a//b",
  "a/",
  "nul\0byte",
  "back\\slash",
  "x".repeat(2000),
  null,
  undefined,
  42,
];

export function describeOperatorConformance(target: ConformanceTarget): void {
  describe(`operator conformance: ${target.name}`, () => {
    const open: Operator[] = [];
    const fresh = async () => {
      const op = await target.create();
      open.push(op);
      return op;
    };
    // Each test writes under its own random prefix, so shared backends do not interfere.
    const prefix = () => `conf-${randomUUID().slice(0, 8)}`;

    afterEach(async () => {
      for (const op of open.splice(0)) await op.close().catch(() => {});
    });
    if (target.teardown) {
      const td = target.teardown;
      afterAll(td);
    }

    it(`[${target.name}] reports its capabilities as data`, async () => {
      const op = await fresh();
      expect(typeof op.scheme).toBe("string");
      for (const cap of ["list", "lastModified", "durable", "shared", "syncRead"] as const) {
        expect(typeof op.capabilities[cap]).toBe("boolean");
      }
    });

    it(`[${target.name}] round-trips UTF-8 strings and returns bytes`, async () => {
      const op = await fresh();
      const key = `${prefix()}/utf8.json`;
      const text = JSON.stringify({ name: "Café ☕ 日本語 🚀", n: 1 });
      await op.write(key, text);
      const back = await op.read(key);
      expect(back).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(back).toString("utf8")).toBe(text);
    });

    it(`[${target.name}] round-trips every byte value`, async () => {
      const op = await fresh();
      const key = `${prefix()}/binary.bin`;
      const bytes = new Uint8Array(256 * 4);
      for (let i = 0; i < bytes.length; i++) bytes[i] = i % 256;
      await op.write(key, bytes);
      expect(Buffer.from(await op.read(key)).equals(Buffer.from(bytes))).toBe(true);
    });

    it(`[${target.name}] does not alias the caller's buffer`, async () => {
      const op = await fresh();
      const key = `${prefix()}/alias.bin`;
      const bytes = new Uint8Array([1, 2, 3, 4]);
      await op.write(key, bytes);
      bytes[0] = 99;
      const back = await op.read(key);
      expect(Array.from(back)).toEqual([1, 2, 3, 4]);
      back[1] = 77;
      expect(Array.from(await op.read(key))).toEqual([1, 2, 3, 4]);
      // A Buffer too (Buffer#slice is a view, not a copy).
      const buf = Buffer.from([5, 6, 7]);
      await op.write(key, buf);
      buf[0] = 99;
      expect(Array.from(await op.read(key))).toEqual([5, 6, 7]);
    });

    it(`[${target.name}] batched reads and digests, where offered: in order, absent keys undefined, digests of the bytes`, async () => {
      const op = await fresh();
      const { batchSize, digest } = op.capabilities;
      expect(op.readMany === undefined).toBe(batchSize === undefined);
      expect(op.digestMany !== undefined).toBe(digest?.source === "keys");
      expect(op.listDigests !== undefined).toBe(digest?.source === "listing");
      const p = prefix();
      // More keys than one call carries (the driver splits), absent ones between, bytes of every value, one empty.
      const n = Math.min((batchSize ?? 8) + 3, 1100);
      const keys = Array.from({ length: n }, (_, i) => `${p}/m/${String(i).padStart(4, "0")}.bin`);
      const values = keys.map((_, i) =>
        i % 5 === 2 ? undefined : i === 7 ? new Uint8Array() : randomBytes(1 + (i % 300)),
      );
      await Promise.all(keys.map((k, i) => (values[i] ? op.write(k, values[i]!) : undefined)));
      if (op.readMany) {
        const got = await op.readMany([...keys, keys[0]!]);
        expect(got).toHaveLength(n + 1);
        got.forEach((v, i) => {
          const want = values[i % n];
          if (want === undefined) expect(v).toBeUndefined();
          else expect(Buffer.from(v!).equals(Buffer.from(want))).toBe(true);
        });
        expect(await op.readMany([])).toEqual([]);
      }
      if (op.readManyStored) {
        // Text only where it stands for the bytes exactly (random bytes are mostly invalid UTF-8).
        const got = await op.readManyStored(keys);
        got.forEach((v, i) => {
          const want = values[i];
          if (want === undefined) {
            expect(v).toBeUndefined();
            return;
          }
          const bytes = typeof v!.data === "string" ? Buffer.from(v!.data, "utf8") : Buffer.from(v!.data);
          expect(bytes.equals(Buffer.from(want)), keys[i]).toBe(true);
          expect(v!.size).toBe(want.length);
        });
      }
      const hex = (v: Uint8Array | undefined) => v && createHash(digest!.algorithm).update(v).digest("hex");
      if (op.digestMany) {
        expect(await op.digestMany(keys)).toEqual(values.map(hex));
      }
      if (op.listDigests) {
        const listed = await op.listDigests(`${p}/m/`);
        expect([...listed.keys()].sort()).toEqual(keys.filter((_, i) => values[i]));
        for (const [k, d] of listed) expect(d).toBe(hex(values[keys.indexOf(k)]));
      }
    });

    it(`[${target.name}] writeSync, where offered, stores exactly what write does`, async () => {
      const op = await fresh();
      if (!op.writeSync) return;
      const key = `${prefix()}/sync.bin`;
      op.writeSync(key, new Uint8Array([1, 2, 3]));
      expect(Array.from(await op.read(key))).toEqual([1, 2, 3]);
      op.writeSync(key, "text");
      expect(Buffer.from(await op.read(key)).toString()).toBe("text");
      expect(() => op.writeSync!("../x", "1")).toThrow(InvalidKeyError);
    });

    it(`[${target.name}] overwrites, including with a shorter value`, async () => {
      const op = await fresh();
      const key = `${prefix()}/over.json`;
      await op.write(key, "a much longer first value");
      await op.write(key, "short");
      expect(Buffer.from(await op.read(key)).toString()).toBe("short");
      expect((await op.stat(key)).contentLength).toBe(5);
    });

    it(`[${target.name}] stores a 0-byte value`, async () => {
      const op = await fresh();
      const key = `${prefix()}/empty`;
      await op.write(key, new Uint8Array(0));
      expect((await op.read(key)).length).toBe(0);
      expect(await op.exists(key)).toBe(true);
      expect((await op.stat(key)).contentLength).toBe(0);
    });

    it(`[${target.name}] stores a 5 MiB value`, async () => {
      const op = await fresh();
      const key = `${prefix()}/large.bin`;
      const big = randomBytes(5 * 1024 * 1024);
      await op.write(key, big);
      const back = await op.read(key);
      expect(back.length).toBe(big.length);
      expect(Buffer.from(back).equals(big)).toBe(true);
      expect((await op.stat(key)).contentLength).toBe(big.length);
    });

    it(`[${target.name}] stat gives the size (and a sane mtime where capable)`, async () => {
      const op = await fresh();
      const key = `${prefix()}/stat.json`;
      const before = Date.now() - 5_000;
      await op.write(key, "12345678");
      const st = await op.stat(key);
      expect(st.contentLength).toBe(8);
      if (op.capabilities.lastModified) {
        expect(st.lastModified).toBeInstanceOf(Date);
        expect(st.lastModified!.getTime()).toBeGreaterThan(before);
        expect(st.lastModified!.getTime()).toBeLessThan(Date.now() + 60_000);
      }
    });

    it(`[${target.name}] a missing key is a typed NotFoundError for read and stat`, async () => {
      const op = await fresh();
      const key = `${prefix()}/missing.json`;
      await expect(op.read(key)).rejects.toBeInstanceOf(NotFoundError);
      await expect(op.read(key)).rejects.toMatchObject({ code: "E_NOT_FOUND" });
      await expect(op.stat(key)).rejects.toBeInstanceOf(NotFoundError);
      expect(await op.exists(key)).toBe(false);
      if (op.readSync) expect(op.readSync(key)).toBeUndefined();
    });

    it(`[${target.name}] delete removes, and deleting a missing key succeeds`, async () => {
      const op = await fresh();
      const key = `${prefix()}/del.json`;
      await op.write(key, "x");
      expect(await op.exists(key)).toBe(true);
      await op.delete(key);
      expect(await op.exists(key)).toBe(false);
      await expect(op.read(key)).rejects.toBeInstanceOf(NotFoundError);
      await op.delete(key);
      await op.delete(`${prefix()}/never-existed.json`);
    });

    it(`[${target.name}] nested keys like conversations/index.json work`, async () => {
      const op = await fresh();
      const p = prefix();
      await op.write(`${p}/conversations/index.json`, "[]");
      await op.write(`${p}/conversations/abc.json`, "{}");
      expect(Buffer.from(await op.read(`${p}/conversations/index.json`)).toString()).toBe("[]");
      await op.delete(`${p}/conversations/abc.json`);
      expect(await op.exists(`${p}/conversations/index.json`)).toBe(true);
    });

    it(`[${target.name}] list(prefix) returns every key under it, sorted, or says it cannot`, async () => {
      const op = await fresh();
      const p = prefix();
      const keys = [`${p}/a.json`, `${p}/b/c.json`, `${p}/b/d/e.json`, `${p}x/other.json`];
      for (const k of keys) await op.write(k, "1");
      if (!op.capabilities.list) {
        await expect(op.list(`${p}/`)).rejects.toBeInstanceOf(UnsupportedError);
        return;
      }
      expect(await op.list(`${p}/`)).toEqual([`${p}/a.json`, `${p}/b/c.json`, `${p}/b/d/e.json`]);
      expect(await op.list(`${p}/b/`)).toEqual([`${p}/b/c.json`, `${p}/b/d/e.json`]);
      const all = await op.list(p);
      expect(all).toEqual([...keys].sort());
      expect(await op.list(`${p}/nothing-here/`)).toEqual([]);
      await op.delete(`${p}/a.json`);
      expect(await op.list(`${p}/`)).not.toContain(`${p}/a.json`);
    });

    it(`[${target.name}] 200 concurrent writes all land`, async () => {
      const op = await fresh();
      const p = prefix();
      await Promise.all(Array.from({ length: 200 }, (_, i) => op.write(`${p}/k${i}.json`, JSON.stringify({ i }))));
      const back = await Promise.all(Array.from({ length: 200 }, (_, i) => op.read(`${p}/k${i}.json`)));
      back.forEach((b, i) => {
        expect(JSON.parse(Buffer.from(b).toString())).toEqual({ i });
      });
    });

    it(`[${target.name}] concurrent writes to one key leave one whole value`, async () => {
      const op = await fresh();
      const key = `${prefix()}/same.json`;
      const values = Array.from({ length: 20 }, (_, i) => JSON.stringify({ i, pad: "x".repeat(1000 + i) }));
      const torn = target.serverLimitations?.tornConcurrentOverwrite;
      if (torn) {
        console.warn(`\n!!! ${target.name}: concurrent same-key overwrite NOT checked: ${torn} !!!\n`);
        // What still holds: overwrites in sequence leave the last whole value.
        for (const v of values) await op.write(key, v);
        expect(Buffer.from(await op.read(key)).toString()).toBe(values.at(-1));
        return;
      }
      await Promise.all(values.map((v) => op.write(key, v)));
      const back = Buffer.from(await op.read(key)).toString();
      expect(values).toContain(back);
    });

    it(`[${target.name}] rejects hostile keys with InvalidKeyError before any I/O`, async () => {
      const op = await fresh();
      for (const bad of HOSTILE_KEYS) {
        const k = bad as string;
        await expect(op.write(k, "pwned"), `write ${JSON.stringify(bad)}`).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(op.read(k), `read ${JSON.stringify(bad)}`).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(op.stat(k)).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(op.delete(k)).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(op.exists(k)).rejects.toBeInstanceOf(InvalidKeyError);
        if (op.readSync) expect(() => op.readSync!(k)).toThrow(InvalidKeyError);
      }
      await expect(op.list("../")).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(op.list("/abs")).rejects.toBeInstanceOf(InvalidKeyError);
    });

    it(`[${target.name}] after close() every call is a ClosedError`, async () => {
      const op = await target.create();
      const key = `${prefix()}/closed.json`;
      await op.write(key, "1");
      await op.close();
      await expect(op.read(key)).rejects.toBeInstanceOf(ClosedError);
      await expect(op.write(key, "2")).rejects.toBeInstanceOf(ClosedError);
      await expect(op.stat(key)).rejects.toBeInstanceOf(ClosedError);
      await expect(op.delete(key)).rejects.toBeInstanceOf(ClosedError);
      await op.close(); // idempotent
    });
  });
}
