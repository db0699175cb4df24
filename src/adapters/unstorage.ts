/**
 * An unstorage (1.17) driver over a {@link DeviceStorage}: unstorage's API,
 * mounts and helpers on tiered storage (fastest profile first, fallback,
 * write-back, TTL, compression, every profile written).
 *
 * Each unstorage key is one storage key: `a:b` is `<base>/a/b.json` (see
 * `_unstorage-keys.ts`); each value is JSON: a string as a JSON string, raw
 * bytes as `{ "$bytes": "<base64>" }` (see `_unstorage-values.ts`).
 *
 * @example
 * import { createStorage } from "unstorage";
 * import { terraphimDriver } from "terraphim-persistence/unstorage";
 * const storage = createStorage({ driver: terraphimDriver({ storage: await DeviceStorage.instance() }) });
 * await storage.setItem("users:42", { name: "Ada" });
 * await storage.getItem("users:42"); // { name: "Ada" }
 *
 * @module
 */
import { defineDriver, type StorageMeta, type TransactionOptions } from "unstorage";
import {
  ClosedError,
  DeviceStorage,
  type DeviceStorageOptions,
  NotFoundError,
  PersistenceError,
  type SaveOptions,
  type StorageSettings,
} from "../index.js";
import { UnstorageKeys } from "./_unstorage-keys.js";
import { listStored, metaOf } from "./_unstorage-tiers.js";
import { itemInput, rawInput, toItem, toRaw, toStored } from "./_unstorage-values.js";
import { Watchers } from "./_unstorage-watch.js";

/** The driver's `name`. */
export const DRIVER_NAME = "terraphim-persistence";
/** Storage folder of the values when no `base` is given. */
export const DEFAULT_BASE = "unstorage";
/** Deletes in flight at once in `clear`. */
const CLEAR_CONCURRENCY = 16;

/** Options of {@link terraphimDriver}. Give `storage` or `settings`, not both. */
export interface TerraphimDriverOptions {
  /**
   * An open storage to serve. The driver never closes it (its `dispose` only stops watching).
   * @example { storage: await DeviceStorage.instance() }
   */
  storage?: DeviceStorage | undefined;
  /**
   * Settings to open a storage from, on first use (`DeviceStorage.fromSettings`);
   * the driver owns it and closes it in `dispose`.
   * @example { settings: { profiles: { mem: { type: "memory" }, db: { type: "sqlite", datadir: "./data" } } } }
   */
  settings?: StorageSettings | undefined;
  /**
   * Options of the storage opened from `settings` (logger, probe, live ranking).
   * @example { settings, storageOptions: { logger: silentLogger } }
   */
  storageOptions?: DeviceStorageOptions | undefined;
  /**
   * Storage folder holding this driver's values: key `a:b` is `<base>/a/b.json`.
   * `""` puts values at the top level, beside (and listing) the library's own
   * `*.json` values, such as `Persistable` documents: `clear()` would remove those too.
   * @default "unstorage"
   * @example { base: "app/cache" }
   */
  base?: string | undefined;
  /**
   * Time to live in seconds of values set without a `ttl` option (as
   * unstorage's redis driver); 0 or unset: the profiles' own `ttl_ms`, if any.
   * @default undefined
   * @example { ttl: 3600 }
   */
  ttl?: number | undefined;
}

/** What unstorage passes to `setItem` / `setItemRaw` besides the value: `ttl` in seconds, as its redis driver. */
interface SetOptions extends TransactionOptions {
  ttl?: number;
}

function checkTtl(ttl: unknown, what: string): number | undefined {
  if (ttl === undefined || ttl === 0) return undefined;
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl < 0) {
    throw new PersistenceError(`Expected \`${what}\` to be a non-negative number of seconds, got ${String(ttl)}`);
  }
  return ttl * 1000;
}

/** The storage the driver serves: given, or opened from settings on first use (and closed by `dispose`). */
class StorageSource {
  #storage: DeviceStorage | undefined;
  #opening: Promise<DeviceStorage> | undefined;
  #disposed = false;
  readonly #open: (() => Promise<DeviceStorage>) | undefined;

  constructor(o: TerraphimDriverOptions) {
    if ((o.storage === undefined) === (o.settings === undefined)) {
      const got = o.storage === undefined ? "neither" : "both";
      throw new PersistenceError(`Expected \`storage\` or \`settings\` in the unstorage driver's options, got ${got}`);
    }
    if (o.storage !== undefined && !(o.storage instanceof DeviceStorage)) {
      const got = o.storage === null ? "null" : typeof o.storage === "object" ? "another object" : typeof o.storage;
      throw new PersistenceError(`Expected \`storage\` to be a DeviceStorage, got ${got}`);
    }
    this.#storage = o.storage;
    const settings = o.settings;
    this.#open = settings && (() => DeviceStorage.fromSettings(settings, o.storageOptions));
  }

  /** The storage if it is open (always, when given). */
  get current(): DeviceStorage | undefined {
    return this.#storage;
  }

