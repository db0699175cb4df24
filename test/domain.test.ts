import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import {
  addMessage,
  CONVERSATION_INDEX_KEY,
  type Conversation,
  conversationKey,
  createChatMessage,
  createConversation,
  summarizeConversation,
} from "../src/domain/conversation.js";
import { ConversationStore } from "../src/domain/conversation-store.js";
import { Document, documentSchema, loadDocumentsByIds } from "../src/domain/document.js";
import { createNormalizedTerm, Thesaurus, thesaurusSchema } from "../src/domain/thesaurus.js";
import { BackendError, DeserializeError, InvalidKeyError, NotFoundError, PersistenceError } from "../src/errors.js";
import { silentLogger } from "../src/logger.js";
import { createOperator } from "../src/operators/index.js";
import type { Operator } from "../src/operators/types.js";
import { chaosOperator } from "../src/operators/wrappers/chaos.js";
import { DeviceStorage } from "../src/storage/device-storage.js";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-domain-"));
  dirs.push(d);
  return d;
};
const open: DeviceStorage[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const opts = { logger: silentLogger };
const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** memory (speed 1) over sqlite (speed 100), both wrapped in the chaos operator. */
async function twoTier(faults: Parameters<typeof chaosOperator>[1] = {}) {
  const memory = chaosOperator(await createOperator("memory"));
  const sqlite = chaosOperator(await createOperator("sqlite", { datadir: tempDir() }), faults);
  const storage = await DeviceStorage.fromOperators(
    [
      { name: "memory", op: memory, speed: 1 },
      { name: "sqlite", op: sqlite, speed: 100 },
    ],
    opts,
  );
  open.push(storage);
  return { memory, sqlite, storage };
}

/** Wraps an operator to count reads in flight (each read takes `delayMs` more). */
function countingOperator(inner: Operator, delayMs: number) {
  const counts = { inFlight: 0, max: 0, reads: 0 };
  const op: Operator = {
    scheme: inner.scheme,
    capabilities: { ...inner.capabilities, syncRead: false },
    read: async (p) => {
      counts.reads++;
      counts.inFlight++;
      counts.max = Math.max(counts.max, counts.inFlight);
      try {
        await sleep(delayMs);
        return await inner.read(p);
      } finally {
        counts.inFlight--;
      }
    },
    write: (p, d) => inner.write(p, d),
    stat: (p) => inner.stat(p),
    delete: (p) => inner.delete(p),
    exists: (p) => inner.exists(p),
    list: (p) => inner.list(p),
    close: () => inner.close(),
  };
  return { op, counts };
}

const validate = <T>(schema: { "~standard": { validate(v: unknown): unknown } }, v: unknown) =>
  schema["~standard"].validate(v) as { value?: T; issues?: { message: string; path?: PropertyKey[] }[] };

describe("keys", () => {
  it("document_<normalized id>.json and thesaurus_<normalized name>.json, as Rust", () => {
    const cases: [string, string][] = [
      ["simple", "document_simple.json"],
      ["Simple Document", "document_simple_document.json"],
      ["Doc-with-Dashes_123", "document_doc_with_dashes_123.json"],
      ["Doc@Special#Chars!", "document_doc_special_chars.json"],
      ["UPPERCASE_DOC", "document_uppercase_doc.json"],
      ["http://example.com/doc", "document_http_example_com_doc.json"],
      ["file:///path/to/document.txt", "document_file_path_to_document_txt.json"],
      ["Café Menu", "document_caf_menu.json"],
      ["../../etc/passwd", "document_etc_passwd.json"],
      ["!!!", "document_fallback_45937481e8a9a212.json"],
    ];
    for (const [id, key] of cases) expect(new Document(id).getKey(), id).toBe(key);
    expect(new Thesaurus("Test Engineer").getKey()).toBe("thesaurus_test_engineer.json");
    expect(new Thesaurus("  ").getKey()).toMatch(/^thesaurus_fallback_[0-9a-f]+\.json$/);
  });

  it("conversations/<id>.json; hostile ids are InvalidKeyError", () => {
    expect(conversationKey("3f1c-uuid")).toBe("conversations/3f1c-uuid.json");
    expect(conversationKey("index")).toBe("conversations/index.json"); // as Rust: no reserved ids
    for (const id of ["", "a/b", "..", "../x", "x/..", "a..b", "a\0b", "a\\b", "/abs", "x".repeat(2000)]) {
      expect(() => conversationKey(id), JSON.stringify(id)).toThrow(InvalidKeyError);
    }
    expect(() => conversationKey(undefined as unknown as string)).toThrow(InvalidKeyError);
  });
});

describe("Document schema (serde rules)", () => {
  const full = {
    id: "d",
    url: "u",
    title: "t",
    body: "b",
    description: null,
    summarization: "s",
    stub: null,
    tags: ["a"],
    rank: 7,
    source_haystack: null,
    doc_type: "document",
    synonyms: null,
    route: { provider: "p", model: "m" },
    priority: 3,
  };

  it("Option fields may be missing; defaults as serde's", () => {
    const r = validate<Document>(documentSchema, { id: "d", url: "", title: "", body: "" });
    expect(r.issues).toBeUndefined();
    expect(r.value).toMatchObject({ description: null, tags: null, rank: null, doc_type: "kg_entry", route: null });
    const f = validate<Document>(documentSchema, { ...full, extra: 1, quality_score: { knowledge: 0.5 } });
    expect(f.issues).toBeUndefined();
    expect(f.value!.route).toEqual({ provider: "p", model: "m", action: null, is_free: false });
    expect(f.value!.quality_score).toEqual({ knowledge: 0.5, logic: null, structure: null, last_evaluated: null });
    expect(f.value).not.toHaveProperty("extra");
  });

  it("missing required fields and wrong types are issues", () => {
    const bad: [unknown, string][] = [
      [{ ...full, body: undefined }, "body"],
      [{ ...full, title: null }, "title"],
      [{ ...full, tags: "a" }, "tags"],
      [{ ...full, tags: [1] }, "tags"],
      [{ ...full, rank: -1 }, "rank"],
      [{ ...full, rank: 1.5 }, "rank"],
      [{ ...full, priority: 256 }, "priority"],
      [{ ...full, doc_type: "KgEntry" }, "doc_type"],
      [{ ...full, doc_type: null }, "doc_type"],
      [{ ...full, route: { provider: "p" } }, "route"],
      [{ ...full, quality_score: { last_evaluated: "yesterday" } }, "quality_score"],
      [[], ""],
      ["x", ""],
      [null, ""],
    ];
    for (const [value, where] of bad) {
      const r = validate(documentSchema, value);
      expect(r.issues, JSON.stringify(value)).toBeDefined();
      if (where) expect(r.issues![0]!.path![0]).toBe(where);
    }
    const missing = validate(documentSchema, { id: "d" });
    expect(missing.issues!.map((i) => i.message)).toEqual([
      "missing field `url`",
      "missing field `title`",
      "missing field `body`",
    ]);
  });

  it("toJSON: Rust field order, null for unset options, quality_score only when set", () => {
    const d = new Document("x", {
      quality_score: { knowledge: 1, logic: null, structure: 0.25, last_evaluated: null },
    });
    expect(Object.keys(JSON.parse(JSON.stringify(d)))).toEqual([
      "id",
      "url",
      "title",
      "body",
      "description",
      "summarization",
      "stub",
      "tags",
      "rank",
      "source_haystack",
      "doc_type",
      "synonyms",
      "route",
      "priority",
      "quality_score",
    ]);
    expect(JSON.stringify(new Document("x"))).not.toContain("quality_score");
  });
});

describe("Document persistence", () => {
  it("round trip through both tiers", async () => {
    const { storage, sqlite } = await twoTier();
    const doc = new Document("Doc 1", {
      title: "T",
      body: "B",
      tags: ["x"],
      route: { provider: "p", model: "m", action: "run", is_free: true },
    });
    await doc.withStorage(storage).save();
    expect(text(await sqlite.inner.read("document_doc_1.json"))).toBe(JSON.stringify(doc));
    const back = await new Document("Doc 1").withStorage(storage).load();
    expect(back).toBeInstanceOf(Document);
    expect(back.toJSON()).toEqual(doc.toJSON());
    await back.delete();
    await expect(new Document("Doc 1").withStorage(storage).load()).rejects.toBeInstanceOf(NotFoundError);
  });

  it("schema evolution: an old-shape value in the cache is replaced from sqlite", async () => {
    const { storage, memory } = await twoTier();
    const doc = new Document("evolve", { title: "new", body: "current" });
    await doc.withStorage(storage).save();
    // The cache holds a value from an older version: no `body`, an unknown field.
    await memory.inner.write(
      "document_evolve.json",
      JSON.stringify({ id: "evolve", url: "", title: "old", legacy: 1 }),
    );

    const r = await new Document("evolve").withStorage(storage).loadWithSource();
    expect(r.profile).toBe("sqlite");
    expect(r.writeBack).toBe(true);
    expect(r.value.body).toBe("current");
    await storage.flush();
    expect(JSON.parse(text(await memory.inner.read("document_evolve.json")))).toEqual(doc.toJSON());
    expect((await new Document("evolve").withStorage(storage).loadWithSource()).profile).toBe("memory");
  });

  it("a value that fits nowhere is a DeserializeError, not NotFound", async () => {
    const { storage, memory, sqlite } = await twoTier();
    await memory.inner.write("document_bad.json", JSON.stringify({ id: "bad", url: 1 }));
    await sqlite.inner.write("document_bad.json", JSON.stringify({ id: "bad", url: "", title: "", body: 5 }));
    const err = await new Document("bad")
      .withStorage(storage)
      .load()
      .catch((e) => e);
    expect(err).toBeInstanceOf(DeserializeError);
    // Nothing was overwritten.
    expect(JSON.parse(text(await sqlite.inner.read("document_bad.json"))).body).toBe(5);
  });
});

describe("Thesaurus", () => {
  it("insert/get/size and the Rust JSON, round trip", async () => {
    const { storage, sqlite } = await twoTier();
    const t = new Thesaurus("Engineer");
    t.insert(" ML ", createNormalizedTerm(1, "Machine Learning"));
    t.insert("ai", {
      id: 2,
      nterm: "artificial intelligence",
      pinned: true,
      trigger: "t",
      priority: 5,
      action: null,
      url: "https://x",
      display_value: "Artificial Intelligence",
    });
    t.insert("__proto__", createNormalizedTerm(3, "proto"));
    expect(t.size).toBe(3);
    expect(t.len()).toBe(3);
    expect(t.isEmpty()).toBe(false);
    expect(t.get("ml")).toEqual({ id: 1, nterm: "machine learning", pinned: false });
    await t.withStorage(storage).save();

    expect(text(await sqlite.inner.read("thesaurus_engineer.json"))).toBe(
      '{"name":"Engineer","data":{"ml":{"id":1,"nterm":"machine learning","pinned":false},' +
        '"ai":{"id":2,"nterm":"artificial intelligence","display_value":"Artificial Intelligence","url":"https://x","priority":5,"trigger":"t","pinned":true},' +
        '"__proto__":{"id":3,"nterm":"proto","pinned":false}}}',
    );
    const back = await new Thesaurus("Engineer").withStorage(storage).load();
    expect(back).toBeInstanceOf(Thesaurus);
    expect([...back]).toEqual([...t].map(([k, v]) => [k, JSON.parse(JSON.stringify(v, (_k, x) => x ?? undefined))]));
    expect(back.get("__proto__")?.id).toBe(3);
    expect(Object.getPrototypeOf(back.data)).toBe(Map.prototype);
    expect(JSON.stringify(back)).toBe(JSON.stringify(t));

    back.source_hash = "abc";
    expect(JSON.parse(JSON.stringify(back)).source_hash).toBe("abc");
  });

  it("schema: name/data and each term's id/nterm required; null options dropped", () => {
    expect(validate(thesaurusSchema, { name: "n" }).issues?.[0]?.message).toBe("missing field `data`");
    expect(validate(thesaurusSchema, { name: "n", data: { a: { id: 1 } } }).issues?.[0]?.path).toEqual([
      "data",
      "a",
      "nterm",
    ]);
    expect(validate(thesaurusSchema, { name: "n", data: { a: { id: -1, nterm: "a" } } }).issues).toBeDefined();
    const ok = validate<{ data: Map<string, unknown> }>(thesaurusSchema, {
      name: "n",
      data: { a: { id: 1, nterm: "a", url: null, x: 1 } },
      source_hash: null,
    });
    expect(ok.issues).toBeUndefined();
    expect(ok.value!.data.get("a")).toEqual({ id: 1, nterm: "a", pinned: false });
  });
});

describe("loadDocumentsByIds", () => {
  async function setup(delayMs = 3) {
    const memory = await createOperator("memory");
    const counted = countingOperator(await createOperator("sqlite", { datadir: tempDir() }), delayMs);
    const storage = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: memory, speed: 1 },
        { name: "sqlite", op: counted.op, speed: 100 },
      ],
      opts,
    );
    open.push(storage);
    const ids = Array.from({ length: 200 }, (_, i) => `Doc ${String(i).padStart(3, "0")}`);
    // Every 4th id is missing; the others live only in sqlite, so every load reads it.
    for (const [i, id] of ids.entries()) {
      if (i % 4 !== 3) await new Document(id, { title: `title ${i}` }).withStorage(storage).saveToProfile("sqlite");
    }
    counted.counts.max = 0;
    counted.counts.reads = 0;
    return { storage, ids, counts: counted.counts, memory };
  }

  it("200 ids, some missing: input order, bounded concurrency, missing reported", async () => {
    const { storage, ids, counts } = await setup();
    const reversed = [...ids].reverse();
    const r = await loadDocumentsByIds(reversed, { storage, concurrency: 8 });
    expect(r.documents.map((d) => d.id)).toEqual(reversed.filter((_, i) => (199 - i) % 4 !== 3));
    expect(r.documents.length).toBe(150);
    expect(r.missing).toEqual(reversed.filter((_, i) => (199 - i) % 4 === 3));
    expect(r.failed).toEqual([]);
    expect(r.documents[0]).toBeInstanceOf(Document);
    expect(r.documents[0]!.title).toBe("title 198");
    expect(counts.reads).toBe(200);
    expect(counts.max).toBeLessThanOrEqual(8);
    expect(counts.max).toBeGreaterThanOrEqual(4); // it did run in parallel
  });

  it("default concurrency is 16", async () => {
    const { storage, ids, counts } = await setup();
    const r = await loadDocumentsByIds(ids, { storage });
    expect(r.documents.length).toBe(150);
    expect(counts.max).toBeLessThanOrEqual(16);
    expect(counts.max).toBeGreaterThan(8);
  });

  it("a corrupt value or a failing backend is reported in `failed`, never hidden", async () => {
    const { storage, memory, sqlite } = await twoTier();
    await new Document("good").withStorage(storage).save();
    await new Document("cold", { title: "only in sqlite" }).withStorage(storage).saveToProfile("sqlite");
    await sqlite.inner.write("document_corrupt.json", "{not json");
    let r = await loadDocumentsByIds(["good", "corrupt", "absent", "cold"], { storage, concurrency: 2 });
    expect(r.documents.map((d) => d.id)).toEqual(["good", "cold"]);
    expect(r.missing).toEqual(["absent"]);
    expect(r.failed.map((f) => f.id)).toEqual(["corrupt"]);
    expect(r.failed[0]!.error).toBeInstanceOf(DeserializeError);

    sqlite.faults.fail = ["read"];
    await memory.inner.delete("document_cold.json");
    r = await loadDocumentsByIds(["good", "cold", "absent"], { storage });
    expect(r.documents.map((d) => d.id)).toEqual(["good"]);
    expect(r.missing).toEqual([]); // absence is not certain when a profile failed
    expect(r.failed.map((f) => f.id)).toEqual(["cold", "absent"]);
    for (const f of r.failed) expect(f.error).toBeInstanceOf(BackendError);
  });

  it("empty input, duplicates, bad options", async () => {
    const { storage } = await twoTier();
    await new Document("a").withStorage(storage).save();
    expect(await loadDocumentsByIds([], { storage })).toEqual({ documents: [], missing: [], failed: [] });
    const r = await loadDocumentsByIds(["a", "A", "a"], { storage });
    expect(r.documents.map((d) => d.id)).toEqual(["a", "a", "a"]); // "A" normalizes to the same key
    for (const concurrency of [0, -1, 1.5, Number.NaN]) {
      await expect(loadDocumentsByIds(["a"], { storage, concurrency })).rejects.toBeInstanceOf(PersistenceError);
    }
    await expect(loadDocumentsByIds([1 as unknown as string], { storage })).rejects.toThrow(/ids\[0\]/);
    await storage.close();
    await expect(loadDocumentsByIds(["a", "b"], { storage })).rejects.toMatchObject({ code: "E_CLOSED" });
  });
});

