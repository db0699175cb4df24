/**
 * How a Keyv key becomes a storage key, injectively. Keyv passes any string
 * (`keyv:foo`, spaces, slashes, unicode, lone surrogates, "", 10 kB); storage
 * keys are `/`-separated paths of at most `MAX_KEY_BYTES` bytes. A key is
 * stored at `<root>/<namespace segment>/<key segment>`, each segment:
 *
 * - `k` + the escaped text, when that fits in {@link SEGMENT_MAX} characters.
 *   Escaping is a prefix-free code per UTF-16 unit: `a-z 0-9 . _ -` stay,
 *   any other ASCII unit is `~` + 2 hex digits (first digit 0-7), any other
 *   unit is `~u` + 4 hex digits. So `Foo` and `foo`, `é` composed and
 *   decomposed, `a b` and `a_b` all differ, and a storage key is lowercase
 *   ASCII: no case-insensitive or normalising file system can merge two.
 * - `h` + SHA-256 of the escaped text + a readable head, when it does not
 *   fit. Two such keys meet only if SHA-256 collides, and the entry keeps
 *   the original key beside the value, so a read checks it (see `_keyv-entry.ts`).
 *
 * `k…` and `h…` never meet, and the leading letter keeps a segment non-empty
 * and never `.`, `..` or hidden. The namespace segment of "no namespace" is `-`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { InvalidKeyError, isReservedKey, MAX_KEY_BYTES, validateKey } from "../index.js";

/**
 * Longest segment in characters (all ASCII): fits a 255-byte file name (fs
 * profiles), and root + two segments stay under `MAX_KEY_BYTES`.
 */
export const SEGMENT_MAX = 200;

/** Characters of escaped text kept readable in a hashed segment. */
const HASHED_HEAD = 48;

/** Segment standing for "no namespace" (`useKeyPrefix: false` stores, or `namespace: undefined`). */
const NO_NAMESPACE = "-";

/** Longest `root`, in bytes: leaves room for two full segments under `MAX_KEY_BYTES`. */
export const ROOT_MAX_BYTES = MAX_KEY_BYTES - 2 * (SEGMENT_MAX + 1);

const HEX = "0123456789abcdef";

/** The escape of one UTF-16 unit (see the module header). */
function escapeUnit(c: number): string {
  const keep =
    (c >= 97 && c <= 122) || // a-z
    (c >= 48 && c <= 57) || // 0-9
    c === 45 || // -
    c === 46 || // .
    c === 95; // _
  if (keep) return String.fromCharCode(c);
  if (c < 0x80) return `~${HEX[c >> 4]}${HEX[c & 15]}`;
  return `~u${c.toString(16).padStart(4, "0")}`;
}

/** One path segment for `text`: `k<escaped>` or `h<sha256>-<head>` (see the module header). */
export function segmentOf(text: string): string {
  let escaped = "";
  let headEnd = 0; // the longest run of whole escapes within HASHED_HEAD
  for (let i = 0; i < text.length; i++) {
    escaped += escapeUnit(text.charCodeAt(i));
    if (escaped.length <= HASHED_HEAD) headEnd = escaped.length;
  }
  if (escaped.length < SEGMENT_MAX) return `k${escaped}`;
  // Hash the escaped text, an injective image of the UTF-16 units (UTF-8 would merge lone surrogates).
  const hash = createHash("sha256").update(escaped, "latin1").digest("hex");
  return `h${hash}-${escaped.slice(0, headEnd)}`;
}

/** Whether {@link segmentOf} hashes `text` (then a read must check the key kept in the entry). */
export function isHashed(segment: string): boolean {
  return segment.charCodeAt(0) === 104; // h
}

/** The namespace segment: `-` for no namespace, else {@link segmentOf}. */
export function namespaceSegment(namespace: string | undefined): string {
  return namespace === undefined ? NO_NAMESPACE : segmentOf(namespace);
}

/**
 * Checks the adapter's `root` once: a valid storage key, not reserved, short
 * enough for two segments. A trailing `/` is dropped.
 * @throws InvalidKeyError saying what was expected and what was got.
 */
export function checkRoot(root: unknown): string {
  if (typeof root !== "string") {
    throw new InvalidKeyError(`Expected \`root\` to be a string, got ${root === null ? "null" : typeof root}`);
  }
  const trimmed = root.endsWith("/") ? root.slice(0, -1) : root;
  validateKey(trimmed);
  if (isReservedKey(trimmed)) {
    throw new InvalidKeyError(`Expected \`root\` not to start with ".terraphim-" (reserved), got "${trimmed}"`);
  }
  const bytes = Buffer.byteLength(trimmed, "utf8");
  if (bytes > ROOT_MAX_BYTES) {
    throw new InvalidKeyError(`Expected \`root\` to be at most ${ROOT_MAX_BYTES} bytes, got ${bytes}`);
  }
  return trimmed;
}
