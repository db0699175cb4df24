/**
 * The tiered write path: a save or delete goes to every target tier in
 * parallel (each queued behind earlier writes of the key in that tier), and
 * any failure is a `PartialWriteError` listing every tier's outcome. When
 * every target answers synchronously and nothing else is going on for the key,
 * the writes are done right here, in order, without a promise per tier.
 *
 * @module
 */
import { isCallerError, PartialWriteError, type ProfileOutcome } from "../errors.js";
import { saveChannel } from "./channels.js";
import type { WriteFence } from "./fence.js";
import type { Ranking } from "./ranking.js";
import type { Tier } from "./tier.js";
import type { ExpiryOptions } from "./types.js";

/** What a write to many tiers resolves to when it was done synchronously (settled; nothing to wait for). */
const DONE: Promise<void> = Promise.resolve();

export class TieredWriter {
  readonly #fence: WriteFence;
  readonly #ranking: Ranking<Tier>;
  /** Whether a profile has `read_only = "true"` (saves skip it). */
  readonly #someReadOnly: boolean;

  constructor(fence: WriteFence, ranking: Ranking<Tier>) {
    this.#fence = fence;
    this.#ranking = ranking;
    this.#someReadOnly = ranking.all.some((t) => t.readOnly);
  }

  /**
   * Where a save goes when it names no profile: every tier, the ones down
   * included (their failure is reported), except those with `read_only = "true"`.
   */
  targets(): readonly Tier[] {
    const order = this.#ranking.order;
    // Nothing down and nothing read-only by design (the usual case): the ranking as it is, no copy.
    if (this.#ranking.standby.length === 0 && !this.#someReadOnly) return order;
    return this.#ranking.all.filter((t) => !t.readOnly);
  }

  /**
   * Writes `data` (as stored, or the JSON text standing for them: `size`
   * bytes) under `key` to `targets`. `owned`: the data were made for this
   * write and an in-memory tier may keep them as they are.
   * @throws PartialWriteError if any tier failed (every tier's outcome listed).
   */
  write(
    key: string,
    targets: readonly Tier[],
    data: Uint8Array | string,
    size: number,
    expiry: ExpiryOptions,
    owned = false,
  ): Promise<void> {
    // No expiry asked for (and, checked by syncSafe, no profile default): maybe synchronous.
    const plain = expiry.ttlMs === undefined && expiry.expiresAt === undefined;
    if (plain && this.#writeSync(key, targets, data, size, owned)) return DONE;
    const now = Date.now();
    const at = targets.map((t) => t.expiryOf(expiry, now, key));
    return this.#traced(key, targets, "write", size, (t, i) => t.store("write", key, data, size, at[i]));
  }

  /**
   * Deletes `key` (and its TTL metadata) from `targets`.
   * @throws PartialWriteError if any tier failed.
   */
  delete(key: string, targets: readonly Tier[]): Promise<void> {
    return this.#traced(key, targets, "delete", 0, (t) => t.remove(key));
  }

  /** The synchronous write; false (nothing written) when the general path is needed. */
  #writeSync(key: string, targets: readonly Tier[], data: Uint8Array | string, size: number, owned: boolean) {
    if (saveChannel.hasSubscribers) return false;
    for (const t of targets) if (!t.op.writeSync || !t.syncSafe(key)) return false;
    this.#fence.invalidate(key);
    let outcomes: ProfileOutcome[] | undefined;
    for (let i = 0; i < targets.length; i++) {
      const t = targets[i]!;
      try {
        // Stored values are never mutated, so several in-memory tiers may share owned data.
        t.writeSync(key, data, size, owned);
        outcomes?.push({ profile: t.name, ok: true });
      } catch (err) {
        if (isCallerError(err)) throw err;
        outcomes ??= targets.slice(0, i).map((x) => ({ profile: x.name, ok: true }));
        outcomes.push({ profile: t.name, ok: false, error: err as Error });
      }
    }
    if (outcomes) throw new PartialWriteError(key, outcomes);
    return true;
  }

  #traced(
    key: string,
    targets: readonly Tier[],
    what: "write" | "delete",
    size: number,
    fn: (tier: Tier, i: number) => Promise<void>,
  ): Promise<void> {
    if (!saveChannel.hasSubscribers) return this.#all(key, targets, fn);
    const context = { key, op: what, profiles: targets.map((t) => t.name), bytes: size };
    return saveChannel.tracePromise(() => this.#all(key, targets, fn), context);
  }

  async #all(key: string, targets: readonly Tier[], fn: (tier: Tier, i: number) => Promise<void>): Promise<void> {
    // Any write-back whose read began before this write must not land after it.
    this.#fence.begin(key);
    try {
      const settled = await Promise.allSettled(targets.map(fn));
      const outcomes: ProfileOutcome[] = settled.map((r, i) =>
        r.status === "fulfilled"
          ? { profile: targets[i]!.name, ok: true }
          : { profile: targets[i]!.name, ok: false, error: r.reason as Error },
      );
      if (outcomes.some((o) => !o.ok)) throw new PartialWriteError(key, outcomes);
    } finally {
      this.#fence.end(key);
    }
  }
}