function fixedConversation(id: string, updated = "2026-01-02T03:04:05.123456789Z"): Conversation {
  return {
    id,
    title: `Conversation ${id}`,
    messages: [
      {
        id: "m1",
        role: "user",
        content: "Hello, world!",
        context_items: [
          {
            id: "c1",
            context_type: "Document",
            title: "ctx",
            summary: null,
            content: "body",
            metadata: { source_type: "document" },
            created_at: "2026-01-02T03:04:05Z",
            relevance_score: 0.5,
          },
        ],
        created_at: "2026-01-02T03:04:05.5Z",
        token_count: null,
        model: null,
      },
    ],
    global_context: [],
    role: "Test Role",
    created_at: "2026-01-01T00:00:00Z",
    updated_at: updated,
    metadata: {},
    token_budget: null,
  };
}

describe("ConversationStore", () => {
  it("save / load / exists / listIds / listSummaries / delete", async () => {
    const { storage, sqlite } = await twoTier();
    const store = new ConversationStore(storage);
    expect(await store.listIds()).toEqual([]);
    expect(await store.exists("nope")).toBe(false);
    // Reads never create the index (Rust writes an empty one on first read).
    expect(await sqlite.inner.exists(CONVERSATION_INDEX_KEY)).toBe(false);

    const a = fixedConversation("a", "2026-01-02T03:04:05.000000002Z");
    const b = fixedConversation("b", "2026-01-02T03:04:05.000000010Z");
    const c = addMessage(createConversation("Made here", "Engineer"), createChatMessage("assistant", "hi", "gpt"));
    for (const conv of [a, b, c]) await store.save(conv);

    expect(await store.load("a")).toEqual(a);
    expect(await store.load(c.id)).toEqual(c);
    expect(await store.listIds()).toEqual(["a", "b", c.id]);
    expect(await store.exists("b")).toBe(true);
    const summaries = await store.listSummaries();
    // c is the newest; b is newer than a by 8 ns (Date would not see it).
    expect(summaries.map((s) => s.id)).toEqual([c.id, "b", "a"]);
    expect(summaries[1]).toEqual(summarizeConversation(b));
    expect(summaries[1]).toMatchObject({ message_count: 1, context_count: 1, preview: "Hello, world!" });
    expect(summaries[0]!.preview).toBeNull();

    await store.delete("b");
    expect(await store.exists("b")).toBe(false);
    expect(await store.listIds()).toEqual(["a", c.id]);
    await expect(store.load("b")).rejects.toBeInstanceOf(NotFoundError);
    expect(await sqlite.inner.exists("conversations/b.json")).toBe(false);
    // Deleting an unknown id is fine.
    await store.delete("never-saved");
  });

  it("writes Rust's JSON layout for the conversation and the index", async () => {
    const { storage, sqlite, memory } = await twoTier();
    const store = new ConversationStore(storage);
    const conv = fixedConversation("layout");
    await store.save(conv);
    const raw = text(await sqlite.inner.read("conversations/layout.json"));
    expect(raw).toBe(
      '{"id":"layout","title":"Conversation layout","messages":[{"id":"m1","role":"user","content":"Hello, world!",' +
        '"context_items":[{"id":"c1","context_type":"Document","title":"ctx","summary":null,"content":"body",' +
        '"metadata":{"source_type":"document"},"created_at":"2026-01-02T03:04:05Z","relevance_score":0.5}],' +
        '"created_at":"2026-01-02T03:04:05.5Z","token_count":null,"model":null}],"global_context":[],"role":"Test Role",' +
        '"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T03:04:05.123456789Z","metadata":{},"token_budget":null}',
    );
    expect(text(await memory.inner.read("conversations/layout.json"))).toBe(raw);
    const index = JSON.parse(text(await sqlite.inner.read(CONVERSATION_INDEX_KEY)));
    expect(Object.keys(index)).toEqual(["version", "updated_at", "conversations"]);
    expect(index.version).toBe("1.0.0");
    expect(index.conversations).toEqual({ layout: summarizeConversation(conv) });
    expect(Object.keys(index.conversations.layout)).toEqual([
      "id",
      "title",
      "role",
      "message_count",
      "context_count",
      "created_at",
      "updated_at",
      "preview",
    ]);
  });

  it("reads a Rust-written index and conversation (nanoseconds, missing token_budget, extra fields)", async () => {
    const { storage, sqlite } = await twoTier();
    const rustConv = { ...fixedConversation("rust-1"), token_budget: undefined, future_field: [1] };
    const summary = { ...summarizeConversation(fixedConversation("rust-1")), extra: true };
    await sqlite.inner.write("conversations/rust-1.json", JSON.stringify(rustConv));
    await sqlite.inner.write(
      CONVERSATION_INDEX_KEY,
      JSON.stringify({
        version: "1.0.0",
        updated_at: "2026-01-02T03:04:05.999999999Z",
        conversations: { "rust-1": summary },
      }),
    );
    const store = new ConversationStore(storage);
    expect(await store.listIds()).toEqual(["rust-1"]);
    const r = await store.loadWithSource("rust-1");
    expect(r.profile).toBe("sqlite");
    expect(r.value.token_budget).toBeNull();
    expect(r.value).not.toHaveProperty("future_field");
    // A save keeps the Rust entry and adds ours.
    await store.save(fixedConversation("ts-1"));
    expect((await store.listIds()).sort()).toEqual(["rust-1", "ts-1"]);
  });

  it("a failed index read raises and writes nothing (Rust would write an empty index over it)", async () => {
    const { storage, sqlite, memory } = await twoTier();
    const store = new ConversationStore(storage);
    await store.save(fixedConversation("a"));
    const before = await sqlite.inner.read(CONVERSATION_INDEX_KEY);
    // The cache lost the index, and sqlite cannot be read: absence is not certain.
    await memory.inner.delete(CONVERSATION_INDEX_KEY);
    sqlite.faults.fail = ["read"];

    await expect(store.save(fixedConversation("b"))).rejects.toBeInstanceOf(BackendError);
    await expect(store.delete("a")).rejects.toBeInstanceOf(BackendError);
    await expect(store.listIds()).rejects.toBeInstanceOf(BackendError);
    await storage.flush();

    expect(Buffer.compare(await sqlite.inner.read(CONVERSATION_INDEX_KEY), before)).toBe(0);
    expect(await memory.inner.exists(CONVERSATION_INDEX_KEY)).toBe(false);
    expect(await sqlite.inner.exists("conversations/b.json")).toBe(false);
    expect(await memory.inner.exists("conversations/b.json")).toBe(false);
    expect(await sqlite.inner.exists("conversations/a.json")).toBe(true);

    sqlite.faults.fail = [];
    expect(await store.listIds()).toEqual(["a"]);
  });

  it("a corrupt index is a DeserializeError and nothing is written", async () => {
    for (const corrupt of ["{not json", JSON.stringify({ version: "1.0.0", updated_at: "2026-01-01T00:00:00Z" })]) {
      const { storage, sqlite, memory } = await twoTier();
      const store = new ConversationStore(storage);
      await sqlite.inner.write(CONVERSATION_INDEX_KEY, corrupt);
      await memory.inner.write(CONVERSATION_INDEX_KEY, corrupt);

      await expect(store.save(fixedConversation("x"))).rejects.toBeInstanceOf(DeserializeError);
      await expect(store.listSummaries()).rejects.toBeInstanceOf(DeserializeError);
      await expect(store.delete("x")).rejects.toBeInstanceOf(DeserializeError);
      await storage.flush();
      expect(text(await sqlite.inner.read(CONVERSATION_INDEX_KEY))).toBe(corrupt);
      expect(text(await memory.inner.read(CONVERSATION_INDEX_KEY))).toBe(corrupt);
      expect(await sqlite.inner.exists("conversations/x.json")).toBe(false);
    }
  });

  it("a corrupt cached index is replaced from sqlite (schema evolution), then updated", async () => {
    const { storage, sqlite, memory } = await twoTier();
    const store = new ConversationStore(storage);
    await store.save(fixedConversation("a"));
    await memory.inner.write(CONVERSATION_INDEX_KEY, JSON.stringify({ version: "0.1" }));
    await store.save(fixedConversation("b"));
    expect(await store.listIds()).toEqual(["a", "b"]);
    expect(Object.keys(JSON.parse(text(await sqlite.inner.read(CONVERSATION_INDEX_KEY))).conversations)).toEqual([
      "a",
      "b",
    ]);
  });

  it("100 concurrent saves (through two stores) all end up in the index", async () => {
    const { storage, sqlite, memory } = await twoTier({ latencyMs: 1 });
    const stores = [new ConversationStore(storage), new ConversationStore(storage)];
    const ids = Array.from({ length: 100 }, (_, i) => `conv-${i}`);
    await Promise.all(ids.map((id, i) => stores[i % 2]!.save(fixedConversation(id))));
    expect((await stores[0]!.listIds()).sort()).toEqual([...ids].sort());
    for (const op of [sqlite.inner, memory.inner]) {
      const index = JSON.parse(text(await op.read(CONVERSATION_INDEX_KEY)));
      expect(Object.keys(index.conversations).length).toBe(100);
    }
    // Concurrent deletes too.
    await Promise.all(ids.slice(0, 50).map((id) => stores[1]!.delete(id)));
    expect((await stores[0]!.listIds()).sort()).toEqual(ids.slice(50).sort());
  });

  it("hostile ids are rejected before any I/O", async () => {
    const { storage, sqlite } = await twoTier();
    const store = new ConversationStore(storage);
    const writes = sqlite.calls.write; // the start-up probe wrote once
    for (const id of ["", "../escape", "a/b", "..", "a\0b", "a\\b"]) {
      await expect(store.save(fixedConversation(id)), JSON.stringify(id)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.load(id)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.delete(id)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.exists(id)).rejects.toBeInstanceOf(InvalidKeyError);
    }
    expect(await sqlite.inner.list()).toEqual([]);
    expect(sqlite.calls.write).toBe(writes);
  });

  it("a value Rust could not read is refused on save", async () => {
    const { storage, sqlite } = await twoTier();
    const store = new ConversationStore(storage);
    const bad = { ...fixedConversation("bad"), created_at: "yesterday" };
    await expect(store.save(bad)).rejects.toThrow(/created_at: expected an RFC 3339 timestamp/);
    const noMessages = { ...fixedConversation("bad2"), messages: undefined } as unknown as Conversation;
    await expect(store.save(noMessages)).rejects.toThrow(/missing field `messages`/);
    expect(await sqlite.inner.list()).toEqual([]);
  });

  it("summary preview: first user message cut at 100 UTF-8 bytes on a character boundary", () => {
    const conv = createConversation("p", "r");
    addMessage(conv, createChatMessage("system", "sys"));
    addMessage(conv, createChatMessage("user", "x".repeat(150)));
    expect(summarizeConversation(conv).preview).toBe(`${"x".repeat(100)}...`);
    conv.messages[1]!.content = "é".repeat(60); // 120 bytes; byte 100 is a boundary
    expect(summarizeConversation(conv).preview).toBe(`${"é".repeat(50)}...`);
    conv.messages[1]!.content = `a${"é".repeat(60)}`; // byte 100 splits a character: Rust panics
    expect(summarizeConversation(conv).preview).toBe(`a${"é".repeat(49)}...`);
    conv.messages[1]!.content = "x".repeat(100);
    expect(summarizeConversation(conv).preview).toBe("x".repeat(100));
  });

  it("load falls back to sqlite and warms the cache", async () => {
    const { storage, memory } = await twoTier();
    const store = new ConversationStore(storage);
    await store.save(fixedConversation("warm"));
    await memory.inner.delete("conversations/warm.json");
    expect((await store.loadWithSource("warm")).profile).toBe("sqlite");
    await storage.flush();
    expect((await store.loadWithSource("warm")).profile).toBe("memory");
  });
});
