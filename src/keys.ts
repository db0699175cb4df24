import { InvalidKeyError } from "./errors.js";

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
  if (typeof path !== "string") {
    throw new InvalidKeyError(`Expected key to be a string, got ${path === null ? "null" : typeof path}`, { profile });
  }
  const fail = (why: string): never => {
    const shown = path.length > 80 ? `${path.slice(0, 80)}...` : path;
    throw new InvalidKeyError(`Invalid key ${JSON.stringify(shown)}: ${why}`, { profile, key: shown });
  };
  if (path.length === 0) fail("empty");
  if (path.includes("\0")) fail("contains NUL");
  if (path.includes("\\")) fail("contains a backslash");
  if (path.startsWith("/")) fail("absolute path (starts with /)");
  if (Buffer.byteLength(path, "utf8") > MAX_KEY_BYTES) fail(`longer than ${MAX_KEY_BYTES} bytes`);
  for (const seg of path.split("/")) {
    if (seg === "") fail("empty path segment (// or trailing /)");
    if (seg === "." || seg === "..") fail(`"${seg}" segment`);
  }
  return path;
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
