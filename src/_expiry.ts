/**
 * Time-to-live metadata, kept *beside* values so that a Rust reader (which
 * parses the value JSON only) is never affected: in every profile, a value
 * saved with a TTL has a sidecar `.terraphim-meta/k/<key>` holding
 * `{"expires_at": <ms since epoch>}`, and the profile holds the marker
 * `.terraphim-meta/enabled` once any TTL was written to it.
 *
 * At start-up each profile is asked for the marker. Without it, no sidecar
 * exists and the index is complete (empty). With it, a listable profile's
 * sidecars are read into the index; a profile that cannot list is
 * "incomplete" and its sidecars are read on demand (one extra read per hit).
 * A store that never used TTL pays nothing on its hot path.
 */
import { NotFoundError } from "./errors.js";
import type { Operator } from "./operators/types.js";

export const META_PREFIX = ".terraphim-meta/";
const MARKER = `${META_PREFIX}enabled`;
const SIDECARS = `${META_PREFIX}k/`;

/** The sidecar key holding the expiry of `key`. */
export function sidecarKey(key: string): string {
  return SIDECARS + key;
}

interface ProfileIndex {
  /** Every sidecar of the profile is in `expires`. */
  complete: boolean;
  /** key -> expiry (ms since epoch). */
  expires: Map<string, number>;
  /** The marker is known to be written. */
  marked: boolean;
}

const encoder = new TextEncoder();

export class ExpiryIndex {
  readonly #profiles = new Map<string, ProfileIndex>();
  /** False until some profile holds TTL metadata: until then every check is a no-op. */
  #active = false;

  get active(): boolean {
    return this.#active;
  }

  /** Reads the marker (and, where possible, every sidecar) of each profile. */
  async init(entries: readonly { name: string; op: Operator }[]): Promise<void> {
    await Promise.all(
      entries.map(async ({ name, op }) => {
        const index: ProfileIndex = { complete: true, expires: new Map(), marked: false };
        this.#profiles.set(name, index);
        if (!(await op.exists(MARKER))) return;
        index.marked = true;
        this.#active = true;
        if (!op.capabilities.list) {
          index.complete = false;
          return;
        }
        for (const side of await op.list(SIDECARS)) {
          const at = await readExpiry(op, side);
          if (at !== undefined) index.expires.set(side.slice(SIDECARS.length), at);
        }
      }),
    );
  }

  /**
   * Expiry of `key` in `profile`: a number, `undefined` (none), or a promise
   * when the profile's index is incomplete and the sidecar must be read.
   */
  expiresAt(profile: string, op: Operator, key: string): number | undefined | Promise<number | undefined> {
    if (!this.#active) return undefined;
    const index = this.#profiles.get(profile);
    if (!index) return undefined;
    if (index.complete) return index.expires.get(key);
    return readExpiry(op, sidecarKey(key));
  }

  /** Whether a write of `key` must touch metadata in `profile` (set one, or clear an old one). */
  needsMeta(profile: string, key: string, expiresAt: number | undefined): boolean {
    if (expiresAt !== undefined) return true;
    const index = this.#profiles.get(profile);
    return index !== undefined && (!index.complete || index.expires.has(key));
  }

  /** Writes `bytes` (or text) with its expiry (sidecar first, so a crash never leaves a value looking immortal). */
  async write(profile: string, op: Operator, key: string, bytes: Uint8Array | string, expiresAt: number | undefined) {
    const index = this.#index(profile);
    if (expiresAt !== undefined) {
      if (!index.marked) {
        await op.write(MARKER, "{}");
        index.marked = true;
      }
      this.#active = true;
      await op.write(sidecarKey(key), encoder.encode(JSON.stringify({ expires_at: expiresAt })));
      index.expires.set(key, expiresAt);
      await op.write(key, bytes);
    } else {
      await op.write(key, bytes);
      await this.#clear(index, op, key);
    }
  }

  /** Deletes `key` and its sidecar. */
  async delete(profile: string, op: Operator, key: string): Promise<void> {
    await op.delete(key);
    await this.#clear(this.#index(profile), op, key);
  }

  /** Keys whose expiry has passed, per profile (known ones only). */
  expired(profile: string, now = Date.now()): string[] {
    const out: string[] = [];
    for (const [k, at] of this.#profiles.get(profile)?.expires ?? []) if (at <= now) out.push(k);
    return out;
  }

  /** Whether every sidecar of `profile` is known (so expired entries can be enumerated). */
  complete(profile: string): boolean {
    return this.#profiles.get(profile)?.complete ?? true;
  }

  async #clear(index: ProfileIndex, op: Operator, key: string): Promise<void> {
    if (index.complete && !index.expires.has(key)) return;
    await op.delete(sidecarKey(key));
    index.expires.delete(key);
  }

  #index(profile: string): ProfileIndex {
    let index = this.#profiles.get(profile);
    if (!index) {
      index = { complete: true, expires: new Map(), marked: false };
      this.#profiles.set(profile, index);
    }
    return index;
  }
}

async function readExpiry(op: Operator, side: string): Promise<number | undefined> {
  try {
    const meta = JSON.parse(Buffer.from(await op.read(side)).toString("utf8")) as { expires_at?: unknown };
    return typeof meta.expires_at === "number" ? meta.expires_at : undefined;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    // An unreadable sidecar must not make a value immortal or vanish: treat it as no expiry, but say so.
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}
