/**
 * `terraphim-persistence/keyv`: a Keyv 5 store over a {@link DeviceStorage},
 * so `new Keyv({ store })` gets the tiered profiles (a memory cache over
 * SQLite, Redis, PostgreSQL, ...), their TTLs, fallback and write-back.
 *
 * Every Keyv key maps injectively to a storage key under
 * `<root>/<namespace>/` (`_keyv-keys.ts`); the entry keeps the original key
 * beside the value (`_keyv-entry.ts`). Errors are `error` events, as in
 * Keyv's own stores.
 *
 * @example
 * import Keyv from "keyv";
 * import { KeyvTerraphim } from "terraphim-persistence/keyv";
 * const store = await KeyvTerraphim.fromSettings({ profiles: { mem: { type: "memory" }, db: { type: "sqlite", datadir: "./data", table: "kv" } } });
 * const keyv = new Keyv({ store, namespace: "sessions" });
 * await keyv.set("user:1", { name: "Ada" }, 60_000);
 *
 * @module
 */
import { EventEmitter } from "node:events";
import type { KeyvStoreAdapter, StoredData } from "keyv";
import {
  ClosedError,
  DeviceStorage,
  type DeviceStorageOptions,
  InvalidKeyError,
  type KeyListing,
  type LoadOutcome,
  NotFoundError,
  PersistenceError,
  type SaveOptions,
  type StorageSettings,
} from "../index.js";
import { decodeEntry, type KeyvEntry, owns, toStoredEntry } from "./_keyv-entry.js";
import { checkRoot, isHashed, namespaceSegment, segmentOf } from "./_keyv-keys.js";
import { BATCH, inBatches, incomplete } from "./_keyv-listing.js";
import { KEYV_ITERABLE_AS, type KeyvTerraphimOpts } from "./_keyv-opts.js";

export type { KeyvTerraphimOpts } from "./_keyv-opts.js";

/** Options of {@link KeyvTerraphim}. */
export interface KeyvTerraphimOptions {
  /**
   * The storage holding the entries. Other data may share it: this store
   * touches only keys under {@link root}.
   * @example { storage: await DeviceStorage.fromSettings(settings) }
   */
  storage: DeviceStorage;
  /**
   * Storage key folder of every entry (`<root>/<namespace>/<key>`): a valid
   * storage key, not starting with `.terraphim-`. Two stores with different
   * roots never see each other's entries.
   * @default "keyv"
   * @example { root: "apps/web/keyv" }
   */
  root?: string;
  /**
   * Also reject the call (after the `error` event) when it fails; otherwise a
   * failed call resolves to `undefined` / `false`, as Keyv's stores do.
   * @default false
   * @example { throwOnErrors: true }
   */
  throwOnErrors?: boolean;
  /**
   * Close the storage on `disconnect()`. A storage you pass in is yours to
   * close; {@link KeyvTerraphim.fromSettings} opens one and closes it.
   * @default false (true from `fromSettings`)
   * @example { closeStorage: true }
   */
  closeStorage?: boolean;
}

/** Options of {@link KeyvTerraphim.fromSettings}: the store's, and the storage's. */
export interface KeyvTerraphimSettingsOptions extends Omit<KeyvTerraphimOptions, "storage"> {
  /**
   * Options of the storage it opens (logger, probe reads, live ranking).
   * @default {}
   * @example { storageOptions: { logger: silentLogger } }
   */
  storageOptions?: DeviceStorageOptions;
}

/**
 * A Keyv 5 store adapter over a {@link DeviceStorage}: `get`, `set` (ttl in
 * ms, kept as the storage's TTL), `delete`, `clear` (this namespace only),
 * `has`, the `*Many` variants, `iterator(namespace)` and `disconnect`. An
 * `EventEmitter`: a failed call emits `error` (Keyv forwards it) and resolves
 * to `undefined` / `false`, or also rejects with `throwOnErrors`. With no
 * `error` listener at all, the call rejects: an error is never dropped.
 *
 * @example
 * const keyv = new Keyv({ store: new KeyvTerraphim({ storage }), namespace: "cache" });
 * await keyv.set("a", 1, 1000);
 * for await (const [key, value] of keyv.iterator!(undefined)) console.log(key, value);
 */
