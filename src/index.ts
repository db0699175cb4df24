/**
 * terraphim-persistence: tiered multi-backend persistence for TypeScript,
 * compatible with the Rust `terraphim_persistence` crate.
 *
 * @example
 * import { DeviceStorage, Document } from "terraphim-persistence";
 * const storage = await DeviceStorage.instance(); // settings.toml, or memory + sqlite by default
 * const doc = Object.assign(new Document("my-doc"), { title: "Hello", body: "World" });
 * await doc.withStorage(storage).save();
 * const back = await new Document("my-doc").withStorage(storage).load();
 */

export type { LiveRankingOptions } from "./_live-ranking.js";
export type { Decoder } from "./_tiered-read.js";
export {
  COMPRESSION_LEVEL,
  COMPRESSION_THRESHOLD,
  type CodecContext,
  type DecompressOptions,
  decodeJson,
  encodeJson,
  isCompressed,
  maybeCompress,
  maybeDecompress,
  ZSTD_MAGIC,
} from "./codec.js";
export {
  type CleanupReport,
  DeviceStorage,
  type DeviceStorageOptions,
  type LoadOutcome,
  type LoadResult,
  PROBE_KEY_PREFIX,
  type PrefetchResult,
  type ProfileEntry,
  type ProfileStats,
  type SaveOptions,
  type StorageSettings,
} from "./device-storage.js";
export { CHANNELS } from "./diagnostics.js";
export * from "./domain/index.js";
export * from "./errors.js";
export { MAX_KEY_BYTES, normalizeKey, validateKey, validatePrefix } from "./keys.js";
export { consoleLogger, type Logger, silentLogger } from "./logger.js";
export {
  CHAOS_METHODS,
  type ChaosCalls,
  type ChaosFaults,
  type ChaosMethod,
  type ChaosOperator,
  chaosOperator,
  seededRandom,
} from "./operators/chaos.js";
export { type FsOperatorOptions, fsOperator } from "./operators/fs.js";
export { type CreateOperatorContext, createOperator, NATIVE_SCHEMES } from "./operators/index.js";
export { type MemoryOperatorOptions, memoryOperator } from "./operators/memory.js";
export { parseSize, type QuotaOptions, quotaOperator } from "./operators/quota.js";
export { type SqliteOperatorOptions, sqliteOperator } from "./operators/sqlite.js";
export type {
  Operator,
  OperatorCapabilities,
  OperatorOptions,
  QuotaUsage,
  StatResult,
  StoredValue,
} from "./operators/types.js";
export { Persistable, type PersistableClass, schemaDecoder } from "./persistable.js";
export * from "./settings/index.js";
