/**
 * The storage layer every profile uses, shaped like OpenDAL's Operator.
 * Native drivers (memory, dashmap, sqlite, fs) and the OpenDAL adapter all
 * implement it, and all pass the same conformance suite.
 */

/** What an operator can do. Core code branches on these, never on a scheme name. */
export interface OperatorCapabilities {
  /** `list(prefix)` works. When false, `list` throws `UnsupportedError`. */
  readonly list: boolean;
  /** `stat` reports `lastModified`. */
  readonly lastModified: boolean;
  /** Data survives the process (and a restart of the machine). */
  readonly durable: boolean;
  /** Other processes see the same data (a file or a server). */
  readonly shared: boolean;
  /** Reads can be answered synchronously through `readSync`. */
  readonly syncRead: boolean;
  /**
   * Most keys one batched call ({@link Operator.readMany}, {@link Operator.digestMany}) should
   * carry: callers split larger sets into calls of this size. Absent: no batched calls.
   */
  readonly batchSize?: number;
  /** Digests the backend computes of stored values, and how it hands them out. Absent: none. */
  readonly digest?: DigestCapability;
}

/**
 * What digest a backend computes of a stored value, so that a local copy can be compared
 * with it without reading the value: the hash algorithm (lowercase hex, as `node:crypto`
 * gives it for the same bytes) and where the digests come from: `keys`, many named keys per
 * call ({@link Operator.digestMany}: PostgreSQL `md5(value)`, a Redis script's
 * `redis.sha1hex`, MySQL `MD5()`); `listing`, with the listing ({@link Operator.listDigests}:
 * S3 ETags, 1,000 keys per call).
 */
export interface DigestCapability {
  readonly algorithm: "md5" | "sha1";
  readonly source: "keys" | "listing";
}

/** Metadata of a stored value. */
export interface StatResult {
  /** Size of the stored bytes. */
  contentLength: number;
  /** When the value was last written, where the backend knows. */
  lastModified?: Date | undefined;
}

/** A stored value as {@link Operator.readStoredSync} returns it. */
export interface StoredValue {
  /** The bytes, or a string standing for exactly their UTF-8 encoding. */
  readonly data: Uint8Array | string;
  /** The stored length in bytes. */
  readonly size: number;
}

