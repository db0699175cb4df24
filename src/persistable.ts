import type { StandardSchemaV1 } from "@standard-schema/spec";
import { DeserializeError } from "./errors.js";
import { normalizeKey } from "./keys/index.js";
import { DeviceStorage } from "./storage/device-storage.js";
import { NO_HIT } from "./storage/read.js";
import type { Tier } from "./storage/tier.js";
import type { Decoder, GetOrSetOptions, LoadResult } from "./storage/types.js";

/**
 * Builds a decoder from a Standard Schema (zod 4, valibot, arktype, ...):
 * the validated (possibly transformed) output, or a `DeserializeError`
 * listing the issues.
 */
export function schemaDecoder<S extends StandardSchemaV1>(schema: S): Decoder<StandardSchemaV1.InferOutput<S>> {
  const fail = (issues: readonly StandardSchemaV1.Issue[]): never => {
    const text = issues
      .slice(0, 5)
      .map((i) => {
        const path = (i.path ?? []).map((p) => (typeof p === "object" ? String(p.key) : String(p))).join(".");
        return path ? `${path}: ${i.message}` : i.message;
      })
      .join("; ");
    throw new DeserializeError(`Stored value does not match the schema: ${text}`);
  };
  return (json: unknown) => {
    const r = schema["~standard"].validate(json);
    if (r instanceof Promise) {
      return r.then((res) => (res.issues ? fail(res.issues) : res.value));
    }
    return r.issues ? fail(r.issues) : r.value;
  };
}

const decoders = new WeakMap<object, Decoder<unknown>>();
/** Storage given to an object; kept outside the object so it is never serialised. */
const storages = new WeakMap<Persistable, DeviceStorage>();

/** Static side of a Persistable subclass. */
export interface PersistableClass {
  /** Optional Standard Schema the stored JSON must satisfy (schema evolution). */
  schema?: StandardSchemaV1 | undefined;
}

/**
 * An object saved as JSON under its own key, across every profile of a
 * {@link DeviceStorage}: the Rust crate's `Persistable` trait as a class.
 *
 * Fields are the object's own enumerable properties (`JSON.stringify(this)`;
 * override `toJSON` to change that). Declare `static schema` (zod, valibot,
 * arktype) to have loads validate the stored value: a value in the fastest
 * profile that no longer fits is replaced from a slower profile.
 *
 * @example
 * class Note extends Persistable {
 *   static schema = z.object({ id: z.string(), text: z.string() });
 *   text = "";
 *   constructor(public id: string) { super(); }
 *   getKey() { return `note_${this.normalizeKey(this.id)}.json`; }
 * }
 * await new Note("a").save();
 * const note = await new Note("a").load();
 */
export abstract class Persistable {
  /** The storage key of this object, e.g. `document_<normalized id>.json`. */
  abstract getKey(): string;

  /** The Rust crate's key normalisation (see {@link normalizeKey}). */
  normalizeKey(s: string): string {
    return normalizeKey(s);
  }

  /** Uses `storage` for this object instead of the process singleton. Returns `this`. */
  withStorage(storage: DeviceStorage): this {
    storages.set(this, storage);
    return this;
  }

  /** The storage this object uses: the one given to {@link withStorage}, else `DeviceStorage.instance()`. */
  storage(): Promise<DeviceStorage> {
    const given = storages.get(this) ?? DeviceStorage.current;
    return given ? Promise.resolve(given) : DeviceStorage.instance();
  }

  /** The profiles (fastest first) and the fastest operator, as the Rust `load_config`. */
  async loadConfig(): Promise<{ ops: ReadonlyMap<string, Tier>; fastestOp: DeviceStorage["fastestOp"] }> {
    const s = await this.storage();
    return { ops: s.ops, fastestOp: s.fastestOp };
  }

  /** Saves to every profile in parallel. @throws PartialWriteError listing each profile's outcome. */
  save(): Promise<void> {
    return this.saveToAll();
  }

  /** Saves to every profile in parallel. @throws PartialWriteError listing each profile's outcome. */
  async saveToAll(): Promise<void> {
    await (await this.storage()).saveValue(this.getKey(), this);
  }

  /** Saves to one profile. @throws ProfileError for an unknown profile, listing the available ones. */
  saveToOne(profile: string): Promise<void> {
    return this.saveToProfile(profile);
  }

  /** Saves to one profile. @throws ProfileError for an unknown profile, listing the available ones. */
  async saveToProfile(profile: string): Promise<void> {
    await (await this.storage()).saveValue(this.getKey(), this, { profiles: [profile] });
  }

  /** Deletes this object's key from every profile. */
  async delete(): Promise<void> {
    await (await this.storage()).deleteValue(this.getKey());
  }

