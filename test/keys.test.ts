import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { InvalidKeyError } from "../src/errors.js";
import { sipHash13 } from "../src/keys/_siphash.js";
import { MAX_KEY_BYTES, normalizeKey, validateKey, validatePrefix } from "../src/keys/index.js";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const vectors = JSON.parse(readFileSync(resolve(repoRoot, "../shared/compat/normalize_key.json"), "utf8")) as {
  input: string;
  normalized: string;
}[];

/** Rust's `DefaultHasher` hash of a `&str`: its UTF-8 bytes, then 0xff. */
function rustStrHash(s: string): string {
  const text = new TextEncoder().encode(s);
  return sipHash13(Uint8Array.from([...text, 0xff])).toString(16);
}

/*
 * Extra vectors computed with Rust 1.x std (no crates), by a program of this shape:
 *
 *   use std::collections::hash_map::DefaultHasher;
 *   use std::hash::{Hash, Hasher};
 *   fn h(s: &str) -> u64 { let mut x = DefaultHasher::new(); s.hash(&mut x); x.finish() }
 *   println!("{:x}", h(s));                                  // for each s below
 *   let mut x = DefaultHasher::new(); x.write(b""); x.finish() // the raw-bytes case
 *
 * The last rows were found by searching short strings of punctuation and
 * non-ASCII characters for hashes below 2^52, so `{:x}` drops leading zeros.
 */
const RUST_STR_HASHES: [string, string][] = [
  ["", "30406ea523c53def"],
  ["!!!", "45937481e8a9a212"],
  ["日本語", "45b6f3c35fcdca3e"],
  ["ß", "d60b6c18a4c182e6"],
  ["a", "719b50b9a4f0e9f3"],
  ["abc", "ef09e0f4895a251d"],
  ["---", "89c86c21681cf1dd"],
  ["🚀", "b155e75a2f4faa31"],
  ["é", "d6e909f7d92e03b3"],
  ["   ", "d40294a079802c09"],
  ["_", "3a9125890831ada0"],
  ["\0", "da5735e7144b8d9f"],
  ["ab\u00ffcd", "a916c16d6aee2da3"],
  ["0123456789abcdef", "3cdd3ee8e7c8d0cb"],
  ["The quick brown fox jumps over the lazy dog", "8dd2037fb281e249"],
  ["x".repeat(7), "c92d713e518f1df2"],
  ["x".repeat(8), "92f145e7177d034f"],
  ["x".repeat(9), "7a2e7943aff2568b"],
  ["x".repeat(15), "cca9c7766bc828a2"],
  ["x".repeat(16), "498fed0a0eff45a2"],
  ["x".repeat(17), "65a13d0d61976eb6"],
  ["x".repeat(64), "39373413cff146dd"],
  ["x".repeat(300), "16967186a6f732fa"],
  // Leading zeros dropped by `{:x}`:
  ["#82", "43e74fe7a8dd87"],
  ["#121", "1c84cafae0ed5"],
  ["&%@", "54fc7c5b1ec78"],
  ["!!+", "2ae24f19bb57c"],
  ["日,🚀", "efe723519fdc8"],
  ["🚀%/@", "3044227b527e8"],
];

describe("sipHash13 (Rust DefaultHasher)", () => {
  it.each(RUST_STR_HASHES)("hashes %j like Rust", (input, hex) => {
    expect(rustStrHash(input)).toBe(hex);
  });

  it("hashes raw bytes like Hasher::write", () => {
    expect(sipHash13(new Uint8Array(0)).toString(16)).toBe("d1fba762150c532c");
    // `"".hash()` is exactly `write(&[0xff])`.
    expect(sipHash13(new Uint8Array([0xff])).toString(16)).toBe("30406ea523c53def");
  });

  it("returns an unsigned 64-bit value", () => {
    for (const [input] of RUST_STR_HASHES) {
      const h = sipHash13(new TextEncoder().encode(input));
      expect(h >= 0n && h < 1n << 64n).toBe(true);
    }
  });
});

