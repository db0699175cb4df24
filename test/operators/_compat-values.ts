/**
 * The values the driver compat tests store, written through the OpenDAL
 * binding and read through a native driver, and the other way round.
 */
import { isCompressed, maybeCompress } from "../../src/codec.js";

/** One compat value: its key, the value as written (a string stays one), and the bytes a reader must get. */
export type CompatValue = [key: string, value: Uint8Array | string, bytes: Buffer];

let cached: readonly CompatValue[] | undefined;

/**
 * JSON text (written as a string, with non-ASCII characters), all 256 byte
 * values, and a large thesaurus as the codec stores it (`ZSTD` + a zstd frame,
 * above the compression threshold). Built once per file.
 */
export function compatValues(): readonly CompatValue[] {
  if (cached) return cached;
  const doc = JSON.stringify({ id: "café", title: "Café ☕ 日本語 🚀", body: "x".repeat(300) });
  const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const terms = Object.fromEntries(
    Array.from({ length: 40_000 }, (_, i) => [`term_${i}`, { id: i, nterm: `concept ${i % 700}` }]),
  );
  const zstd = Buffer.from(maybeCompress(Buffer.from(JSON.stringify({ name: "big", data: terms }))));
  if (!isCompressed(zstd)) throw new Error("the thesaurus should have been stored compressed");
  cached = [
    ["document_cafe.json", doc, Buffer.from(doc)],
    ["bytes/every-byte.bin", new Uint8Array(everyByte), everyByte],
    ["thesaurus_big.json", zstd, zstd],
  ];
  return cached;
}
