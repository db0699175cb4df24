/**
 * How the unstorage driver names its values: an unstorage key (`a:b:c`) is
 * the storage key `<base>/a/b/c.json`, one path segment per `:` segment.
 *
 * The mapping is injective and reversible ({@link UnstorageKeys.fromStorage}
 * gives back exactly the key {@link UnstorageKeys.toStorage} was given): in
 * each segment `%`, `/`, `\` and NUL are percent-encoded, and so are a
 * leading `.` (no `.`/`..` segment, no reserved `.terraphim-` key, no hidden
 * file) and the `.` of a trailing `.json`. So a folder name never ends in
 * `.json` and a value's name always does: `a` and `a:b` can both exist on a
 * file-system profile (file `a.json`, folder `a/`).
 *
 * @module
 */
import { InvalidKeyError, isReservedKey, validateKey } from "../index.js";

/** What every value's storage key ends with (the values are JSON). */
const LEAF_SUFFIX = ".json";
/** Characters no segment may hold as they are: the escape itself, the path separator, backslash, NUL. */
const ESCAPED = /[%/\\\0]/g;
const PERCENT_HEX = /%([0-9A-F]{2})/g;

function escapeChar(c: string): string {
  return `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`;
}

/** One `:` segment as one path segment (see the module header). */
function encodeSegment(segment: string): string {
  let out = segment.replace(ESCAPED, escapeChar);
  if (out.startsWith(".")) out = `%2E${out.slice(1)}`;
  if (out.endsWith(LEAF_SUFFIX)) out = `${out.slice(0, -LEAF_SUFFIX.length)}%2E${LEAF_SUFFIX.slice(1)}`;
  return out;
}

/** The segment {@link encodeSegment} made `encoded` from, or `undefined` if it made no such segment. */
function decodeSegment(encoded: string): string | undefined {
  const segment = encoded.replace(PERCENT_HEX, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
  return segment.length > 0 && encodeSegment(segment) === encoded ? segment : undefined;
}

function badKey(key: string, why: string): never {
  throw new InvalidKeyError(
    `Expected an unstorage key of non-empty ":"-separated segments, got ${JSON.stringify(key)} (${why})`,
    {
      key,
    },
  );
}

/** The `:` segments of an unstorage key or base, checked. */
function segmentsOf(key: unknown): string[] {
  if (typeof key !== "string") {
    throw new InvalidKeyError(`Expected an unstorage key to be a string, got ${key === null ? "null" : typeof key}`);
  }
  if (key.length === 0) badKey(key, "empty");
  // A lone surrogate has no UTF-8 form: two such keys would reach a backend as the same bytes.
  if (!key.isWellFormed()) badKey(key, "a lone UTF-16 surrogate");
  const segments = key.split(":");
  if (segments.some((s) => s.length === 0)) badKey(key, "an empty segment");
  return segments;
}

/** The key mapping of one driver: its storage folder (`base`) and the two directions. */
export class UnstorageKeys {
  /** The storage-key prefix of every value: `"<base>/"`, or `""` for no base. */
  readonly prefix: string;

  /**
   * @param base storage folder of the values (`"unstorage"`, `"app/cache"`), `""` for none.
   * @throws InvalidKeyError when `base` is not a valid storage key, or a reserved one.
   */
  constructor(base: string) {
    const trimmed = typeof base === "string" ? base.replace(/\/+$/, "") : base;
    if (trimmed !== "") {
      validateKey(trimmed);
      if (isReservedKey(trimmed)) {
        throw new InvalidKeyError(
          `Expected \`base\` not to start with ".terraphim-" (reserved), got ${JSON.stringify(base)}`,
        );
      }
    }
    this.prefix = trimmed === "" ? "" : `${trimmed}/`;
  }

  /**
   * The storage key of an unstorage key: `a:b` is `<base>/a/b.json`.
   * @throws InvalidKeyError for an empty key or segment, a lone surrogate, or a key too long once mapped.
   */
  toStorage(key: string): string {
    const mapped = `${this.prefix}${segmentsOf(key).map(encodeSegment).join("/")}${LEAF_SUFFIX}`;
    return validateKey(mapped);
  }

  /** The unstorage key whose storage key is `storageKey`, or `undefined` when none is (a foreign key). */
  fromStorage(storageKey: string): string | undefined {
    if (!storageKey.startsWith(this.prefix) || !storageKey.endsWith(LEAF_SUFFIX)) return undefined;
    const path = storageKey.slice(this.prefix.length, -LEAF_SUFFIX.length);
    const segments: string[] = [];
    for (const encoded of path.split("/")) {
      const segment = decodeSegment(encoded);
      if (segment === undefined) return undefined;
      segments.push(segment);
    }
    return segments.join(":");
  }

  /**
   * The storage prefix to list for the keys under an unstorage base (`a:b:`
   * or `a:b`: the keys starting `a:b:`), or under every key for `""` / `undefined`.
   * @throws InvalidKeyError for an empty segment or a lone surrogate.
   */
  listPrefix(base: string | undefined): string {
    const trimmed = (base ?? "").replace(/:+$/, "");
    if (trimmed === "") return this.prefix;
    return `${this.prefix}${segmentsOf(trimmed).map(encodeSegment).join("/")}/`;
  }

  /**
   * The unstorage base (`a:b`, `""` for every key) of the keys a storage
   * prefix may cover (a `clear` on the coherence bus): the base of its last
   * whole folder, so a prefix ending inside a segment gives the folder
   * holding it. `undefined` when it covers none of this driver's keys.
   */
  baseOf(storagePrefix: string): string | undefined {
    if (this.prefix.startsWith(storagePrefix)) return "";
    if (!storagePrefix.startsWith(this.prefix)) return undefined;
    const folder = storagePrefix.slice(this.prefix.length, storagePrefix.lastIndexOf("/") + 1);
    if (folder === "") return "";
    const segments = folder.slice(0, -1).split("/").map(decodeSegment);
    return segments.every((s) => s !== undefined) ? segments.join(":") : undefined;
  }
}
