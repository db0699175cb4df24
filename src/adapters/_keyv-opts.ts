/** The `opts` object of the Keyv store (`keyv.ts`), as Keyv reads it. @module */

/**
 * Keyv 5.6 gives `keyv.iterator()` only to stores whose `opts.dialect` or
 * `opts.url` names one of its built-in iterable adapters (a fixed list in its
 * source: sqlite, postgres, mysql, mongo, redis, valkey, etcd). This store
 * iterates the way the Redis store does (a prefix listing), so its `url` says so.
 */
export const KEYV_ITERABLE_AS = "redis";

/** The store's `opts`, as Keyv reads them (Keyv and its test suite may add fields). */
export interface KeyvTerraphimOpts {
  /** Always `"terraphim"`. */
  dialect: string;
  /** `terraphim://<root>`, tagged so that Keyv 5 exposes `keyv.iterator()` (see {@link KEYV_ITERABLE_AS}). */
  url: string;
  /** The checked `root` option. */
  root: string;
  /** The `throwOnErrors` option.. */
  throwOnErrors: boolean;
  [option: string]: unknown;
}
