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
 * A shared tier's sidecars are also written by other instances. Each change of
 * a key made elsewhere (reported by the coherence bus or the server) makes this
 * index forget the key's expiry ({@link TierExpiry.changedElsewhere}): its
 * sidecar is read again on the next look, and a write of it clears a sidecar
 * that may be there. So an expiry another instance set is honoured here, and
 * one set here never outlives another instance's later save without a TTL
 * (the purge would delete the newer value).
 *
 * @module
 */
import { NotFoundError } from "../errors.js";
import { isReservedKey, META_MARKER_KEY, META_SIDECAR_PREFIX, sidecarKey } from "../keys/index.js";
import type { Operator } from "../operators/types.js";
import { hexDigest } from "./digest.js";

const encoder = new TextEncoder();
/** Keys changed elsewhere remembered one by one; past this many, every expiry is read again until a reload. */
const MAX_UNKNOWN = 100_000;
/** How often a shared tier that has not seen the TTL marker looks for it again (ms). */
const MARKER_RECHECK_MS = 1_000;

export class TierExpiry {
  readonly #op: Operator;
  /** Every sidecar of the tier is in `#expires`. */
  #complete = true;
  /** key -> expiry (ms since epoch). */
  readonly #expires = new Map<string, number>();
  /** The marker is known to be written: some value of this tier has (or had) a TTL. */
  #marked = false;
  /** Keys changed elsewhere whose sidecar must be read again, with the change's number (a shared tier). */
  readonly #unknown = new Map<string, number>();
  /** Everything changed elsewhere (a clear): every sidecar is read on demand from now on. */
  #allUnknown = false;
  #changes = 0;
  #clears = 0;

  /** Purges of expired values in the background. */
  readonly #background = new Set<Promise<void>>();

  constructor(op: Operator) {
    this.#op = op;
    this.#shared = op.capabilities.shared;
  }