export class KeyvTerraphim extends EventEmitter implements Omit<KeyvStoreAdapter, "setMany"> {
  /** Options as Keyv reads them. */
  readonly opts: KeyvTerraphimOpts;
  /** The namespace Keyv gives this store (`keyv` by default); `clear` and the iterator stay in it. */
  namespace: string | undefined;
  /** The storage the entries live in. */
  readonly storage: DeviceStorage;
  readonly #root: string;
  readonly #throwOnErrors: boolean;
  readonly #closeStorage: boolean;
  /** Errors already emitted by a batch call, so the call's own handler does not emit them twice. */
  readonly #emitted = new WeakSet<object>();
  #disconnected = false;

  /**
   * @throws PersistenceError when `storage` is not a DeviceStorage; InvalidKeyError for a bad `root`.
   */
  constructor(options: KeyvTerraphimOptions) {
    super();
    const storage: unknown = (options as Partial<KeyvTerraphimOptions> | undefined)?.storage;
    if (!(storage instanceof DeviceStorage)) {
      const got = storage === null ? "null" : typeof storage === "object" ? storage.constructor?.name : typeof storage;
      throw new PersistenceError(`Expected \`storage\` to be a DeviceStorage, got ${got}`);
    }
    this.storage = storage;
    this.#root = checkRoot(options.root ?? "keyv");
    this.#throwOnErrors = options.throwOnErrors === true;
    this.#closeStorage = options.closeStorage === true;
    this.opts = {
      dialect: "terraphim",
      url: `terraphim://${this.#root}?iterable-as=${KEYV_ITERABLE_AS}`,
      root: this.#root,
      throwOnErrors: this.#throwOnErrors,
    };
  }

  /**
   * Opens a storage from settings (as {@link DeviceStorage.fromSettings}) and
   * a store over it; `disconnect()` closes that storage.
   * @example
   * const store = await KeyvTerraphim.fromSettings({ profiles: { mem: { type: "memory" } } });
   */
  static async fromSettings(
    settings: StorageSettings,
    options: KeyvTerraphimSettingsOptions = {},
  ): Promise<KeyvTerraphim> {
    const { storageOptions, ...rest } = options;
    const storage = await DeviceStorage.fromSettings(settings, storageOptions);
    return new KeyvTerraphim({ ...rest, storage, closeStorage: rest.closeStorage ?? true });
  }

  /**
   * The storage key holding Keyv key `key` (as Keyv passes it, namespace
   * prefix included) in `namespace`: different keys never share one.
   * @example
   * store.storageKey("keyv:Foo"); // "keyv/kkeyv/kkeyv~3a~46oo"
   */
  storageKey(key: string, namespace: string | undefined = this.namespace): string {
    return this.#locate(key, namespace).storageKey;
  }

