/**
 * How a value is turned into stored bytes and back, compatible with the Rust
 * `terraphim_persistence` crate:
 *
 * - values are JSON text in UTF-8;
 * - a value of at least {@link COMPRESSION_THRESHOLD} bytes is stored as
 *   `ZSTD` + a zstd frame (level 3) when that is smaller than the JSON;
 * - on read, bytes that start with `ZSTD` and are longer than 4 are
 *   decompressed; anything else is used as-is.
 *
 * Small values take a copy-free path and never load the zstd library.
 *
 * @module
 */

import { InflateLimitError, zstdEngine } from "./_zstd-engine.js";
import { zstdFrames } from "./_zstd-frames.js";
import { DeserializeError, PersistenceError } from "./errors.js";
import type { StoredValue } from "./operators/types.js";

/** Values of at least this many bytes (1 MiB) are compressed, as in the Rust crate. */
export const COMPRESSION_THRESHOLD = 1_048_576;

/** Header in front of a compressed value: the ASCII bytes of `ZSTD`. Do not mutate. */
export const ZSTD_MAGIC: Uint8Array = new Uint8Array([0x5a, 0x53, 0x54, 0x44]);

/** zstd level used for values, as in the Rust crate. */
export const COMPRESSION_LEVEL = 3;

/**
 * Default upper bound on the size of a decompressed value (1 GiB). A few
 * hundred bytes of zstd can claim terabytes; this stops such a "zstd bomb"
 * from exhausting memory.
 */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 1024 * 1024 * 1024;

/** Options for reading stored bytes. */
export interface DecompressOptions {
  /**
   * Largest decompressed size accepted, in bytes. A frame that inflates beyond
   * it is refused with a {@link DeserializeError}.
   * @default DEFAULT_MAX_DECOMPRESSED_BYTES (1 GiB)
   */
  maxDecompressedBytes?: number | undefined;
}

/** Where a value came from, for error messages. */
export interface CodecContext {
  /** Profile the value was read from or is written to. */
  profile?: string | undefined;
  /** Key of the value. */
  key?: string | undefined;
}

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, as it is for serde_json, not silently U+FFFD.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Whether `bytes` carry the compressed-value header: they start with `ZSTD`
 * and are longer than 4 bytes (exactly `ZSTD` is an ordinary value).
 */
export function isCompressed(bytes: Uint8Array): boolean {
  return bytes.length > 4 && bytes[0] === 0x5a && bytes[1] === 0x53 && bytes[2] === 0x54 && bytes[3] === 0x44;
}

/**
 * Compresses a value the way the Rust crate does: if it is at least
 * {@link COMPRESSION_THRESHOLD} bytes, zstd level 3 with the `ZSTD` header,
 * kept only if that is smaller than the input. Otherwise, or if compression
 * fails, returns `bytes` itself (not a copy).
 */
export function maybeCompress(bytes: Uint8Array): Uint8Array {
  if (bytes.length < COMPRESSION_THRESHOLD) return bytes;
  let frame: Uint8Array;
  try {
    frame = zstdEngine().compress(bytes, COMPRESSION_LEVEL);
  } catch {
    // Rust: "Compression failed, using raw data".
    return bytes;
  }
  // Rust compares the bare frame with the input; we count the 4-byte header too,
  // so a stored value is never larger than the JSON. Both sides read either form.
  if (ZSTD_MAGIC.length + frame.length >= bytes.length) return bytes;
  const out = new Uint8Array(ZSTD_MAGIC.length + frame.length);
  out.set(ZSTD_MAGIC);
  out.set(frame, ZSTD_MAGIC.length);
  return out;
}

/**
 * Reverses {@link maybeCompress}: bytes that start with `ZSTD` and are longer
 * than 4 are decompressed; anything else is returned as-is (not a copy). If
 * the rest is not a valid zstd stream (corrupt, truncated, trailing garbage),
 * the raw bytes are returned unchanged, as the Rust crate does.
 *
 * @throws DeserializeError if the frame would inflate beyond
 *   `maxDecompressedBytes` (a zstd bomb); Rust has no such limit.
 * @example
 * const json = maybeDecompress(stored, { maxDecompressedBytes: 64 * 1024 * 1024 });
 */
