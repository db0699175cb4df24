import { sipHash13 } from "./_siphash.js";

const utf8 = new TextEncoder();

/**
 * Turns an id or name into the key fragment the Rust crate uses
 * (`document_<normalized>.json`, `thesaurus_<normalized>.json`), byte for byte.
 *
 * Every run of characters that are not ASCII letters or digits becomes one `_`,
 * ASCII letters are lowercased, and leading/trailing `_` are dropped. If nothing
 * is left, the result is `fallback_<hex>`, where `<hex>` is Rust's
 * `DefaultHasher` (SipHash-1-3, keys 0 and 0) of the input.
 *
 * @example
 * normalizeKey("Test Engineer"); // "test_engineer"
 * normalizeKey("Café Menu"); // "caf_menu"
 * normalizeKey("!!!"); // "fallback_45937481e8a9a212"
 */
export function normalizeKey(s: string): string {
  const known = memo.get(s);
  if (known !== undefined) return known;
  const out = normalize(s);
  // A plain bound, not an LRU: ids repeat in bursts, and a clear is cheaper than tracking use.
  if (memo.size >= MEMO_SIZE) memo.clear();
  memo.set(s, out);
  return out;
}

/** Results kept by {@link normalizeKey}: a `getKey()` runs on every load and save of an object. */
const MEMO_SIZE = 4096;
const memo = new Map<string, string>();

function normalize(s: string): string {
  // Runs collapse, so it does not matter that the regex sees UTF-16 code units:
  // a surrogate pair (one Rust char) and a lone code unit both end up inside one `_` run.
  let out = s.replace(/[^A-Za-z0-9]+/g, "_").toLowerCase();
  if (out.startsWith("_")) out = out.slice(1);
  if (out.endsWith("_")) out = out.slice(0, -1);
  if (out !== "") return out;
  // Rust hashes a `&str` as its UTF-8 bytes followed by one 0xff byte. (A lone
  // surrogate, impossible in a Rust string, is encoded as U+FFFD here.)
  const text = utf8.encode(s);
  const bytes = new Uint8Array(text.length + 1);
  bytes.set(text);
  bytes[text.length] = 0xff;
  // Rust's `{:x}` does not zero-pad; neither does toString(16).
  return `fallback_${sipHash13(bytes).toString(16)}`;
}
