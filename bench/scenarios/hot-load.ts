/**
 * Scenario 1: a hot load (the value is in the memory profile) against the raw
 * floor, `JSON.parse(map.get(key))` on a `Map` of JSON strings; then the same
 * with schema validation on both sides (zod 4, and the built-in `Document`
 * schema through `Document.load()`).
 */
import { z } from "zod";
import { Document, documentSchema } from "../../src/domain/document.js";
import { schemaDecoder } from "../../src/persistable.js";
import { docData, docId, docKey, docText } from "../_data.js";
import { compare, row } from "../_harness.js";
import { type Context, openOurs, sink } from "../_setup.js";

/** The stored document's shape in zod 4 (what a user would declare for `Document`). */
export const zodDocument = z.object({
  id: z.string(),
  url: z.string(),
  title: z.string(),
  body: z.string(),
  description: z.string().nullable(),
  summarization: z.string().nullable(),
  stub: z.string().nullable(),
  tags: z.array(z.string()).nullable(),
  rank: z.number().int().nonnegative().nullable(),
  source_haystack: z.string().nullable(),
  doc_type: z.enum(["kg_entry", "document", "config_document"]),
  synonyms: z.array(z.string()).nullable(),
  route: z
    .object({ provider: z.string(), model: z.string(), action: z.string().nullable(), is_free: z.boolean() })
    .nullable(),
  priority: z.number().int().min(0).max(255).nullable(),
  quality_score: z.unknown().optional(),
});

export async function hotLoad(ctx: Context) {
  const K = 1000;
  const ids = Array.from({ length: K }, (_, i) => docId(i));
  const keys = Array.from({ length: K }, (_, i) => docKey(i));
  const { storage } = await openOurs(ctx, "s1");
  for (let i = 0; i < K; i++) await storage.saveValue(keys[i]!, docData(i));
  const map = new Map<string, string>(keys.map((k, i) => [k, docText(i)]));
  const opts = { n: ctx.quick ? 5_000 : 50_000, rounds: ctx.quick ? 3 : 15 };
  const target = { kind: "ratio<=", max: 2, text: "<= 2.0x" } as const;
  const rows = [];

  ctx.log("1 hot load: loadValue vs Map.get + JSON.parse");
  {
    const [o, b] = await compare(
      {
        name: "ours",
        async batch(n, s) {
          for (let i = 0; i < n; i++) sink.v = await storage.loadValue(keys[(s + i) % K]!);
        },
      },
      {
        name: "raw",
        batch(n, s) {
          for (let i = 0; i < n; i++) sink.v = JSON.parse(map.get(keys[(s + i) % K]!)!);
        },
      },
      opts,
    );
    rows.push(
      row("1 hot load", ["await storage.loadValue(key)", o.opsPerS], ["JSON.parse(map.get(key))", b.opsPerS], target),
    );
  }

  ctx.log("1 hot load + zod: loadValue(key, schemaDecoder(zod)) vs + zod.parse");
  {
    const decode = schemaDecoder(zodDocument);
    const [o, b] = await compare(
      {
        name: "ours",
        async batch(n, s) {
          for (let i = 0; i < n; i++) sink.v = await storage.loadValue(keys[(s + i) % K]!, decode);
        },
      },
      {
        name: "raw",
        batch(n, s) {
          for (let i = 0; i < n; i++) sink.v = zodDocument.parse(JSON.parse(map.get(keys[(s + i) % K]!)!));
        },
      },
      opts,
    );
    rows.push(
      row(
        "1 hot load + zod",
        ["await storage.loadValue(key, zodDecoder)", o.opsPerS],
        ["zod.parse(JSON.parse(map.get(key)))", b.opsPerS],
        target,
      ),
    );
  }

  ctx.log("1 hot load Document: new Document(id).load() vs map + parse + schema + new Document");
  {
    const validate = documentSchema["~standard"].validate;
    const [o, b] = await compare(
      {
        name: "ours",
        async batch(n, s) {
          for (let i = 0; i < n; i++) sink.v = await new Document(ids[(s + i) % K]!).withStorage(storage).load();
        },
      },
      {
        name: "raw",
        batch(n, s) {
          for (let i = 0; i < n; i++) {
            const j = (s + i) % K;
            const r = validate(JSON.parse(map.get(keys[j]!)!));
            if (r instanceof Promise || r.issues) throw new Error("invalid");
            sink.v = Object.assign(new Document(ids[j]!), r.value);
          }
        },
      },
      // A Document load is ~10x a bare load: fewer operations per round keep the round time alike.
      { ...opts, n: opts.n / 5 },
    );
    rows.push(
      row(
        "1 hot load Document",
        ["await new Document(id).withStorage(s).load()", o.opsPerS],
        ["new Document + Object.assign(validate(JSON.parse(map.get)))", b.opsPerS],
        target,
        "both sides validate with the Document schema (serde rules) and build a Document",
      ),
    );
  }
  await storage.close();
  return rows;
}