export function maybeDecompress(bytes: Uint8Array, options?: DecompressOptions): Uint8Array {
  if (!isCompressed(bytes)) return bytes;
  const limit = checkLimit(options?.maxDecompressedBytes);
  try {
    return inflate(bytes.subarray(4), limit);
  } catch (error) {
    if (error instanceof InflateLimitError) throw limitError(error, {});
    return bytes;
  }
}

/**
 * Serializes a value the way the Rust crate stores it: JSON text, UTF-8,
 * then {@link maybeCompress}.
 *
 * @throws PersistenceError if the value has no JSON form (`undefined`, a
 *   function, a symbol) or cannot be serialized (a cycle, a BigInt).
 * @example
 * const bytes = encodeJson({ id: "doc-1", body: "..." });
 * await operator.write("document_doc_1.json", bytes);
 */
export function encodeJson(value: unknown, context: CodecContext = {}): Uint8Array {
  // TextEncoder gives the bytes their own allocation (not a slab of Buffer's pool), so a store
  // that keeps them (the memory tier adopts them) keeps nothing else alive.
  return maybeCompress(utf8Encoder.encode(stringify(value, context)));
}

function stringify(value: unknown, context: CodecContext): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (cause) {
    throw new PersistenceError(
      `Expected a JSON-serializable value${where(context)}, but JSON.stringify failed: ${messageOf(cause)}`,
      { ...context, cause },
    );
  }
  if (text === undefined) {
    throw new PersistenceError(`Expected a JSON-serializable value${where(context)}, got ${typeof value}`, context);
  }
  return text;
}

/**
 * {@link encodeJson} for the in-process save path: a value that stays
 * uncompressed is handed on as its JSON text (which stands for exactly its
 * UTF-8 bytes), so a memory or sqlite profile stores it without an encoding
 * pass; a large one is encoded and compressed as `encodeJson` does.
 * `JSON.stringify` never yields lone surrogates, so the text is well-formed.
 */
export function encodeJsonStored(value: unknown, context: CodecContext = {}): StoredValue {
  const text = stringify(value, context);
  const size = Buffer.byteLength(text, "utf8");
  if (size < COMPRESSION_THRESHOLD) return { data: text, size };
  const data = maybeCompress(utf8Encoder.encode(text));
  return { data, size: data.length };
}

/** The stored byte length of a value held as bytes or as text. */
export function storedSize(data: Uint8Array | string): number {
  return typeof data === "string" ? Buffer.byteLength(data, "utf8") : data.length;
}

/**
 * {@link decodeJson} for a value held as bytes or as text. Text gives the
 * same result and the same errors as its UTF-8 bytes would: one leading BOM
 * is dropped (as `TextDecoder` does), and text starting with `ZSTD` goes
 * through the bytes path (it cannot be a zstd frame, so it is refused there).
 */
export function decodeStored(data: Uint8Array | string, context: CodecContext & DecompressOptions = {}): unknown {
  if (typeof data !== "string") return decodeJson(data, context);
  if (data.length > 4 && data.startsWith("ZSTD")) return decodeJson(utf8Encoder.encode(data), context);
  try {
    return JSON.parse(data.charCodeAt(0) === 0xfeff ? data.slice(1) : data);
  } catch (cause) {
    throw notJson({ profile: context.profile, key: context.key }, cause);
  }
}

/** Keeps a leading BOM as U+FEFF, so the text stands for exactly its bytes. */
const exactUtf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * `stored` as text where it is plain (not compressed) valid UTF-8, else as it is: the text decodes
 * with one `JSON.parse` and is what a write-back gives an in-memory tier, so every later hit there
 * skips a UTF-8 pass. The decoding is the one {@link decodeStored} would do anyway.
 */
export function storedAsText(stored: StoredValue): StoredValue {
  const { data } = stored;
  if (typeof data === "string" || isCompressed(data)) return stored;
  try {
    return { data: exactUtf8Decoder.decode(data), size: stored.size };
  } catch {
    // Not UTF-8: decodeStored says so, with the profile and key.
    return stored;
  }
}

