import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  COMPRESSION_THRESHOLD,
  DEFAULT_MAX_DECOMPRESSED_BYTES,
  decodeJson,
  encodeJson,
  isCompressed,
  maybeCompress,
  maybeDecompress,
  ZSTD_MAGIC,
} from "../src/codec.js";
import { DeserializeError, PersistenceError } from "../src/errors.js";

const enc = new TextEncoder();

/** Compressible JSON-like bytes of exactly `n` bytes. */
function compressible(n: number): Uint8Array {
  const unit = enc.encode('{"id":"doc","body":"the quick brown fox jumps over the lazy dog","tags":["a","b"]},');
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += unit.length) out.set(unit.subarray(0, Math.min(unit.length, n - i)), i);
  return out;
}

/**
 * A zstd frame written by the runtime's zstd (node:zlib), declaring its content size unless told not
 * to; where node:zlib has no zstd (Node 20, CI's fallback leg), by the `zstd` CLI.
 */
const { constants, zstdCompressSync } = zlib as Partial<typeof zlib> & { constants: typeof zlib.constants };

function zstdCompress(data: Uint8Array, options: { contentSizeFlag?: boolean } = {}): Buffer {
  if (typeof zstdCompressSync !== "function") {
    const args = ["-3", "-c", "-q", options.contentSizeFlag === false ? "--no-content-size" : "--content-size"];
    // Through a file: on stdin the CLI cannot know (and so declare) the size.
    const file = join(mkdtempSync(join(tmpdir(), "tp-zstd-")), "in");
    writeFileSync(file, data);
    return execFileSync("zstd", [...args, file], { maxBuffer: 1 << 30 });
  }
  return zstdCompressSync(data, {
    params: {
      [constants.ZSTD_c_compressionLevel]: 3,
      [constants.ZSTD_c_checksumFlag]: 1,
      [constants.ZSTD_c_contentSizeFlag]: options.contentSizeFlag === false ? 0 : 1,
    },
  });
}

function withMagic(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + frame.length);
  out.set(ZSTD_MAGIC);
  out.set(frame, 4);
  return out;
}

