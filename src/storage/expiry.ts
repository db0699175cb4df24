/**
 * Time-to-live metadata of one tier, kept *beside* values so that a Rust
 * reader (which parses the value JSON only) is never affected: a value saved
 * with a TTL has a sidecar `.terraphim-meta/k/<key>` holding
 * `{"expires_at": <ms since epoch>}`, and the tier holds the marker
 * `.terraphim-meta/enabled` once any TTL was written to it.
 *
 * At start-up each tier is asked for the marker. Without it, no sidecar exists
 * and the index is complete (empty). With it, a listable tier's sidecars are
 * read into the index; a tier that cannot list is "incomplete" and its
 * sidecars are read on demand (one extra read per hit). A store that never
 * used TTL pays nothing on its hot path.
 *
 * @module
 */
import { NotFoundError } from "../errors.js";
import { isReservedKey, META_MARKER_KEY, META_SIDECAR_PREFIX, sidecarKey } from "../keys/index.js";
import type { Operator } from "../operators/types.js";

const encoder = new TextEncoder();

export class TierExpiry {
  readonly #op: Operator;
  /** Every sidecar of the tier is in `#expires`. */
  #complete = true;
  /** key -> expiry (ms since epoch). */
  readonly #expires = new Map<string, number>();
  /** The marker is known to be written: some value of this tier has (or had) a TTL. */
  #marked = false;

  /** Purges of expired values in the background. */
  readonly #background = new Set<Promise<void>>();

  constructor(op: Operator) {
    this.#op = op;
  }

  /** Whether the tier holds TTL metadata at all (until then every check is a no-op). */
  get active(): boolean {
    return this.#marked;
  }

  /** Listed keys without the library's reserved ones and (where the index is complete) the expired ones. */
  visible(keys: readonly string[], now = Date.now()): string[] {
    return keys.filter((k) => !isReservedKey(k) && !(this.#complete && (this.#expires.get(k) ?? Infinity) <= now));
  }

  /** Whether every sidecar is known (so expired values can be enumerated). */
  get complete(): boolean {
    return this.#complete;
  }

  /** Reads the marker and, where the tier can list, every sidecar. */
  async init(): Promise<void> {
    const op = this.#op;
    if (!(await op.exists(META_MARKER_KEY))) return;
    this.#marked = true;
    if (!op.capabilities.list) {
      this.#complete = false;
      return;
    }
    for (const side of await op.list(META_SIDECAR_PREFIX)) {
      const at = await readExpiry(op, side);
      if (at !== undefined) this.#expires.set(side.slice(META_SIDECAR_PREFIX.length), at);
    }
  }

  /** Expiry of `key`: a number, `undefined` (none), or a promise when the sidecar must be read. */
  expiresAt(key: string): number | undefined | Promise<number | undefined> {
    if (!this.#marked) return undefined;
    if (this.#complete) return this.#expires.get(key);
    return readExpiry(this.#op, sidecarKey(key));
  }

  /** Whether a write of `key` must touch metadata (set an expiry, or clear an old one). */
  needsMeta(key: string, expiresAt: number | undefined): boolean {
    return expiresAt !== undefined || !this.#complete || this.#expires.has(key);
  }

  /** Writes `data` with its expiry (sidecar first, so a crash never leaves a value looking immortal). */
  async write(key: string, data: Uint8Array | string, expiresAt: number | undefined): Promise<void> {
    const op = this.#op;
    if (expiresAt === undefined) {
      await op.write(key, data);
      await this.#clear(key);
      return;
    }
    if (!this.#marked) {
      await op.write(META_MARKER_KEY, "{}");
      this.#marked = true;
    }
    await op.write(sidecarKey(key), encoder.encode(JSON.stringify({ expires_at: expiresAt })));
    this.#expires.set(key, expiresAt);
    await op.write(key, data);
  }

  /** Deletes `key` and its sidecar. */
  async delete(key: string): Promise<void> {
    await this.#op.delete(key);
    await this.#clear(key);
  }

  /** Known keys whose expiry has passed. */
  expired(now = Date.now()): string[] {
    const out: string[] = [];
    for (const [k, at] of this.#expires) if (at <= now) out.push(k);
    return out;
  }

  /**
   * Removes an expired value in the background, run by `queue` (behind the
   * key's writes), unless it was rewritten meanwhile. Failures go to `failed`.
   */
  purge(key: string, queue: (task: () => Promise<void>) => Promise<void>, failed: (err: unknown) => void): void {
    const task = queue(async () => {
      const at = await this.expiresAt(key);
      if (at !== undefined && at <= Date.now()) await this.delete(key);
    })
      .catch(failed)
      .finally(() => this.#background.delete(task));
    this.#background.add(task);
  }

  /** Resolves when the background purges started so far are done. */
  async flush(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  async #clear(key: string): Promise<void> {
    if (this.#complete && !this.#expires.has(key)) return;
    await this.#op.delete(sidecarKey(key));
    this.#expires.delete(key);
  }
}

async function readExpiry(op: Operator, side: string): Promise<number | undefined> {
  try {
    const meta = JSON.parse(Buffer.from(await op.read(side)).toString("utf8")) as { expires_at?: unknown };
    return typeof meta.expires_at === "number" ? meta.expires_at : undefined;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    // An unreadable sidecar must not make a value immortal or vanish: treat it as no expiry.
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}