  get(): Promise<DeviceStorage> {
    if (this.#storage) return Promise.resolve(this.#storage);
    if (this.#disposed) return Promise.reject(new ClosedError("The unstorage driver was disposed"));
    // A failed open is forgotten, so the next call tries again.
    this.#opening ??= this.#open!().then(
      (s) => (this.#storage = s),
      (err) => {
        this.#opening = undefined;
        throw err;
      },
    );
    return this.#opening;
  }

  /** Closes the storage if it was opened from settings. */
  async dispose(): Promise<void> {
    this.#disposed = true;
    if (!this.#open) return;
    const s = this.#storage ?? (await this.#opening?.catch(() => undefined));
    await s?.close();
  }
}

/** Runs `fn` over `items`, at most `limit` at a time; the first rejection rejects. */
async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * An unstorage driver over a {@link DeviceStorage} (every method of the
 * driver contract: items, raw items, batches, keys, clear, meta, dispose, watch).
 *
 * - `getItem` of a missing key is `null`; a key no profile could be asked
 *   about rejects with `UnavailableError`, never `null`.
 * - `setItemRaw` / `getItemRaw` round-trip bytes exactly; `getItemRaw` of a
 *   string value gives its UTF-8 bytes; `getItem` of a raw value gives the bytes.
 * - `ttl` (seconds) on `setItem` / `setItemRaw` sets a TTL, as the redis driver's.
 * - `getMeta`: `size` (stored bytes), `mtime` where a profile keeps it, `ttl` (seconds left).
 * - `watch` reports this driver's own saves and deletes (unstorage leaves
 *   that to a driver with `watch`) and, when the storage has a coherence bus
 *   (`onRemoteChange`), other instances' ones; a remote `clear` is one
 *   `remove` of the base it dropped.
 * @throws InvalidKeyError (`E_INVALID_KEY`) for a key that maps to no storage key (an empty segment, too long).
 *
 * @example
 * const driver = terraphimDriver({ settings: { profiles: { mem: { type: "memory" }, db: { type: "sqlite", datadir: "./data" } } } });
 * const storage = createStorage({ driver });
 * await storage.setItemRaw("img:logo", new Uint8Array([137, 80, 78, 71]));
 * await storage.dispose(); // closes the storage opened from the settings
 */
export const terraphimDriver = defineDriver<TerraphimDriverOptions, DeviceStorage | undefined>((options) => {
  const o = options ?? {};
  const source = new StorageSource(o);
  const keys = new UnstorageKeys(o.base ?? DEFAULT_BASE);
  const defaultTtlMs = checkTtl(o.ttl, "ttl");
  const watchers = new Watchers(keys, () => source.current?.logger);

  const saveOptions = (opts: SetOptions | undefined): SaveOptions => {
    const ttlMs = opts?.ttl === undefined ? defaultTtlMs : checkTtl(opts.ttl, "ttl");
    return ttlMs === undefined ? {} : { ttlMs };
  };
  const save = async (key: string, value: string | Uint8Array, opts: SetOptions | undefined) => {
    const storageKey = keys.toStorage(key);
    const saveOpts = saveOptions(opts);
    await (await source.get()).saveValue(storageKey, toStored(value), saveOpts);
    watchers.local("update", key);
  };
  /** The JSON value at `key`, or `undefined` when no profile holds it. */
  const load = async (key: string): Promise<unknown> => {
    const storageKey = keys.toStorage(key);
    try {
      return (await (await source.get()).loadValue(storageKey)).value;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  };
  /** This driver's keys under `base`, with their storage keys. */
  const entries = async (base: string | undefined): Promise<[key: string, storageKey: string][]> => {
    const prefix = keys.listPrefix(base);
    const found: [string, string][] = [];
    for (const storageKey of await listStored(await source.get(), prefix)) {
      const key = keys.fromStorage(storageKey);
      if (key !== undefined) found.push([key, storageKey]);
    }
    return found;
  };

  return {
    name: DRIVER_NAME,
    options: o,
    flags: { ttl: true },
    getInstance: () => source.current,
    async hasItem(key) {
      const storageKey = keys.toStorage(key);
      return (await source.get()).exists(storageKey);
    },
    async getItem(key) {
      const value = await load(key);
      return value === undefined ? null : toItem(value);
    },
    async getItemRaw(key) {
      const value = await load(key);
      return value === undefined ? null : toRaw(value);
    },
    async getItems(items) {
      const storageKeys = items.map((item) => keys.toStorage(item.key));
      const outcomes = await (await source.get()).loadValues(storageKeys);
      return outcomes.map((outcome, i) => {
        const key = items[i]!.key;
        if (outcome.ok) return { key, value: toItem(outcome.value) };
        if (outcome.error instanceof NotFoundError) return { key, value: null };
        throw outcome.error;
      });
    },
    async setItem(key, value, opts) {
      await save(key, itemInput(value, key), opts);
    },
    async setItemRaw(key, value, opts) {
      await save(key, rawInput(value, key), opts);
    },
    async setItems(items, commonOptions) {
      const values = items.map((item) => itemInput(item.value, item.key));
      await Promise.all(items.map((item, i) => save(item.key, values[i]!, { ...commonOptions, ...item.options })));
    },
    async removeItem(key) {
      const storageKey = keys.toStorage(key);
      await (await source.get()).deleteValue(storageKey);
      watchers.local("remove", key);
    },
    async getMeta(key): Promise<StorageMeta | null> {
      const storageKey = keys.toStorage(key);
      return metaOf(await source.get(), storageKey);
    },
    async getKeys(base) {
      return (await entries(base)).map(([key]) => key);
    },
    async clear(base) {
      const storage = await source.get();
      await eachLimit(await entries(base), CLEAR_CONCURRENCY, async ([key, storageKey]) => {
        await storage.deleteValue(storageKey);
        watchers.local("remove", key);
      });
    },
    async dispose() {
      watchers.clear();
      await source.dispose();
    },
    async watch(callback) {
      return watchers.add(await source.get(), callback);
    },
  };
});

export default terraphimDriver;