  /** The value Keyv stored under `key`, or `undefined` (absent, expired, or a failed read: then an `error` event). */
  get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    const ns = this.namespace;
    return this.#guard(undefined, async () => (await this.#read(key, ns))?.value as StoredData<Value> | undefined);
  }

  /** The values of `keys`, in order, `undefined` where absent; each failed key is an `error` event. */
  getMany<Value>(keys: string[]): Promise<Array<StoredData<Value | undefined>>> {
    const ns = this.namespace;
    return this.#guard(
      keys.map(() => undefined),
      async () => {
        const located = keys.map((key) => this.#locate(key, ns));
        const outcomes = await this.storage.loadValues(
          located.map((l) => l.storageKey),
          decodeEntry,
        );
        const errors: unknown[] = [];
        const values = outcomes.map((o, i) => {
          if (o.ok) return owns(o.value, keys[i] as string, ns) ? (o.value.value as StoredData<Value>) : undefined;
          if (!(o.error instanceof NotFoundError)) errors.push(o.error);
          return undefined;
        });
        for (const err of errors) this.#emitOnce(err);
        if (errors.length > 0 && this.#throwOnErrors) throw errors[0];
        return values;
      },
    );
  }

  /**
   * Stores `value` (what Keyv's serializer gives, or any structured-cloneable
   * value) under `key`, in every profile. `ttl` in ms becomes the storage's
   * TTL; none, 0 or not a positive finite number: no expiry.
   * @returns true, or false when the save failed (an `error` event).
   */
  set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    const ns = this.namespace;
    return this.#guard(false, async () => {
      const { storageKey } = this.#locate(key, ns);
      const options: SaveOptions = typeof ttl === "number" && Number.isFinite(ttl) && ttl > 0 ? { ttlMs: ttl } : {};
      await this.storage.saveValue(storageKey, toStoredEntry(ns, key, value), options);
      return true;
    });
  }

  /**
   * {@link set} of each entry, in parallel: each entry's result, in order
   * (Keyv's `setMany` returns them; its store type says `void`, hence the `Omit` above).
   */
  setMany(entries: { key: string; value: unknown; ttl?: number }[]): Promise<boolean[]> {
    return Promise.all(entries.map((e) => this.set(e.key, e.value, e.ttl)));
  }

  /** Deletes `key` from every profile. @returns whether it was there (false on failure, with an `error` event). */
  delete(key: string): Promise<boolean> {
    const ns = this.namespace;
    return this.#guard(false, () => this.#deleteOne(key, ns));
  }

  /** Deletes each of `keys`. @returns whether any of them was there. */
  deleteMany(keys: string[]): Promise<boolean> {
    const ns = this.namespace;
    return this.#guard(false, async () => {
      const deleted = await inBatches(keys, (key) => this.#deleteOne(key, ns));
      return deleted.some(Boolean);
    });
  }

  /**
   * Deletes every entry of this store's namespace (never another namespace's,
   * never data outside `root`), from every profile. Keys are found by listing
   * the profiles that can list; if one cannot be listed (down, failing, or no
   * listing at all), what was found is still deleted and an `error` event
   * names the profiles missed. Deletes that fail (a profile down) are one
   * more `error` event: the first failure, naming each profile's outcome.
   */
  clear(): Promise<void> {
    const ns = this.namespace;
    return this.#guard(undefined, async () => {
      const { keys, missed } = await this.storage.listKeys(this.#folder(ns));
      const deletes = await inBatches(keys, (storageKey) =>
        this.storage.deleteValue(storageKey).then(
          () => undefined,
          (err: unknown) => err,
        ),
      );
      if (missed.length > 0) this.#report(incomplete("clear", ns, missed));
      const failed = deletes.filter((err) => err !== undefined);
      // One event for the deletes, however many failed: the first names each profile's outcome.
      if (failed.length > 0) throw failed[0];
    });
  }

  /** Whether `key` holds an unexpired entry (false on failure, with an `error` event). */
  has(key: string): Promise<boolean> {
    const ns = this.namespace;
    return this.#guard(false, () => this.#present(key, ns));
  }

  /** {@link has} of each key, in order. */
  hasMany(keys: string[]): Promise<boolean[]> {
    return Promise.all(keys.map((key) => this.has(key)));
  }

  /**
   * Every `[key, value]` of `namespace` (Keyv passes the store's), keys as
   * Keyv passed them to `set`, read in batches. Keys are listed from the
   * profiles that can list; a profile that could not be listed, or a key that
   * could not be read, is an `error` event and the iteration goes on.
   */
  async *iterator<Value>(
    namespace: string | undefined = this.namespace,
  ): AsyncGenerator<[string, Awaited<Value> | undefined], void> {
    let listed: KeyListing;
    try {
      this.#checkConnected();
      listed = await this.storage.listKeys(this.#folder(namespace));
    } catch (err) {
      this.#report(err);
      return;
    }
    if (listed.missed.length > 0) this.#report(incomplete("iterator", namespace, listed.missed));
    for (let i = 0; i < listed.keys.length; i += BATCH) {
      const chunk = listed.keys.slice(i, i + BATCH);
      let outcomes: LoadOutcome<KeyvEntry>[];
      try {
        outcomes = await this.storage.loadValues(chunk, decodeEntry);
      } catch (err) {
        this.#report(err);
        return;
      }
      for (const [j, o] of outcomes.entries()) {
        if (!o.ok) {
          // Gone since the listing (deleted, expired): not an error.
          if (!(o.error instanceof NotFoundError)) this.#report(o.error);
          continue;
        }
        // Only the entry whose own key maps here (not a foreign write under the root, not a hash twin).
        if (o.value.namespace !== namespace || this.storageKey(o.value.key, namespace) !== chunk[j]) continue;
        yield [o.value.key, o.value.value as Awaited<Value>];
      }
    }
  }

  /** Stops this store (later calls fail with `ClosedError`); closes the storage if it owns it. Idempotent. */
  async disconnect(): Promise<void> {
    if (this.#disconnected) return;
    this.#disconnected = true;
    if (this.#closeStorage) {
      await this.#guard(undefined, () => this.storage.close(), true);
    }
  }

  // ---- internals

  #locate(key: string, namespace: string | undefined): { storageKey: string; hashed: boolean } {
    if (typeof key !== "string") {
      throw new InvalidKeyError(`Expected a Keyv key to be a string, got ${key === null ? "null" : typeof key}`);
    }
    const nsSegment = namespaceSegment(namespace);
    const keySegment = segmentOf(key);
    return {
      storageKey: `${this.#root}/${nsSegment}/${keySegment}`,
      hashed: isHashed(nsSegment) || isHashed(keySegment),
    };
  }

  /** The entry of `key`, or undefined when absent, expired, or (hashed key) another key's. */
  async #read(key: string, namespace: string | undefined): Promise<KeyvEntry | undefined> {
    const { storageKey } = this.#locate(key, namespace);
    try {
      const { value } = await this.storage.loadValue(storageKey, decodeEntry);
      return owns(value, key, namespace) ? value : undefined;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async #present(key: string, namespace: string | undefined): Promise<boolean> {
    const { storageKey, hashed } = this.#locate(key, namespace);
    // A short storage key is this key's alone; a hashed one is checked against the key kept in the entry.
    return hashed ? (await this.#read(key, namespace)) !== undefined : this.storage.exists(storageKey);
  }

  async #deleteOne(key: string, namespace: string | undefined): Promise<boolean> {
    if (!(await this.#present(key, namespace))) return false;
    await this.storage.deleteValue(this.#locate(key, namespace).storageKey);
    return true;
  }

  /** The storage folder of `namespace`'s entries (what `clear` and the iterator list). */
  #folder(namespace: string | undefined): string {
    return `${this.#root}/${namespaceSegment(namespace)}/`;
  }

  #checkConnected(): void {
    if (this.#disconnected) {
      throw new ClosedError("KeyvTerraphim is disconnected: create a new store over the storage to use it again");
    }
  }

  /** Runs one call: a failure becomes an `error` event and `fallback` (or, with `throwOnErrors`, a rejection too). */
  async #guard<T>(fallback: T, fn: () => Promise<T>, afterDisconnect = false): Promise<T> {
    try {
      if (!afterDisconnect) this.#checkConnected();
      return await fn();
    } catch (err) {
      this.#report(err);
      return fallback;
    }
  }

  /** Emits `err` (once); with `throwOnErrors`, throws it too. */
  #report(err: unknown): void {
    this.#emitOnce(err);
    if (this.#throwOnErrors) throw err;
  }

  #emitOnce(err: unknown): void {
    if (typeof err === "object" && err !== null) {
      if (this.#emitted.has(err)) return;
      this.#emitted.add(err);
    }
    // With no listener, EventEmitter throws the error: the call rejects rather than losing it.
    this.emit("error", err);
  }
}
