/**
 * What a Keyv entry is stored as: one JSON object holding the original Keyv
 * key and namespace beside the value, so a read can check that a (hashed)
 * storage key holds this key's entry, and the iterator gives back the keys
 * as Keyv passed them. A string value (what Keyv's serializer gives) is kept
 * as it is; any other value (Keyv with `serialize: undefined` passes
 * `{ value, expires }` objects) is kept in V8's structured-clone format, so
 * Buffers, BigInts, Dates, Maps and `undefined` come back as they went in.
 *
 * @module
 */
import { deserialize, serialize } from "node:v8";
import { DeserializeError, PersistenceError } from "../index.js";

/** Format version of the stored entry. */
const ENTRY_VERSION = 1;

/** The JSON saved under an entry's storage key. */
export interface StoredEntry {
  /** Format version ({@link ENTRY_VERSION}). */
  keyv: number;
  /** The key as Keyv passed it (namespace prefix included). */
  key: string;
  /** The store's namespace when the entry was written; `null` for none. */
  ns: string | null;
  /** A string value, as given. */
  text?: string;
  /** Any other value: V8 structured-clone bytes, base64. */
  v8?: string;
}

/** A stored entry, decoded. */
export interface KeyvEntry {
  key: string;
  namespace: string | undefined;
  value: unknown;
}

/**
 * The JSON to save for `value` under Keyv key `key` in `namespace`.
 * @throws PersistenceError when the value cannot be cloned (a function, a symbol), naming its type only.
 */
export function toStoredEntry(namespace: string | undefined, key: string, value: unknown): StoredEntry {
  const head = { keyv: ENTRY_VERSION, key, ns: namespace ?? null };
  if (typeof value === "string") return { ...head, text: value };
  let bytes: Buffer;
  try {
    bytes = serialize(value);
  } catch {
    // V8's message quotes the value: say only its type.
    throw new PersistenceError(
      `Expected a Keyv value to be a string (Keyv's serializer) or a structured-cloneable value (serialize: undefined), got a ${describe(value)}`,
    );
  }
  return { ...head, v8: bytes.toString("base64") };
}

/**
 * Decodes the JSON of a stored entry (the storage's decoder: a value that
 * does not fit is replaced from a slower profile, else a `DeserializeError`).
 * @throws DeserializeError naming what was expected and the shape found (never a value).
 */
export function decodeEntry(json: unknown): KeyvEntry {
  if (typeof json !== "object" || json === null) throw badEntry(`a ${describe(json)}`);
  const e = json as Partial<StoredEntry>;
  if (e.keyv !== ENTRY_VERSION) throw badEntry(`format version ${String(e.keyv)}`);
  if (typeof e.key !== "string") throw badEntry(`a \`key\` of type ${describe(e.key)}`);
  if (e.ns !== null && typeof e.ns !== "string") throw badEntry(`an \`ns\` of type ${describe(e.ns)}`);
  const namespace = e.ns ?? undefined;
  if (typeof e.text === "string") return { key: e.key, namespace, value: e.text };
  if (typeof e.v8 !== "string") throw badEntry("neither `text` (string) nor `v8` (string)");
  try {
    return { key: e.key, namespace, value: deserialize(Buffer.from(e.v8, "base64")) };
  } catch {
    throw badEntry("`v8` bytes that do not deserialize");
  }
}

function badEntry(got: string): DeserializeError {
  return new DeserializeError(
    `Expected a Keyv entry ({ keyv: ${ENTRY_VERSION}, key, ns, text | v8 }) in the storage, got ${got}`,
  );
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** Whether `entry` is the one of `key` in `namespace` (a hashed storage key could, in theory, hold another's). */
export function owns(entry: KeyvEntry, key: string, namespace: string | undefined): boolean {
  return entry.key === key && entry.namespace === namespace;
}
