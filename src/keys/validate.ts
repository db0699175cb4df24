import { InvalidKeyError } from "../errors.js";

/** Longest key accepted, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;

/**
 * Checks that `path` is a safe storage key: a non-empty `/`-separated relative
 * path with no NUL, no backslash, no empty, `.` or `..` segment, at most
 * {@link MAX_KEY_BYTES} bytes. Every driver calls this before any I/O, so no
 * key can address anything outside the driver's root.
 *
 * @throws InvalidKeyError naming what was wrong.
 */
export function validateKey(path: unknown, profile?: string): string {
  // A save checks its key in the storage and again in each driver: the same string, so the
  // last key found valid is remembered (validity depends only on the text).
  if (path === lastValid) return path as string;
  if (typeof path !== "string") {
    throw new InvalidKeyError(`Expected key to be a string, got ${path === null ? "null" : typeof path}`, { profile });
  }
  // One pass over the characters: this runs on every call of every driver, hot path included.
  const n = path.length;
  if (n === 0) return badKey(path, "empty", profile);
  if (path.charCodeAt(0) === 47) return badKey(path, "absolute path (starts with /)", profile);
  // A UTF-16 unit is at most 3 UTF-8 bytes: only long keys need counting.
  if (n > MAX_KEY_BYTES / 3 && Buffer.byteLength(path, "utf8") > MAX_KEY_BYTES) {
    return badKey(path, `longer than ${MAX_KEY_BYTES} bytes`, profile);
  }
  let segStart = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? path.charCodeAt(i) : 47;
    if (c === 47) {
      const len = i - segStart;
      if (len === 0) return badKey(path, "empty path segment (// or trailing /)", profile);
      if (len <= 2 && path.charCodeAt(segStart) === 46 && (len === 1 || path.charCodeAt(segStart + 1) === 46)) {
        return badKey(path, `"${path.slice(segStart, i)}" segment`, profile);
      }
      segStart = i + 1;
    } else if (c === 0) return badKey(path, "contains NUL", profile);
    else if (c === 92) return badKey(path, "contains a backslash", profile);
  }
  lastValid = path;
  return path;
}

/** The last key found valid; starts as a valid key, so no other value can match it untested. */
let lastValid = "a";

function badKey(path: string, why: string, profile: string | undefined): never {
  const shown = path.length > 80 ? `${path.slice(0, 80)}...` : path;
  throw new InvalidKeyError(`Invalid key ${JSON.stringify(shown)}: ${why}`, { profile, key: shown });
}

/**
 * Checks a `list` prefix: empty (everything) or a key-like string that may end
 * with `/`. Same rules as {@link validateKey} otherwise.
 */
export function validatePrefix(prefix: unknown, profile?: string): string {
  if (prefix === undefined || prefix === "") return "";
  if (typeof prefix !== "string") {
    throw new InvalidKeyError(`Expected list prefix to be a string, got ${typeof prefix}`, { profile });
  }
  validateKey(prefix.endsWith("/") ? prefix.slice(0, -1) : prefix, profile);
  return prefix;
}