  /**
   * Loads the stored value of this object's key into a new instance of the
   * same class (this object is not changed). Fields missing from the stored
   * JSON keep this object's values.
   * @throws NotFoundError, DeserializeError, BackendError (see `DeviceStorage.loadValue`).
   */
  load(): Promise<this> {
    // Given storage, else the process singleton once it is ready: both take the one-hop path.
    const storage = storages.get(this) ?? DeviceStorage.current;
    // A subclass that overrides loadWithSource keeps being called through it.
    if (storage === undefined || this.loadWithSource !== Persistable.prototype.loadWithSource) {
      return this.loadWithSource().then((r) => r.value);
    }
    // A hit takes one settled promise, anything else one hop (a hot load is about a µs; each hop costs a tenth).
    try {
      const key = this.getKey();
      const decoder = this.#decoder() ?? objectDecoder;
      const hit = storage.loadHit(key, decoder);
      if (hit !== NO_HIT) return Promise.resolve(this.fromStored(hit));
      return storage.loadValue(key, decoder).then((r) => this.fromStored(r.value));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** As {@link load}, also telling which profile served the value and whether a write-back was scheduled. */
  async loadWithSource(): Promise<LoadResult<this>> {
    const storage = await this.storage();
    const r = await storage.loadValue(this.getKey(), this.#decoder());
    return { value: this.fromStored(r.value), profile: r.profile, writeBack: r.writeBack };
  }

  /**
   * The stored value of this object's key (a new instance, as {@link load}) while fresh, else the
   * object `factory` builds, saved to every profile and returned: `DeviceStorage.getOrSet` with this
   * class's schema. A stored value the schema refuses is replaced by the factory's.
   * @throws FactoryError (`E_FACTORY`) when nothing is stored and the factory fails.
   * @example
   * const doc = await new Document("a").getOrSet(() => fetchDocument("a"), { ttlMs: 60_000, graceMs: 600_000 });
   */
  async getOrSet(
    factory: () => this | Promise<this>,
    options: Omit<GetOrSetOptions<this>, "decode"> = {},
  ): Promise<this> {
    const storage = await this.storage();
    const decoder = this.#decoder() ?? objectDecoder;
    const decode = async (json: unknown) => this.fromStored(await decoder(json));
    return adoptLoaded(this, await storage.getOrSet(this.getKey(), factory, { ...options, decode }));
  }

  /**
   * Builds the loaded instance from the stored (validated) JSON: an object
   * with this object's prototype, this object's fields, then the stored ones.
   * The constructor is not called, so override this in classes with `#private`
   * fields or fields needing conversion (dates, maps, nested classes).
   */
  protected fromStored(data: unknown): this {
    const copy = Object.create(Object.getPrototypeOf(this)) as this;
    copyOwnFields(copy, this);
    copyOwnFields(copy, data);
    return adoptLoaded(this, copy);
  }

  #decoder(): Decoder<unknown> | undefined {
    const ctor = this.constructor as PersistableClass & {
      [FAST_DECODER]?: { schema: StandardSchemaV1; decoder: Decoder<unknown> };
    };
    const schema = ctor.schema;
    const fast = ctor[FAST_DECODER];
    if (fast && fast.schema === schema) return fast.decoder;
    if (!schema) return objectDecoder;
    let d = decoders.get(schema);
    if (!d) {
      d = schemaDecoder(schema);
      decoders.set(schema, d);
    }
    return d;
  }
}

/** @internal What `template.load()` returns for stored data its decoder accepted (its `fromStored`). */
export function loadedFrom<T extends Persistable>(template: T, data: unknown): T {
  return (template as unknown as { fromStored(data: unknown): T }).fromStored(data);
}

/** @internal `loaded` (built by `fromStored`) takes `template`'s storage, if it was given one. */
export function adoptLoaded<T extends Persistable>(template: T, loaded: T): T {
  const given = storages.get(template);
  if (given) storages.set(loaded, given);
  return loaded;
}

/**
 * @internal A static (symbol-keyed, so never part of a class's own API) giving
 * a faster decoder with the same rules as `schema`, used while the class's
 * `schema` is still that one: Document's builds the instance directly.
 */
export const FAST_DECODER: unique symbol = Symbol("terraphim.fastDecoder");

/**
 * Own enumerable fields of `from` onto `to`, as plain data properties. Unlike
 * `Object.assign`, a stored `"__proto__"` key cannot replace the prototype.
 */
function copyOwnFields(to: object, from: unknown): void {
  if (from === null || typeof from !== "object") return;
  // Object.assign is the fast copy, but it would call the `__proto__` setter for a stored "__proto__" key.
  if (!Object.hasOwn(from, "__proto__")) {
    Object.assign(to, from);
    return;
  }
  const target = to as Record<string, unknown>;
  const source = from as Record<string, unknown>;
  for (const key of Object.keys(source)) {
    if (key !== "__proto__") target[key] = source[key];
  }
}

/** Without a schema, the stored JSON must at least be an object. */
const objectDecoder: Decoder<unknown> = (json) => {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new DeserializeError(
      `Expected a JSON object, got ${json === null ? "null" : Array.isArray(json) ? "an array" : typeof json}`,
    );
  }
  return json;
};
