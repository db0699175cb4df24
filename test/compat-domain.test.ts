/**
 * The domain types against the SQLite store the Rust crate wrote
 * (compat/rust-sqlite-store): Rust's Document and Thesaurus load through the
 * tiers, re-serialize to byte-identical JSON, and what we write over 1 MiB is
 * stored as Rust stores it (`ZSTD` + a zstd frame).
 */
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isCompressed, maybeDecompress } from "../src/codec.js";
import { Document } from "../src/domain/document.js";
import { Thesaurus } from "../src/domain/thesaurus.js";
import { silentLogger } from "../src/logger.js";
import { DeviceStorage } from "../src/storage/device-storage.js";

interface Expected {
  sha256_of_json: string;
  json_bytes: number;
  compressed: boolean;
  id_or_name: string;
}

const storeDir = resolve(__dirname, "../../shared/compat/rust-sqlite-store");
const expected = JSON.parse(readFileSync(join(storeDir, "expected.json"), "utf8")) as Record<string, Expected>;
const sha256 = (data: Uint8Array | string): string => createHash("sha256").update(data).digest("hex");

const DOC_KEY = "document_test_document_123.json";
const LARGE_KEY = "document_large_test_doc.json";
const THESAURUS_KEY = "thesaurus_test_engineer.json";

let dir: string;
let storage: DeviceStorage;

beforeEach(async () => {
  // Tests must not touch shared/: work on a copy.
  dir = mkdtempSync(join(tmpdir(), "compat-domain-"));
  const file = join(dir, "terraphim.db");
  copyFileSync(join(storeDir, "terraphim.db"), file);
  storage = await DeviceStorage.fromSettings(
    {
      profiles: {
        memory: { type: "memory", speed: "1" },
        sqlite: { type: "sqlite", datadir: dir, connection_string: file, speed: "100" },
      },
    },
    { logger: silentLogger },
  );
});