/**
 * What a write-back stores for a value read as `stored`: bytes already
 * compressed as they are, anything else through {@link maybeCompress} (text
 * under the threshold is kept as text), with its stored size.
 */
export function recompressStored(stored: StoredValue): StoredValue {
  const { data } = stored;
  if (typeof data === "string" ? stored.size < COMPRESSION_THRESHOLD : isCompressed(data)) return stored;
  const out = maybeCompress(typeof data === "string" ? utf8Encoder.encode(data) : data);
  return out === data ? stored : { data: out, size: out.length };
}

/**
 * Parses stored bytes: {@link maybeDecompress}, UTF-8, `JSON.parse`.
 *
 * @throws DeserializeError (code `E_DESERIALIZE`) naming what was wrong: a
 *   `ZSTD` header on something that is not a zstd frame, a frame over the size
 *   limit, invalid UTF-8, or invalid JSON.
 * @example
 * const doc = decodeJson(await operator.read(key), { profile: "sqlite", key });
 */
export function decodeJson(bytes: Uint8Array, context: CodecContext & DecompressOptions = {}): unknown {
  const ctx: CodecContext = { profile: context.profile, key: context.key };
  let raw = bytes;
  if (isCompressed(bytes)) {
    const limit = checkLimit(context.maxDecompressedBytes);
    try {
      raw = inflate(bytes.subarray(4), limit);
    } catch (error) {
      if (error instanceof InflateLimitError) throw limitError(error, ctx);
      // maybeDecompress would hand back the raw bytes here, and "ZSTD..." is
      // never valid JSON, so the read fails either way: say why.
      throw new DeserializeError(
        `Value${where(ctx)} starts with ZSTD but is not a valid zstd frame (${bytes.length} bytes): ${messageOf(error)}`,
        { ...ctx, cause: error },
      );
    }
  }
  let text: string;
  try {
    text = utf8Decoder.decode(raw);
  } catch (cause) {
    const why = cause instanceof TypeError ? "not valid UTF-8" : `cannot be decoded as text: ${messageOf(cause)}`;
    throw new DeserializeError(`Value${where(ctx)} (${raw.length} bytes) is ${why}`, { ...ctx, cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw notJson(ctx, cause);
  }
}

function notJson(ctx: CodecContext, cause: unknown): DeserializeError {
  return new DeserializeError(`Value${where(ctx)} is not valid JSON: ${messageOf(cause)}`, { ...ctx, cause });
}

/**
 * Decompresses every zstd frame in `src` into at most `limit` bytes.
 * Throws on a corrupt, truncated or trailing-garbage stream and
 * {@link InflateLimitError} when the output would pass `limit`.
 */
function inflate(src: Uint8Array, limit: number): Uint8Array {
  const frames = zstdFrames(src, (declared) => {
    if (declared !== null && declared > limit)
      throw new InflateLimitError(`its frame header declares ${declared} bytes`);
  });
  const engine = zstdEngine();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const f of frames) {
    const part = engine.decompressFrame(src.subarray(f.start, f.end), limit - total, f.contentSize);
    total += part.length;
    parts.push(part);
  }
  if (parts.length === 1) return parts[0]!;
  return parts.length === 0 ? new Uint8Array(0) : Buffer.concat(parts, total);
}

function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_MAX_DECOMPRESSED_BYTES;
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new PersistenceError(`Expected maxDecompressedBytes to be a non-negative integer, got ${String(limit)}`);
  }
  return limit;
}

function limitError(error: InflateLimitError, ctx: CodecContext): DeserializeError {
  return new DeserializeError(
    `Refusing to decompress value${where(ctx)}: ${error.message}, over the maxDecompressedBytes limit (possible zstd bomb)`,
    { ...ctx, cause: error },
  );
}

function where(ctx: CodecContext): string {
  let s = "";
  if (ctx.key !== undefined) s += ` of key ${JSON.stringify(ctx.key)}`;
  if (ctx.profile !== undefined) s += ` in profile ${JSON.stringify(ctx.profile)}`;
  return s;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
