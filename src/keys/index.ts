/**
 * Keys: the Rust crate's normalisation, the safety rules every driver checks,
 * and the keys reserved for the library itself.
 *
 * @module
 */
export { normalizeKey } from "./normalize.js";
export {
  FS_TMP_DIR,
  isReservedKey,
  META_MARKER_KEY,
  META_PREFIX,
  META_SIDECAR_PREFIX,
  PROBE_KEY_PREFIX,
  RESERVED_KEY_PREFIX,
  sidecarKey,
} from "./reserved.js";
export { MAX_KEY_BYTES, validateKey, validatePrefix } from "./validate.js";