describe("normalizeKey", () => {
  it("has vectors to check", () => {
    expect(vectors.length).toBeGreaterThan(10);
  });

  it.each(vectors.map((v) => [v.input, v.normalized]))("normalizes %j to %j (Rust vectors)", (input, normalized) => {
    expect(normalizeKey(input)).toBe(normalized);
  });

  it("does not zero-pad the fallback hash", () => {
    expect(normalizeKey("&%@")).toBe("fallback_54fc7c5b1ec78");
    expect(normalizeKey("!!+")).toBe("fallback_2ae24f19bb57c");
    expect(normalizeKey("日,🚀")).toBe("fallback_efe723519fdc8");
    expect(normalizeKey("🚀%/@")).toBe("fallback_3044227b527e8");
  });

  it("maps each non-ASCII character to one underscore, and collapses runs", () => {
    expect(normalizeKey("a🚀b")).toBe("a_b");
    expect(normalizeKey("aéb")).toBe("a_b");
    expect(normalizeKey("a__--  b")).toBe("a_b");
    expect(normalizeKey("ABC")).toBe("abc");
    expect(normalizeKey("_a_")).toBe("a");
    // Non-ASCII letters and digits are not "alphanumeric" for the Rust regex [a-zA-Z0-9].
    expect(normalizeKey("Ω٣x")).toBe("x");
  });

  it("is idempotent on its own output", () => {
    for (const { normalized } of vectors) expect(normalizeKey(normalized)).toBe(normalized);
  });

  it("produces keys that validateKey accepts", () => {
    for (const { input } of vectors) expect(validateKey(`document_${normalizeKey(input)}.json`)).toBeTruthy();
  });
});

describe("validateKey", () => {
  it("refuses undefined even as the first key a process checks (the last-valid memo starts valid)", async () => {
    vi.resetModules();
    const fresh = await import("../src/keys/validate.js");
    // A fresh module graph: its InvalidKeyError is another class object, so match the message.
    expect(() => fresh.validateKey(undefined)).toThrow(/Expected key to be a string, got undefined/);
    expect(fresh.validateKey("a.json")).toBe("a.json");
    expect(() => fresh.validateKey(undefined)).toThrow(/Expected key to be a string, got undefined/);
  });

  it("accepts ordinary keys", () => {
    for (const key of [
      "conversations/index.json",
      "document_test_document_123.json",
      "a",
      "a/b/c",
      "a.b",
      "..a",
      "a..",
      "é/🚀",
    ]) {
      expect(validateKey(key)).toBe(key);
    }
    expect(validateKey("a".repeat(MAX_KEY_BYTES))).toHaveLength(MAX_KEY_BYTES);
  });

  const bad: [string, unknown][] = [
    ["empty", ""],
    ["NUL", "a\0b"],
    ["absolute", "/etc/passwd"],
    ["parent segment", "../x"],
    ["inner parent segment", "a/../b"],
    ["trailing parent segment", "a/.."],
    ["dot segment", "./a"],
    ["lone dot", "."],
    ["double slash", "a//b"],
    ["trailing slash", "a/"],
    ["backslash", "a\\b"],
    ["over 1024 bytes", "a".repeat(MAX_KEY_BYTES + 1)],
    ["over 1024 bytes in UTF-8 (513 x é)", "é".repeat(513)],
    ["number", 42],
    ["null", null],
    ["undefined", undefined],
    ["object", { key: "a" }],
    ["bytes", new Uint8Array([97])],
  ];

  it.each(bad)("rejects %s with InvalidKeyError", (_why, key) => {
    let error: unknown;
    try {
      validateKey(key, "test-profile");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidKeyError);
    expect((error as InvalidKeyError).code).toBe("E_INVALID_KEY");
    expect((error as InvalidKeyError).profile).toBe("test-profile");
  });
});

describe("validatePrefix", () => {
  it("accepts the empty prefix, keys and folder prefixes", () => {
    expect(validatePrefix(undefined)).toBe("");
    expect(validatePrefix("")).toBe("");
    expect(validatePrefix("conversations/")).toBe("conversations/");
    expect(validatePrefix("conversations/index.json")).toBe("conversations/index.json");
    expect(validatePrefix("document_")).toBe("document_");
  });

  it.each([
    ["absolute", "/conversations/"],
    ["parent segment", "../"],
    ["dot segment", "a/./"],
    ["double slash", "a//"],
    ["only slashes", "//"],
    ["backslash", "a\\"],
    ["NUL", "a\0/"],
    ["over 1024 bytes", `${"a".repeat(MAX_KEY_BYTES + 1)}/`],
    ["number", 7],
    ["null", null],
  ] as [string, unknown][])("rejects %s with InvalidKeyError", (_why, prefix) => {
    expect(() => validatePrefix(prefix)).toThrow(InvalidKeyError);
  });
});
