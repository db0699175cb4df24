/**
 * The one home of the keys this library keeps for itself. Every reserved key
 * starts with {@link RESERVED_KEY_PREFIX}; a normalized key (`document_x.json`)
 * never starts with a dot, so none can collide with a user's value. Listings,
 * copies, comparisons and age cleanup skip them.
 *
 * @module
 */

/** Prefix of every key the library and its tools use for themselves. */
export const RESERVED_KEY_PREFIX = ".terraphim-";

/** Prefix of the start-up probe keys (written, timed and deleted at start-up). */
export const PROBE_KEY_PREFIX = `${RESERVED_KEY_PREFIX}probe-`;

/** Folder of the TTL metadata kept beside values (see `storage/expiry.ts`). */
export const META_PREFIX = `${RESERVED_KEY_PREFIX}meta/`;

/** Marker written to a tier once any value there has a TTL. */
export const META_MARKER_KEY = `${META_PREFIX}enabled`;

/** Prefix of the sidecars holding each value's expiry. */
export const META_SIDECAR_PREFIX = `${META_PREFIX}k/`;

/** Folder of the fs driver's temporary files (atomic writes). */
export const FS_TMP_DIR = `${RESERVED_KEY_PREFIX}tmp`;

/** Whether `key` is one of the reserved internal keys. */
export function isReservedKey(key: string): boolean {
  return key.startsWith(RESERVED_KEY_PREFIX);
}

/** The sidecar key holding the expiry of `key`. */
export function sidecarKey(key: string): string {
  return META_SIDECAR_PREFIX + key;
}
