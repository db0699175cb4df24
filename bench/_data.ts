/**
 * Benchmark data: 1 KB Terraphim documents (the JSON the Rust crate writes for
 * a `Document`, exactly 1,024 bytes each), and large JSON for the compression
 * scenario. Deterministic, so every run and every side sees the same bytes.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Document, type DocumentData } from "../src/domain/document.js";
import { seededRandom } from "../src/operators/wrappers/chaos.js";

/** Size of one benchmark document's JSON, in bytes. */
export const DOC_BYTES = 1024;

const WORDS =
  "persistence tiered cache profile sqlite memory redb zstd write back fallback schema evolution rust typescript document thesaurus conversation knowledge graph terraphim operator backend ranking probe latency throughput durable object storage bucket".split(
    " ",
  );

/** A small deterministic PRNG (mulberry32), so data is the same on every run. */
export const prng = seededRandom;

function words(rnd: () => number, chars: number): string {
  let s = "";
  while (s.length < chars) s += `${WORDS[Math.floor(rnd() * WORDS.length)]} `;
  return s.slice(0, chars);
}

/** The id of benchmark document `i` (fixed width, so every document has the same size). */
export function docId(i: number): string {
  return `bench-${String(i).padStart(7, "0")}`;
}

/** The storage key of benchmark document `i`: `document_bench_0000042.json`. */
export function docKey(i: number): string {
  return `document_bench_${String(i).padStart(7, "0")}.json`;
}

/** The stored JSON fields of benchmark document `i`: exactly {@link DOC_BYTES} bytes of JSON. */
export function docData(i: number): DocumentData {
  const rnd = prng(i + 1);
  const init = {
    url: `https://example.org/docs/${docId(i)}`,
    title: words(rnd, 40).trim(),
    body: "",
    description: words(rnd, 80).trim(),
    tags: ["bench", "tiered"],
    rank: 1000 + (i % 1000),
  };
  const empty = JSON.stringify(new Document(docId(i), init).toJSON()).length;
  init.body = words(rnd, DOC_BYTES - empty);
  const data = new Document(docId(i), init).toJSON();
  const len = Buffer.byteLength(JSON.stringify(data));
  if (len !== DOC_BYTES) throw new Error(`benchmark document ${i} is ${len} bytes, expected ${DOC_BYTES}`);
  return data;
}

/** The JSON text of benchmark document `i` (what every side stores). */
export function docText(i: number): string {
  return JSON.stringify(docData(i));
}

/**
 * A JSON array of documents of about `bytes` bytes (never less): the kind of
 * value that crosses the 1 MiB compression threshold (a thesaurus, a search
 * result set). Words repeat as in real text, so zstd -3 gets a realistic ratio.
 */
export function bigJson(bytes: number): Uint8Array {
  const rnd = prng(bytes);
  const parts: string[] = [];
  let total = 2;
  for (let i = 0; total < bytes; i++) {
    const doc = {
      id: `doc-${i}-${Math.floor(rnd() * 1e9).toString(36)}`,
      url: `https://example.org/${Math.floor(rnd() * 1e6)}`,
      title: words(rnd, 30 + Math.floor(rnd() * 40)),
      body: words(rnd, 400 + Math.floor(rnd() * 800)),
      rank: Math.floor(rnd() * 1e6),
      tags: [WORDS[Math.floor(rnd() * WORDS.length)]],
    };
    const s = JSON.stringify(doc);
    parts.push(s);
    total += s.length + 1;
  }
  return new TextEncoder().encode(`[${parts.join(",")}]`);
}

/** A temporary folder, removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `tp-bench-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** 1 MiB, the codec's compression threshold unit. */
export const MiB = 1024 * 1024;
