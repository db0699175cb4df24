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
export { CHANNELS } from "./diagnostics.js";
export * from "./domain/index.js";
export * from "./errors.js";
export {
  isReservedKey,
  MAX_KEY_BYTES,
  normalizeKey,
  PROBE_KEY_PREFIX,
  RESERVED_KEY_PREFIX,
  validateKey,
  validatePrefix,
} from "./keys/index.js";
export { consoleLogger, type Logger, silentLogger } from "./logger.js";
export { type FsOperatorOptions, fsOperator } from "./operators/drivers/fs.js";
export { type MemoryOperatorOptions, memoryOperator } from "./operators/drivers/memory.js";
export { type SqliteOperatorOptions, sqliteOperator } from "./operators/drivers/sqlite.js";
export { type CreateOperatorContext, createOperator, NATIVE_SCHEMES } from "./operators/index.js";
export {
  type Requirement,
  type RuntimeSupport,
  runtimeSupport,
  schemeRequirements,
} from "./operators/requirements.js";
export type {
  ChangeFeedSource,
  Operator,
  OperatorCapabilities,
  OperatorOptions,
  PostgresqlChangeFeed,
  QuotaUsage,
  RedisChangeFeed,
  StatResult,
  StoredValue,
} from "./operators/types.js";
export {
  CHAOS_METHODS,
  type ChaosCalls,
  type ChaosFaults,
  type ChaosMethod,
  type ChaosOperator,
  chaosOperator,
  seededRandom,
} from "./operators/wrappers/chaos.js";
export { parseSize, type QuotaOptions, quotaOperator } from "./operators/wrappers/quota.js";
export { OPTIONAL_PEERS, type OptionalPeer, type OptionalPeerName } from "./optional-peers.js";
export { Persistable, type PersistableClass, schemaDecoder } from "./persistable.js";
export { RUNTIME, type RuntimeInfo, type RuntimeName } from "./runtime.js";
export * from "./settings/index.js";
export * from "./storage/index.js";
