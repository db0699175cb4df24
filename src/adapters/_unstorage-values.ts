/**
 * How the unstorage driver stores its values: always as JSON, so every
 * profile, the tiered read path (fallback, write-back), compression, TTL and
 * the CLI treat them like any other value.
 *
 * - a string (what unstorage's `setItem` passes) is saved as a JSON string,
 *   so a string that looks like JSON (`"{}"`, `"0"`, `"null"`), the empty
 *   string and one starting with `ZSTD` all come back exactly;
 * - bytes (`setItemRaw`) are saved as `{ "$bytes": "<base64>" }`, which no
 *   string can be saved as, so raw values round-trip byte for byte.
 *
 * @module
 */
import { PersistenceError } from "../index.js";

/** The one field of the JSON object that holds raw bytes. */
const BYTES_FIELD = "$bytes";

/** The JSON form of raw bytes. */
export interface BytesEnvelope {
  readonly [BYTES_FIELD]: string;
}

const utf8 = new TextEncoder();

/** The JSON value to save for unstorage value `value` (a string as it is, bytes in a {@link BytesEnvelope}). */
export function toStored(value: string | Uint8Array): string | BytesEnvelope {
  if (typeof value === "string") return value;
  return { [BYTES_FIELD]: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
}

function isEnvelope(value: unknown): value is BytesEnvelope {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === BYTES_FIELD && typeof (value as BytesEnvelope)[BYTES_FIELD] === "string";
}

/**
 * What `getItem` returns for a loaded JSON value: the string, the bytes of a
 * raw value (as unstorage's memory driver does), or, for JSON this driver
 * did not write (a `Persistable` document under `base: ""`), its JSON text,
 * which unstorage parses into the object.
 */
export function toItem(value: unknown): string | Uint8Array {
  if (typeof value === "string") return value;
  if (isEnvelope(value)) return Uint8Array.from(Buffer.from(value[BYTES_FIELD], "base64"));
  return JSON.stringify(value);
}

/** What `getItemRaw` returns for a loaded JSON value: its bytes (a string's UTF-8 bytes). */
export function toRaw(value: unknown): Uint8Array {
  const item = toItem(value);
  return typeof item === "string" ? utf8.encode(item) : item;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return (value as object).constructor?.name ?? "object";
}

/**
 * The bytes or string of a raw value (`setItemRaw`): a `Uint8Array` (a
 * `Buffer` too), another typed array or `DataView`, an `ArrayBuffer`, or a string.
 * @throws PersistenceError naming the kind of value given (never the value).
 */
export function rawInput(value: unknown, key: string): string | Uint8Array {
  if (typeof value === "string" || value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new PersistenceError(
    `Expected a raw value to be a Uint8Array, ArrayBuffer or string, got ${kindOf(value)} (key ${JSON.stringify(key)})`,
    { key },
  );
}

/**
 * The string or bytes of a `setItem` value. unstorage passes a string; a
 * caller of the driver itself may pass bytes, a primitive (saved as
 * `String(value)`, as unstorage would) or a plain object or array (its JSON).
 * @throws PersistenceError for anything else (a function, a class instance without `toJSON`).
 */
export function itemInput(value: unknown, key: string): string | Uint8Array {
  if (typeof value === "string") return value;
  if (value === null || (typeof value !== "object" && typeof value !== "function" && value !== undefined)) {
    return String(value);
  }
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return rawInput(value, key);
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    if (Array.isArray(value) || proto === Object.prototype || proto === null) return JSON.stringify(value);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") return itemInput(toJSON.call(value), key);
  }
  throw new PersistenceError(
    `Expected an item value to be a string (or bytes, a primitive, a plain object or array), got ${kindOf(value)} (key ${JSON.stringify(key)})`,
    { key },
  );
}