function hasZstdCli(): boolean {
  try {
    execFileSync("zstd", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("constants", () => {
  it("match the Rust crate", () => {
    expect(COMPRESSION_THRESHOLD).toBe(1024 * 1024);
    expect(Buffer.from(ZSTD_MAGIC).toString("latin1")).toBe("ZSTD");
    expect(DEFAULT_MAX_DECOMPRESSED_BYTES).toBe(1024 ** 3);
  });
});

describe("maybeCompress / maybeDecompress", () => {
  it("returns small values unchanged, without copying", () => {
    const small = enc.encode('{"hello":"world"}');
    expect(maybeCompress(small)).toBe(small);
    expect(maybeDecompress(small)).toBe(small);
    expect(isCompressed(small)).toBe(false);
  });

  it("does not compress a value one byte under the threshold", () => {
    const data = compressible(COMPRESSION_THRESHOLD - 1);
    expect(maybeCompress(data)).toBe(data);
  });

  it("compresses a value of exactly the threshold", () => {
    const data = compressible(COMPRESSION_THRESHOLD);
    const stored = maybeCompress(data);
    expect(isCompressed(stored)).toBe(true);
    expect(stored.length).toBeLessThan(data.length);
    expect(Buffer.from(maybeDecompress(stored)).equals(Buffer.from(data))).toBe(true);
  });

  it("compresses a large compressible value behind the ZSTD header and restores it byte-identical", () => {
    const data = compressible(3 * COMPRESSION_THRESHOLD + 12345);
    const stored = maybeCompress(data);
    expect(Buffer.from(stored.subarray(0, 4)).toString("latin1")).toBe("ZSTD");
    // A zstd frame follows the header.
    expect(Buffer.from(stored.subarray(4, 8)).readUInt32LE(0)).toBe(0xfd2fb528);
    expect(stored.length).toBeLessThan(data.length / 10);
    const back = maybeDecompress(stored);
    expect(back.length).toBe(data.length);
    expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
  });

  it("keeps incompressible values of 1 MiB or more raw, since compressing does not shrink them", () => {
    const data = new Uint8Array(randomBytes(COMPRESSION_THRESHOLD + 100));
    expect(maybeCompress(data)).toBe(data);
  });

  it('leaves exactly "ZSTD" (4 bytes) as an ordinary value', () => {
    const four = enc.encode("ZSTD");
    expect(isCompressed(four)).toBe(false);
    expect(maybeDecompress(four)).toBe(four);
  });

  it("returns the raw bytes when ZSTD is followed by garbage (Rust behaviour)", () => {
    const bad = enc.encode("ZSTDthis is not a zstd frame");
    expect(isCompressed(bad)).toBe(true);
    expect(maybeDecompress(bad)).toBe(bad);
  });

  it("returns the raw bytes for a truncated frame", () => {
    const stored = maybeCompress(compressible(2 * COMPRESSION_THRESHOLD));
    for (const cut of [1, 4, 20, Math.floor(stored.length / 2)]) {
      const truncated = stored.slice(0, stored.length - cut);
      expect(maybeDecompress(truncated)).toBe(truncated);
    }
  });

  it("returns the raw bytes for a corrupted frame (the content checksum catches it)", () => {
    const stored = maybeCompress(compressible(2 * COMPRESSION_THRESHOLD)).slice();
    const i = Math.floor(stored.length / 2);
    stored[i] = (stored[i] ?? 0) ^ 0x55;
    expect(maybeDecompress(stored)).toBe(stored);
  });

  it("returns the raw bytes when a valid frame is followed by trailing garbage", () => {
    const stored = maybeCompress(compressible(COMPRESSION_THRESHOLD));
    const withTail = new Uint8Array(stored.length + 3);
    withTail.set(stored);
    withTail.set([1, 2, 3], stored.length);
    expect(maybeDecompress(withTail)).toBe(withTail);
  });

  it("decodes concatenated frames, and frames without a declared content size", () => {
    const a = compressible(300_000);
    const b = enc.encode("second frame".repeat(1000));
    const frameA = zstdCompress(a, { contentSizeFlag: false });
    const frameB = zstdCompress(b);
    const stored = withMagic(Buffer.concat([frameA, frameB]));
    const back = Buffer.from(maybeDecompress(stored));
    expect(back.equals(Buffer.concat([a, b]))).toBe(true);
  });

  it("decodes an empty frame to an empty value", () => {
    const stored = withMagic(zstdCompress(new Uint8Array(0)));
    expect(maybeDecompress(stored).length).toBe(0);
  });
});

describe("decompression limit (zstd bomb)", () => {
  const big = compressible(4 * COMPRESSION_THRESHOLD);

  it("refuses a frame whose declared size is over the limit", () => {
    const stored = maybeCompress(big);
    expect(() => maybeDecompress(stored, { maxDecompressedBytes: COMPRESSION_THRESHOLD })).toThrow(DeserializeError);
    expect(() => decodeJson(stored, { maxDecompressedBytes: COMPRESSION_THRESHOLD, key: "k" })).toThrow(/zstd bomb/);
  });

  it("refuses a frame without a declared size once the output passes the limit", () => {
    const stored = withMagic(zstdCompress(big, { contentSizeFlag: false }));
    let error: unknown;
    try {
      decodeJson(stored, { maxDecompressedBytes: 1_000_000, profile: "p", key: "k" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DeserializeError);
    expect(error).toMatchObject({ code: "E_DESERIALIZE", profile: "p", key: "k" });
    expect((error as Error).message).toMatch(/past 1000000 bytes/);
    // Exactly at the limit is fine.
    expect(maybeDecompress(stored, { maxDecompressedBytes: big.length }).length).toBe(big.length);
  });

  it("refuses a header claiming 1 TiB before allocating anything", () => {
    // Frame header: magic, FHD 0xE0 (single segment, 8-byte content size), size 2^40, then a bogus block.
    const frame = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3]);
    expect(() => maybeDecompress(withMagic(frame))).toThrow(/declares 1099511627776 bytes/);
    expect(() => decodeJson(withMagic(frame))).toThrow(DeserializeError);
  });

  it("rejects an invalid limit", () => {
    const stored = maybeCompress(big);
    expect(() => maybeDecompress(stored, { maxDecompressedBytes: -1 })).toThrow(PersistenceError);
    expect(() => maybeDecompress(stored, { maxDecompressedBytes: Number.NaN })).toThrow(/non-negative integer/);
  });
});

describe("encodeJson / decodeJson", () => {
  it("round-trips small values as plain UTF-8 JSON", () => {
    const value = { id: "test-document-123", title: "Café 🚀", n: 1.5, tags: ["x"], nested: { ok: true } };
    const bytes = encodeJson(value);
    expect(new TextDecoder().decode(bytes)).toBe(JSON.stringify(value));
    expect(decodeJson(bytes)).toEqual(value);
  });

  it("round-trips large values through compression", () => {
    const value = { id: "large", body: "lorem ipsum dolor sit amet ".repeat(100_000) };
    const bytes = encodeJson(value);
    expect(isCompressed(bytes)).toBe(true);
    expect(decodeJson(bytes)).toEqual(value);
  });

  it("throws PersistenceError for values without a JSON form", () => {
    expect(() => encodeJson(undefined)).toThrow(PersistenceError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodeJson(cyclic, { key: "k" })).toThrow(/JSON-serializable value of key "k"/);
    expect(() => encodeJson(10n)).toThrow(PersistenceError);
  });

  it("throws DeserializeError naming the bad zstd frame for ZSTD + garbage", () => {
    const bad = enc.encode("ZSTDgarbage garbage");
    let error: unknown;
    try {
      decodeJson(bad, { profile: "sqlite", key: "document_x.json" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DeserializeError);
    expect(error).toMatchObject({ code: "E_DESERIALIZE", profile: "sqlite", key: "document_x.json" });
    expect((error as Error).message).toMatch(/starts with ZSTD but is not a valid zstd frame/);
  });

  it("throws DeserializeError for a truncated frame", () => {
    const bytes = encodeJson({ body: "abc".repeat(500_000) });
    expect(isCompressed(bytes)).toBe(true);
    expect(() => decodeJson(bytes.subarray(0, bytes.length - 10))).toThrow(DeserializeError);
  });

  it("throws DeserializeError with code E_DESERIALIZE for bytes that are not JSON", () => {
    for (const text of ["not json", "{", "ZSTD", "", "[1,2,]"]) {
      let error: unknown;
      try {
        decodeJson(enc.encode(text));
      } catch (e) {
        error = e;
      }
      expect(error, text).toBeInstanceOf(DeserializeError);
      expect((error as DeserializeError).code).toBe("E_DESERIALIZE");
      expect((error as Error).message).toMatch(/not valid JSON/);
    }
  });

  it("throws DeserializeError for invalid UTF-8 rather than decoding it as U+FFFD", () => {
    expect(() => decodeJson(new Uint8Array([0x22, 0xff, 0xfe, 0x22]))).toThrow(/not valid UTF-8/);
  });

  it("throws DeserializeError when compressed content is not JSON", () => {
    const stored = maybeCompress(compressible(COMPRESSION_THRESHOLD));
    expect(isCompressed(stored)).toBe(true);
    expect(() => decodeJson(stored)).toThrow(/not valid JSON/);
  });
});

describe("interop with the zstd CLI", () => {
  const cli = hasZstdCli();
  // CI installs the CLI (.ci/run): there the checks must run, never be skipped.
  if (!cli && process.env.CI) throw new Error("`zstd` CLI not found: CI must run the zstd interop checks");
  if (!cli) {
    console.warn(
      "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n" +
        "!! WARNING: `zstd` CLI not found: the zstd CLI interop checks DID NOT RUN.\n" +
        "!! Install it (Debian/Ubuntu: apt-get install -y zstd) to run them.\n" +
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
    );
  }
  const data = compressible(2 * COMPRESSION_THRESHOLD + 777);
  const maxBuffer = 64 * 1024 * 1024;

  it.skipIf(!cli)("our compressed output decodes with `zstd -d`", () => {
    const stored = maybeCompress(data);
    expect(isCompressed(stored)).toBe(true);
    const out = execFileSync("zstd", ["-d", "-c", "-q"], { input: stored.subarray(4), maxBuffer });
    expect(out.equals(Buffer.from(data))).toBe(true);
  });

  it.skipIf(!cli)("a frame written by `zstd -3` decodes with ours (stdin: no declared size)", () => {
    const frame = execFileSync("zstd", ["-3", "-c", "-q"], { input: data, maxBuffer });
    const back = maybeDecompress(withMagic(frame));
    expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
    const json = execFileSync("zstd", ["-3", "-c", "-q"], { input: JSON.stringify({ a: "b".repeat(2e6) }), maxBuffer });
    expect(decodeJson(withMagic(json))).toEqual({ a: "b".repeat(2e6) });
  });
});