  /** Other instances write this tier: their sidecars may be anywhere once the store uses TTLs. */
  readonly #shared: boolean;
  /** When a shared tier last looked for the marker (ms since the epoch), while it had not seen it. */
  #markerCheckedAt = Date.now();

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
    this.#markerCheckedAt = Date.now();
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
    if (this.#unknown.size > 0 || this.#allUnknown) {
      const change = this.#unknown.get(key);
      if (change !== undefined || this.#allUnknown) return this.#reread(key, change);
    }
    if (!this.#marked) return undefined;
    if (this.#complete) return this.#expires.get(key);
    return readExpiry(this.#op, sidecarKey(key));
  }

  /** Whether a write of `key` must touch metadata (set an expiry, or clear an old one). */
  needsMeta(key: string, expiresAt: number | undefined): boolean {
    return expiresAt !== undefined || !this.#complete || this.#maySidecar(key);
  }

  /**
   * Whether `key` may have a sidecar here: one this index knows, one written elsewhere since, or (a
   * shared tier of a store that uses TTLs) one another instance wrote that no report told of (no bus).
   */
  #maySidecar(key: string): boolean {
    if (this.#expires.has(key) || this.#mayBeElsewhere(key)) return true;
    if (!this.#shared) return false;
    return this.#marked || Date.now() - this.#markerCheckedAt >= MARKER_RECHECK_MS;
  }

  /** A shared tier that has not seen the marker looks again (at most once a second: {@link #maySidecar}). */
  async #lookForMarker(): Promise<void> {
    if (this.#marked || Date.now() - this.#markerCheckedAt < MARKER_RECHECK_MS) return;
    this.#markerCheckedAt = Date.now();
    if (await this.#op.exists(META_MARKER_KEY)) this.#marked = true;
  }

  /**
   * `key` (`null`: every key) was changed by another instance or program: its sidecar may have been
   * written or removed there, so the index no longer knows its expiry.
   */
  changedElsewhere(key: string | null): void {
    this.#changes++;
    if (key === null || this.#unknown.size >= MAX_UNKNOWN) {
      // Everything, or more keys than are worth remembering one by one: every expiry is read again.
      this.#unknown.clear();
      this.#allUnknown = true;
      this.#expires.clear();
      this.#track(this.#reload(++this.#clears));
      return;
    }
    this.#unknown.set(key, this.#changes);
    this.#expires.delete(key);
  }

  /**
   * After a clear elsewhere: the marker and every sidecar read again, so that reads stop paying a
   * sidecar read each. Entries set meanwhile (by this instance's writes, or rereads) are newer and kept.
   * On failure every expiry stays read on demand.
   */
  async #reload(clear: number): Promise<void> {
    const op = this.#op;
    const fresh = new Map<string, number>();
    const marked = await op.exists(META_MARKER_KEY);
    if (marked && op.capabilities.list) {
      for (const side of await op.list(META_SIDECAR_PREFIX)) {
        const at = await readExpiry(op, side);
        if (at !== undefined) fresh.set(side.slice(META_SIDECAR_PREFIX.length), at);
      }
    }
    if (clear !== this.#clears) return; // another clear since: its own reload decides
    if (marked) this.#marked = true;
    for (const [k, at] of fresh) if (!this.#unknown.has(k) && !this.#expires.has(k)) this.#expires.set(k, at);
    this.#allUnknown = false;
  }

  #mayBeElsewhere(key: string): boolean {
    return this.#allUnknown || this.#unknown.has(key);
  }

  /** Reads the sidecar of a key changed elsewhere; the index knows it again unless it changed meanwhile. */
  async #reread(key: string, change: number | undefined): Promise<number | undefined> {
    const at = await readExpiry(this.#op, sidecarKey(key));
    if (this.#unknown.get(key) === change && !this.#allUnknown) {
      this.#unknown.delete(key);
      if (at !== undefined) {
        this.#marked = true;
        this.#expires.set(key, at);
      }
    }
    return at;
  }

  /** A write of `key` from here set its sidecar (or cleared it): known again, unless it changed meanwhile. */
  #wrote(key: string, change: number | undefined): void {
    if (change !== undefined && this.#unknown.get(key) === change) this.#unknown.delete(key);
  }

  /** Writes `data` with its expiry (sidecar first, so a crash never leaves a value looking immortal). */
  async write(key: string, data: Uint8Array | string, expiresAt: number | undefined): Promise<void> {
    const op = this.#op;
    const change = this.#unknown.get(key);
    if (expiresAt === undefined) {
      await op.write(key, data);
      await this.#clear(key);
      this.#wrote(key, change);
      return;
    }
    if (!this.#marked) {
      await op.write(META_MARKER_KEY, "{}");
      this.#marked = true;
    }
    // On a shared tier the sidecar names the value it belongs to: a program that rewrites the value
    // without knowing of sidecars (the Rust crate, a script) does not inherit the expiry (see purge).
    const meta = this.#shared ? { expires_at: expiresAt, sha1: sha1(data) } : { expires_at: expiresAt };
    await op.write(sidecarKey(key), encoder.encode(JSON.stringify(meta)));
    this.#expires.set(key, expiresAt);
    await op.write(key, data);
    this.#wrote(key, change);
  }

  /** Deletes `key` and its sidecar. */
  async delete(key: string): Promise<void> {
    const change = this.#unknown.get(key);
    await this.#op.delete(key);
    await this.#clear(key);
    this.#wrote(key, change);
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
      if (this.#shared) return this.#purgeShared(key);
      const at = await this.expiresAt(key);
      if (at !== undefined && at <= Date.now()) await this.delete(key);
    });
    this.#track(task.catch(failed));
  }

  /**
   * A shared tier's purge reads the sidecar again (another instance may have replaced the value since)
   * and, where the sidecar names its value, deletes only that value: one rewritten by a program that
   * keeps no sidecars loses the stale sidecar instead.
   */
  async #purgeShared(key: string): Promise<void> {
    const op = this.#op;
    const side = await readSidecar(op, sidecarKey(key));
    if (side?.at === undefined || side.at > Date.now()) return;
    if (side.sha1 !== undefined) {
      let value: Uint8Array;
      try {
        value = await op.read(key);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        return this.delete(key);
      }
      if (sha1(value) !== side.sha1) {
        await op.delete(sidecarKey(key));
        this.#expires.delete(key);
        return;
      }
    }
    await this.delete(key);
  }

  /** Background work that {@link flush} waits for. */
  #track(work: Promise<void>): void {
    const task = work.catch(() => {}).finally(() => this.#background.delete(task));
    this.#background.add(task);
  }

  /** Resolves when the background purges started so far are done. */
  async flush(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  async #clear(key: string): Promise<void> {
    if (this.#complete && !this.#expires.has(key) && !this.#mayBeElsewhere(key)) {
      if (!this.#shared) return;
      await this.#lookForMarker();
      if (!this.#marked) return;
    }
    await this.#op.delete(sidecarKey(key));
    this.#expires.delete(key);
  }
}

async function readExpiry(op: Operator, side: string): Promise<number | undefined> {
  return (await readSidecar(op, side))?.at;
}

/** A sidecar: the expiry, and (shared tiers) the SHA-1 of the value it was written with. */
interface Sidecar {
  at: number | undefined;
  sha1: string | undefined;
}

/** The sidecar at `side`, or undefined when there is none. */
async function readSidecar(op: Operator, side: string): Promise<Sidecar | undefined> {
  try {
    const meta = JSON.parse(Buffer.from(await op.read(side)).toString("utf8")) as {
      expires_at?: unknown;
      sha1?: unknown;
    };
    return {
      at: typeof meta.expires_at === "number" ? meta.expires_at : undefined,
      sha1: typeof meta.sha1 === "string" ? meta.sha1 : undefined,
    };
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    // An unreadable sidecar must not make a value immortal or vanish: treat it as no expiry.
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}

const sha1 = (data: string | Uint8Array): string => hexDigest("sha1", data);
