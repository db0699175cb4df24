/**
 * The small serde-like readers the domain schemas are built from
 * (`serdeSchema`, `field`, `str`, ...): Standard Schema objects that accept
 * and reject JSON the way `#[derive(Deserialize)]` does, with no validation
 * library needed. Internal: used by the domain modules, not re-exported.
 *
 * @module
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";

/**
 * @internal Path of a value inside the JSON being read: a linked list from the
 * innermost key up (`undefined` is the root), built as reading descends and
 * turned into an array only for an issue, so a valid value costs no arrays.
 */
export type SerdePath = { readonly up: SerdePath; readonly key: PropertyKey } | undefined;

function pathArray(p: SerdePath): PropertyKey[] {
  const out: PropertyKey[] = [];
  for (let n = p; n !== undefined; n = n.up) out.push(n.key);
  return out.reverse();
}

/** @internal Collects issues while a value is read. */
export class SerdeReader {
  readonly issues: StandardSchemaV1.Issue[] = [];
  /** Records an issue and returns `placeholder` so reading can go on and report every issue. */
  fail<T>(path: SerdePath, message: string, placeholder: T): T {
    if (this.issues.length < 50) this.issues.push({ message, path: pathArray(path) });
    return placeholder;
  }
}

/** @internal Reads one JSON value into `T`, recording issues in the reader. */
export type Parse<T> = (value: unknown, r: SerdeReader, path: SerdePath) => T;

/** @internal What a JSON value is, for messages ("expected a string, got null"). */
export function describeJson(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === "number") return `the number ${v}`;
  if (typeof v === "boolean") return `the boolean ${v}`;
  return `a ${typeof v}`;
}

/** @internal A JSON string. */
export const str: Parse<string> = (v, r, p) =>
  typeof v === "string" ? v : r.fail(p, `expected a string, got ${describeJson(v)}`, "");

/** @internal A JSON boolean. */
export const bool: Parse<boolean> = (v, r, p) =>
  typeof v === "boolean" ? v : r.fail(p, `expected a boolean, got ${describeJson(v)}`, false);

/** @internal A JSON number (serde's `f64` accepts integers too). */
export const float: Parse<number> = (v, r, p) =>
  typeof v === "number" ? v : r.fail(p, `expected a number, got ${describeJson(v)}`, 0);

/**
 * @internal An unsigned integer type of Rust (`u8`, `u32`, `u64`, `usize`).
 * Values above 2^53 parse, but (as everywhere in JavaScript) lose precision.
 */
export function uint(rustType: "u8" | "u32" | "u64" | "usize"): Parse<number> {
  const max = rustType === "u8" ? 255 : rustType === "u32" ? 4_294_967_295 : 2 ** 64 - 1;
  return (v, r, p) =>
    typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max
      ? v
      : r.fail(p, `expected ${rustType} (an integer from 0 to ${max}), got ${describeJson(v)}`, 0);
}

// chrono's DateTime<Utc> deserializes RFC 3339 (relaxed: `T`, `t` or space; any offset).
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** @internal A chrono `DateTime<Utc>`: an RFC 3339 string, kept as written (Rust writes nanoseconds). */
export const timestamp: Parse<string> = (v, r, p) =>
  typeof v === "string" && RFC3339.test(v) && !Number.isNaN(Date.parse(normalizeTimestamp(v)))
    ? v
    : r.fail(p, `expected an RFC 3339 timestamp string, got ${describeJson(v)}`, "");

/** @internal `2024-01-01 00:00:00z` -> `2024-01-01T00:00:00Z`, which `Date.parse` reads. */
export function normalizeTimestamp(ts: string): string {
  return `${ts.slice(0, 10)}T${ts.slice(11)}`.replace(/z$/, "Z");
}

/** @internal `Option<T>`: `null` is `None`. */
export function nullable<T>(parse: Parse<T>): Parse<T | null> {
  return (v, r, p) => (v === null ? null : parse(v, r, p));
}

/** @internal `Vec<T>`. */
export function arrayOf<T>(parse: Parse<T>): Parse<T[]> {
  return (v, r, p) => {
    if (!Array.isArray(v)) return r.fail(p, `expected an array, got ${describeJson(v)}`, []);
    return v.map((item, i) => parse(item, r, { up: p, key: i }));
  };
}

/** @internal `HashMap<String, T>` (JSON object keys are always strings). Insertion order is kept. */
export function mapOf<T>(parse: Parse<T>): Parse<Map<string, T>> {
  return (v, r, p) => {
    const o = jsonObject(v, r, p, "a map");
    const out = new Map<string, T>();
    if (o) for (const [k, item] of Object.entries(o)) out.set(k, parse(item, r, { up: p, key: k }));
    return out;
  };
}

/** @internal `HashMap<String, String>` as a plain object (own properties only, safe for `__proto__` keys). */
export const stringRecord: Parse<Record<string, string>> = (v, r, p) =>
  Object.fromEntries(mapOf(str)(v, r, p)) as Record<string, string>;

/** @internal A unit-variant enum serialized as one of `values`. */
export function oneOf<T extends string>(values: readonly T[]): Parse<T> {
  return (v, r, p) =>
    typeof v === "string" && (values as readonly string[]).includes(v)
      ? (v as T)
      : r.fail(
          p,
          `expected one of ${values.map((x) => JSON.stringify(x)).join(", ")}, got ${describeJson(v)}`,
          values[0]!,
        );
}

/** @internal A JSON object (a serde struct or map); `undefined` (with an issue) otherwise. */
export function jsonObject(
  v: unknown,
  r: SerdeReader,
  p: SerdePath,
  what: string,
): Record<string, unknown> | undefined {
  if (v !== null && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  return r.fail(p, `expected ${what} (a JSON object), got ${describeJson(v)}`, undefined);
}

/** @internal Marks a struct field without a default: missing is an error, as serde's "missing field". */
export const REQUIRED = Symbol("required");

/**
 * @internal Reads struct field `key`. A missing field takes `ifMissing()` (serde's
 * `#[serde(default)]`, and the implicit `None` of `Option` fields) or is an issue
 * when `ifMissing` is {@link REQUIRED}. Unknown fields are never looked at (serde ignores them).
 */
export function field<T>(
  o: Record<string, unknown>,
  key: string,
  parse: Parse<T>,
  r: SerdeReader,
  p: SerdePath,
  ifMissing: (() => T) | typeof REQUIRED,
): T {
  // `undefined` counts as missing: JSON.stringify leaves such a property out.
  if (!Object.hasOwn(o, key) || o[key] === undefined) {
    if (ifMissing === REQUIRED) return r.fail({ up: p, key }, `missing field \`${key}\``, undefined as T);
    return ifMissing();
  }
  return parse(o[key], r, { up: p, key });
}

/** @internal Option fields: missing or `null` is `None`. */
export const none = (): null => null;

/** @internal Wraps a reader as a Standard Schema (vendor `terraphim-persistence`). */
export function serdeSchema<T>(parse: Parse<T>): StandardSchemaV1<unknown, T> {
  return {
    "~standard": {
      version: 1,
      vendor: "terraphim-persistence",
      validate(value: unknown): StandardSchemaV1.Result<T> {
        const r = new SerdeReader();
        const out = parse(value, r, undefined);
        return r.issues.length > 0 ? { issues: r.issues } : { value: out };
      },
    },
  };
}