afterEach(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The JSON text Rust stored under `key`, read raw from the sqlite profile. */
async function rustJson(key: string): Promise<string> {
  const raw = await storage.ops.get("sqlite")!.op.read(key);
  return Buffer.from(maybeDecompress(raw)).toString("utf8");
}

describe("Rust-written domain values load through the tiers", () => {
  const cases = [
    { key: DOC_KEY, make: () => new Document("test-document-123") },
    { key: LARGE_KEY, make: () => new Document("large-test-doc") },
    { key: THESAURUS_KEY, make: () => new Thesaurus("Test Engineer") },
  ];

  for (const { key, make } of cases) {
    it(`${key}: sqlite first, then memory after write-back; JSON byte-identical`, async () => {
      const want = expected[key]!;
      const item = make();
      expect(item.getKey()).toBe(key);

      const first = await item.withStorage(storage).loadWithSource();
      expect(first.profile).toBe("sqlite");
      expect(first.writeBack).toBe(true);
      expect(first.value).toBeInstanceOf(item.constructor);

      // Our serialization of the loaded value is exactly the JSON Rust wrote.
      const ours = JSON.stringify(first.value);
      expect(Buffer.byteLength(ours)).toBe(want.json_bytes);
      expect(sha256(ours)).toBe(want.sha256_of_json);
      expect(ours).toBe(await rustJson(key));
      // ... and every field equals the stored JSON.
      expect(JSON.parse(ours)).toEqual(JSON.parse(await rustJson(key)));

      await storage.flush();
      expect(await storage.ops.get("memory")!.op.exists(key)).toBe(true);
      const second = await make().withStorage(storage).loadWithSource();
      expect(second.profile).toBe("memory");
      expect(second.writeBack).toBe(false);
      expect(sha256(JSON.stringify(second.value))).toBe(want.sha256_of_json);
    });
  }

  it("the Rust document's fields", async () => {
    const doc = await new Document("test-document-123").withStorage(storage).load();
    expect(doc.title).toBe("Test Document");
    expect(doc.body).toBe("Body of the test document, ünïcode ✓.");
    expect(doc.description).toBe("test description");
    expect(doc.summarization).toBeNull();
    expect(doc.tags).toEqual(["test", "persistence"]);
    expect(doc.rank).toBe(100);
    expect(doc.doc_type).toBe("kg_entry");
    expect(doc.route).toBeNull();
    expect(doc.getKey()).toBe(DOC_KEY);

    const large = await new Document("large-test-doc").withStorage(storage).load();
    expect(large.description).toBe("over 1 MiB");
    expect(large.body.length).toBeGreaterThan(1_000_000);
  });

  it("the Rust thesaurus's terms, in stored order", async () => {
    const t = await new Thesaurus("Test Engineer").withStorage(storage).load();
    expect(t.name).toBe("Test Engineer");
    expect(t.size).toBe(2);
    expect([...t.keys()]).toEqual(["ml", "ai"]);
    expect(t.get("ML")).toEqual({ id: 1, nterm: "machine learning", pinned: false });
    expect(t.get("ai")).toEqual({
      id: 2,
      nterm: "artificial intelligence",
      url: "https://example.com/ai",
      pinned: true,
    });
    expect(t.source_hash).toBeNull();
  });

  it("a Document built in TypeScript with the Rust fields serializes to the Rust bytes", async () => {
    const doc = new Document("test-document-123", {
      url: "https://example.com/test-document-123",
      title: "Test Document",
      body: "Body of the test document, ünïcode ✓.",
      description: "test description",
      tags: ["test", "persistence"],
      rank: 100,
    });
    expect(sha256(JSON.stringify(doc))).toBe(expected[DOC_KEY]!.sha256_of_json);
  });
});

describe("values we write are stored as Rust stores them", () => {
  it("a document over 1 MiB is stored as ZSTD + frame and decodes by the Rust rules", async () => {
    const body = Array.from({ length: 40_000 }, (_, i) => `line ${i} of a large body ✓`).join("\n");
    const doc = new Document("TS Large Doc", { title: "Large from TS", body, doc_type: "document" });
    await doc.withStorage(storage).save();

    const key = "document_ts_large_doc.json";
    const json = JSON.stringify(doc);
    expect(Buffer.byteLength(json)).toBeGreaterThanOrEqual(1_048_576);
    for (const profile of ["sqlite", "memory"]) {
      const raw = await storage.ops.get(profile)!.op.read(key);
      expect(isCompressed(raw), profile).toBe(true);
      expect(Buffer.from(raw.subarray(0, 4)).toString("latin1")).toBe("ZSTD");
      // zstd frame magic after the header
      expect([...raw.subarray(4, 8)]).toEqual([0x28, 0xb5, 0x2f, 0xfd]);
      expect(raw.length).toBeLessThan(json.length);
      // Rust: maybe_decompress, then serde_json::from_slice.
      const text = Buffer.from(maybeDecompress(raw)).toString("utf8");
      expect(text).toBe(json);
      expect(JSON.parse(text)).toEqual(JSON.parse(json));
    }
    const back = await new Document("TS Large Doc").withStorage(storage).load();
    expect(back.body).toBe(body);
  });

  it("a small document is stored as its plain JSON, every Rust field present", async () => {
    const doc = new Document("small one", { title: "t" });
    await doc.withStorage(storage).saveToProfile("sqlite");
    const raw = await storage.ops.get("sqlite")!.op.read("document_small_one.json");
    expect(isCompressed(raw)).toBe(false);
    expect(Buffer.from(raw).toString("utf8")).toBe(
      '{"id":"small one","url":"","title":"t","body":"","description":null,"summarization":null,"stub":null,"tags":null,"rank":null,"source_haystack":null,"doc_type":"kg_entry","synonyms":null,"route":null,"priority":null}',
    );
  });
});