/** A key/value store addressed by `/`-separated relative paths. */
export interface Operator {
  /** The scheme this operator was created with (`memory`, `sqlite`, `s3`, ...). */
  readonly scheme: string;
  /** What this operator can do. */
  readonly capabilities: OperatorCapabilities;
  /** Reads the bytes at `path`; throws `NotFoundError` when absent. */
  read(path: string): Promise<Uint8Array>;
  /**
   * Synchronous read for in-process backends (`capabilities.syncRead`);
   * returns `undefined` when absent. Lets a cache hit skip promise overhead.
   * The result may be the stored buffer itself: callers must not mutate it.
   */
  readSync?(path: string): Uint8Array | undefined;
  /**
   * As `readSync`, but the value in the form the store keeps it: bytes, or a
   * string that stands for exactly its UTF-8 bytes (an operator returns a
   * string only when that holds: the bytes are valid UTF-8). Lets a JSON value
   * held as text skip the encode/decode pass. `size` is the stored byte length.
   * The result may be the store's own object: callers must not mutate it.
   */
  readStoredSync?(path: string): StoredValue | undefined;
  /**
   * `readStoredSync` of many paths at once, in one call to the backend where
   * it can (sqlite: one SELECT per 32 keys). The result is in the order of
   * `paths`, `undefined` where absent. Throws as `readSync`.
   */
  readManyStoredSync?(paths: readonly string[]): (StoredValue | undefined)[];
  /**
   * Reads many paths in as few round trips as the backend allows (Redis `MGET`, one per hash
   * slot on a Cluster; PostgreSQL `= ANY($1)`; MySQL `IN (...)`), at most
   * `capabilities.batchSize` per call. In the order of `paths`, `undefined` where absent.
   * Throws as `read` throws for anything but absence (one failure fails the call).
   */
  readMany?(paths: readonly string[]): Promise<(Uint8Array | undefined)[]>;
  /**
   * As {@link readMany}, each value in the form the client hands it out: a string where it stands
   * for exactly the stored bytes (valid UTF-8: a JSON value then skips a decode pass), else bytes.
   */
  readManyStored?(paths: readonly string[]): Promise<(StoredValue | undefined)[]>;
  /**
   * The server's digest of each value (`capabilities.digest`, source `keys`), lowercase hex,
   * without sending the values: `undefined` where absent. At most `capabilities.batchSize`
   * paths per call.
   */
  digestMany?(paths: readonly string[]): Promise<(string | undefined)[]>;
  /**
   * Every key under `prefix` with the digest its listing carries (`capabilities.digest`, source
   * `listing`): S3 ETags, the MD5 of a value uploaded in one part. `undefined` where the listing's
   * digest is not a digest of the bytes (a multipart upload's ETag, `<md5 of the parts>-<n>`).
   * Reserved keys included, as `list` returns them.
   */
  listDigests?(prefix?: string): Promise<Map<string, string | undefined>>;
  /** Writes (creates or replaces) the value at `path`. Strings are stored as UTF-8. */
  write(path: string, data: Uint8Array | string): Promise<void>;
  /**
   * Synchronous write for in-process backends (memory, sqlite); throws as
   * `write` rejects. Lets a save to such profiles skip a promise per profile.
   * With `adopt`, the caller hands `data` over and never touches it again, so
   * an in-memory store may keep it without a copy.
   */
  writeSync?(path: string, data: Uint8Array | string, adopt?: boolean): void;
  /** Size (and, where known, modification time); throws `NotFoundError` when absent. */
  stat(path: string): Promise<StatResult>;
  /**
   * Deletes `path`; deleting a missing key succeeds. Resolves `false` where the backend says nothing
   * was there (redis, postgresql: the coherence bus then expects no report of it), else nothing.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: most drivers resolve with nothing, which `void` states
  delete(path: string): Promise<boolean | void>;
  /** Whether `path` exists. */
  exists(path: string): Promise<boolean>;
  /**
   * Every key starting with `prefix` (default: all keys), recursively, sorted.
   * Throws `UnsupportedError` where `capabilities.list` is false.
   */
  list(prefix?: string): Promise<string[]>;
  /** Releases the backend (file handles, locks, sockets). Further calls throw `ClosedError`. */
  close(): Promise<void>;
  /** Current usage against a quota, where one is enforced (see `quotaOperator`). */
  usage?(): QuotaUsage;
  /**
   * Drops the backend's connections and reconnects (network backends). Storage
   * calls it after repeated timeouts, since a client can stay wedged after an outage.
   */
  reset?(): void;
  /**
   * Where the backend's server can announce every change of this store, whoever made it
   * (Redis client-side-caching invalidations, a PostgreSQL trigger): the coherence bus
   * listens there instead of relying on announcements by writers. Absent where the server
   * cannot (S3, MySQL, files).
   */
  readonly changeFeed?: ChangeFeedSource;
  /**
   * Makes each write and delete announce its key on `channel` in the same statement (PostgreSQL:
   * `pg_notify` in the upsert's own statement), where the table has no trigger to do it; `undefined`
   * stops it. What the coherence bus asks of a store whose change feed it could not install.
   */
  announceWrites?(channel: string | undefined): void;
}

/** A server that can announce changes of a store: see {@link Operator.changeFeed}. */
export type ChangeFeedSource = RedisChangeFeed | PostgresqlChangeFeed;

/** Redis (6+): `CLIENT TRACKING ... BCAST PREFIX <prefix>` on every master. */
export interface RedisChangeFeed {
  readonly kind: "redis";
  /** One server, or a cluster's seed nodes (every master is found from them). */
  readonly targets: readonly ({ host: string; port: number; tls: boolean; ca?: string } | { path: string })[];
  readonly cluster: boolean;
  readonly username: string | undefined;
  /** Never shown in messages. */
  readonly password: string | undefined;
  /** The key prefix of the store (its root); `""` for none. */
  readonly prefix: string;
}

/** PostgreSQL: a trigger on the table calls `pg_notify` for every row changed, in the writer's transaction. */
export interface PostgresqlChangeFeed {
  readonly kind: "postgresql";
  /** The profile's connection string (holds secrets: never shown). */
  readonly connectionString: string;
  /** Where, for messages: `host:port/db` (no credentials). */
  readonly where: string;
  /** The table and key column, unquoted. */
  readonly table: string;
  readonly keyField: string;
  /** The key prefix of the store (its root); `""` for none. */
  readonly prefix: string;
}

/** Usage of a profile with a quota. */
export interface QuotaUsage {
  items: number;
  bytes: number;
  maxItems: number | undefined;
  maxSize: number | undefined;
  /** `lru` evicts least-recently-used entries; `reject` refuses the write. */
  policy: "lru" | "reject";
  /** Entries evicted so far (lru). */
  evictions: number;
}

/** Options of a profile: the string values of a `[profiles.<name>]` table. */
export type OperatorOptions = Readonly<Record<string, string>>;
