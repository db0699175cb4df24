import { ProfileError, UnsupportedError } from "../errors.js";
import { fsOperator } from "./drivers/fs.js";
import { memoryOperator } from "./drivers/memory.js";
import { sqliteOperator } from "./drivers/sqlite.js";
import type { ChangeFeedSource, Operator, OperatorOptions } from "./types.js";

/** Schemes served by native drivers; everything else goes to OpenDAL. */
export const NATIVE_SCHEMES = ["memory", "dashmap", "sqlite", "fs"] as const;

/** Extra context for {@link createOperator}. */
export interface CreateOperatorContext {
  /** Profile name used in error messages. @default the scheme */
  profile?: string;
}

/**
 * Opens an operator for `scheme` with the option keys of a Rust settings
 * `[profiles.<name>]` table. `memory`, `dashmap`, `sqlite` and `fs` use
 * in-process drivers; `redis` (ioredis), `postgresql` and `mysql` (mysql2) use
 * native Node clients; any other scheme goes through Apache OpenDAL (`redb`,
 * `sled`, `s3`, ...). Drivers and clients are loaded only when first needed.
 *
 * A scheme nobody can serve is a `ProfileError`: a backend is never replaced
 * by another (the Rust crate silently turns unknown schemes into RAM).
 *
 * @example
 * const op = await createOperator("sqlite", { datadir: "/tmp/data", table: "terraphim_kv" });
 * await op.write("document_x.json", JSON.stringify({ id: "x" }));
 */
export async function createOperator(
  scheme: string,
  options: OperatorOptions = {},
  context: CreateOperatorContext = {},
): Promise<Operator> {
  if (typeof scheme !== "string" || !/^[a-z][a-z0-9_-]*$/i.test(scheme)) {
    throw new ProfileError(`Expected a storage scheme such as "memory" or "s3", got ${JSON.stringify(scheme)}`, {
      profile: context.profile,
    });
  }
  const profile = context.profile ?? scheme;
  switch (scheme.toLowerCase()) {
    case "memory":
      return memoryOperator({ scheme: "memory" });
    case "dashmap":
      return memoryOperator({ scheme: "dashmap" });
    case "sqlite":
      return sqliteOperator(options, profile);
    case "fs":
      return fsOperator(options, profile);
    // Network tiers on native Node clients (loaded only when configured).
    case "redis":
      return (await import("./drivers/redis.js")).redisOperator({ ...options }, profile);
    case "postgresql":
      return (await import("./drivers/postgresql.js")).postgresqlOperator({ ...options }, profile);
    case "mysql":
      return (await import("./drivers/mysql.js")).mysqlOperator({ ...options }, profile);
    default: {
      const { opendalOperator } = await import("./drivers/opendal.js");
      try {
        return await opendalOperator(scheme.toLowerCase(), { ...options }, { profile });
      } catch (err) {
        if (err instanceof UnsupportedError) {
          throw new ProfileError(
            `profiles.${profile}.type: storage scheme "${scheme}" is not supported: there is no native driver for it and the OpenDAL binding does not include it`,
            { profile, cause: err },
          );
        }
        throw err;
      }
    }
  }
}

/**
 * Where the server of a profile that is down reports its changes, from the scheme and options alone (no
 * I/O), so a coherence bus listens for them as soon as the server answers. Undefined for schemes whose
 * server cannot (S3, MySQL, files).
 * @throws ProfileError for bad options.
 */
export async function changeFeedOf(
  scheme: string,
  options: OperatorOptions,
  profile: string,
): Promise<ChangeFeedSource | undefined> {
  switch (scheme.toLowerCase()) {
    case "redis":
      return (await import("./drivers/redis.js")).redisChangeFeed({ ...options }, profile);
    case "postgresql":
      return (await import("./drivers/postgresql.js")).postgresqlChangeFeed({ ...options }, profile);
    default:
      return undefined;
  }
}

export type { Operator, OperatorCapabilities, OperatorOptions, StatResult } from "./types.js";
