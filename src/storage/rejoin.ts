/**
 * Down tiers come back without a restart. A profile unreachable at start-up
 * is retried in the background with backoff (0.5 s, 1 s, 2 s, then every 5 s;
 * unref'd timers, stopped by `close()`) and on demand (`retryDown()`): its
 * operator is opened again if it never was, the start-up probe runs, and the
 * tier joins the ranking with the probe's latency. A tier whose circuit
 * breaker is open gets its trial call when the breaker allows one.
 *
 * @module
 */
import { ClosedError, type PersistenceError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Operator } from "../operators/types.js";
import type { Ranking } from "./ranking.js";
import type { Started } from "./startup.js";
import { asProfileError, type DownProfile, FIRST_RETRY_MS, probeOnce } from "./startup.js";
import type { Tier } from "./tier.js";
import { READY } from "./tier-state.js";
import type { Lifecycle } from "./types.js";

/** The longest wait between two retries of a down tier. */
const MAX_RETRY_MS = 5000;

interface Watched {
  tier: Tier;
  reopen: (() => Promise<Operator>) | undefined;
  /** The tier's operator is a stand-in: open the real one first. */
  unopened: boolean;
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  running: Promise<boolean> | undefined;
}

export class Rejoiner {
  readonly #ranking: Ranking<Tier>;
  readonly #errors: Map<string, PersistenceError>;
  readonly #logger: Logger;
  readonly #probeReads: number;
  readonly #lifecycle: Lifecycle;
  readonly #down = new Map<string, Watched>();
  readonly #started: Started;
  /** Breaker trials scheduled, by tier name. */
  readonly #trials = new Map<string, NodeJS.Timeout>();
  /** How to open each profile's operator again (profiles from settings). */
  readonly #reopen = new Map<string, () => Promise<Operator>>();
  /** Read-only tiers (not by configuration) whose operator is reopened and probed until they take writes. */
  readonly #readOnly = new Map<string, { tier: Tier; timer: NodeJS.Timeout | undefined; running?: Promise<boolean> }>();

  /** Retries for the tiers of `started`; {@link start} once they are in `ranking`. */
  constructor(
    ranking: Ranking<Tier>,
    started: Started,
    options: { logger: Logger; probeReads: number },
    lifecycle: Lifecycle,
  ) {
    this.#ranking = ranking;
    this.#errors = started.errors;
    this.#logger = options.logger;
    this.#probeReads = options.probeReads;
    this.#lifecycle = lifecycle;
    this.#started = started;
    for (const s of [...started.specs, ...started.down.map((d) => d.spec)]) {
      if (s.reopen) this.#reopen.set(s.name, s.reopen);
    }
  }

  /** Starts retrying the tiers down at start-up (`ranking.standby`), and reopening the read-only ones. */
  start(): void {
    this.#watch(this.#started.down);
    for (const t of this.#ranking.order) if (t.state.kind === "read-only") this.readOnly(t);
  }

  /**
   * A write found `tier` read-only (or the probe did). Some causes go away
   * only for a new connection (a SQLite file opened read-only stays so after
   * a remount rw): while the tier is read-only, its operator is opened again
   * and probed every few seconds, and replaces the old one once it takes a write.
   */
  readOnly(tier: Tier): void {
    if (tier.readOnly || !this.#reopen.has(tier.name) || this.#readOnly.has(tier.name) || this.#lifecycle.closed)
      return;
    const timer = setTimeout(() => void this.#reopenOnce(tier.name), MAX_RETRY_MS);
    timer.unref?.();
    this.#readOnly.set(tier.name, { tier, timer });
  }

  /** One reopen trial of a read-only tier (shared by concurrent callers); true when it is ready. */
  #reopenOnce(name: string): Promise<boolean> {
    const entry = this.#readOnly.get(name);
    if (!entry) return Promise.resolve(false);
    clearTimeout(entry.timer);
    entry.running ??= this.#reopenTrial(entry.tier).then(() => entry.tier.state.kind === "ready");
    return entry.running;
  }

  async #reopenTrial(tier: Tier): Promise<void> {
    let op: Operator | undefined;
    try {
      if (tier.state.kind !== "read-only" || this.#lifecycle.closed) return;
      op = await this.#reopen.get(tier.name)!();
      const { name, scheme, timeoutMs, retries } = tier;
      const probed = await probeOnce(
        { name, scheme, op, timeoutMs, retries, fixedRankUs: undefined },
        this.#probeReads,
      );
      if (probed.readOnly || this.#lifecycle.closed || tier.state.kind !== "read-only") return;
      await tier.rejoin(op, probed, READY);
      op = undefined;
    } catch (err) {
      this.#logger.debug({ profile: tier.name, err }, "read-only profile: opening it again did not help yet");
    } finally {
      if (op) await op.close().catch(() => {});
      this.#readOnly.delete(tier.name);
      if (tier.state.kind === "read-only") this.readOnly(tier);
    }
  }

  #watch(down: readonly DownProfile[]): void {
    for (const d of down) {
      const tier = this.#ranking.standby.find((t) => t.name === d.spec.name)!;
      const w: Watched = {
        tier,
        reopen: d.reopen,
        unopened: d.unopened,
        attempt: 0,
        timer: undefined,
        running: undefined,
      };
      this.#down.set(tier.name, w);
      this.#schedule(w, FIRST_RETRY_MS, (tier.state as { reason?: string }).reason ?? "down");
    }
  }

  /**
   * Retries every down tier now (and gives every tier whose breaker is open
   * its trial). Resolves with the names of the tiers that are back.
   */
  async retryAll(): Promise<string[]> {
    if (this.#lifecycle.closed) throw new ClosedError("DeviceStorage is closed");
    const down = [...this.#down.values()];
    const open = this.#ranking.order.filter((t) => this.#ranking.breakerOpenUntil(t.name) !== 0);
    const readOnly = [...this.#readOnly.keys()];
    const results = await Promise.all([
      ...down.map((w) => this.#retry(w)),
      ...open.map((t) => this.#trial(t)),
      ...readOnly.map((name) => this.#reopenOnce(name)),
    ]);
    return [...down.map((w) => w.tier.name), ...open.map((t) => t.name), ...readOnly].filter((_, i) => results[i]);
  }

  /** A tier's breaker opened or closed: schedule its trial for when the breaker allows one. */
  breakerChanged(tier: Tier): void {
    const at = this.#ranking.breakerOpenUntil(tier.name);
    clearTimeout(this.#trials.get(tier.name));
    this.#trials.delete(tier.name);
    if (at === 0 || this.#lifecycle.closed) return;
    const timer = setTimeout(
      () => {
        this.#trials.delete(tier.name);
        this.#trial(tier).then((ok) => {
          if (!ok) this.breakerChanged(tier);
        });
      },
      Math.max(0, at - Date.now()),
    );
    timer.unref?.();
    this.#trials.set(tier.name, timer);
  }

  /** Stops every retry; resolves when the ones running are done. */
  async close(): Promise<void> {
    for (const t of this.#trials.values()) clearTimeout(t);
    this.#trials.clear();
    for (const r of this.#readOnly.values()) clearTimeout(r.timer);
    await Promise.allSettled([...this.#readOnly.values()].map((r) => r.running));
    const running: Promise<unknown>[] = [];
    for (const w of this.#down.values()) {
      clearTimeout(w.timer);
      if (w.running) running.push(w.running);
    }
    await Promise.allSettled(running);
  }

  /** One trial call of a tier whose breaker is open: the breaker closes when it answers. */
  async #trial(tier: Tier): Promise<boolean> {
    if (this.#lifecycle.closed || !tier.available()) return false;
    try {
      await tier.call("trial", tier.probeKey, () => tier.op.exists(tier.probeKey));
      return this.#ranking.breakerOpenUntil(tier.name) === 0;
    } catch {
      return false;
    }
  }

  #schedule(w: Watched, ms: number, reason: string): void {
    clearTimeout(w.timer);
    if (this.#lifecycle.closed) return;
    w.tier.markDown(reason, Date.now() + ms);
    w.timer = setTimeout(() => {
      w.timer = undefined;
      void this.#retry(w);
    }, ms);
    w.timer.unref?.();
  }

  /** One retry of a down tier (shared by concurrent callers). */
  #retry(w: Watched): Promise<boolean> {
    w.running ??= this.#attempt(w).finally(() => {
      w.running = undefined;
    });
    return w.running;
  }

  async #attempt(w: Watched): Promise<boolean> {
    const { tier } = w;
    if (this.#lifecycle.closed || !this.#down.has(tier.name)) return !this.#down.has(tier.name);
    let op = tier.op;
    try {
      if (w.unopened) {
        if (!w.reopen) throw new Error("no way to open it again");
        op = await w.reopen();
      }
      const { name, scheme, timeoutMs, retries, readOnly } = tier;
      const probed = await probeOnce(
        { name, scheme, op, timeoutMs, retries, readOnly, fixedRankUs: undefined },
        this.#probeReads,
      );
      if (this.#lifecycle.closed) {
        if (op !== tier.op) await op.close().catch(() => {});
        return false;
      }
      const state = probed.readOnly ? ({ kind: "read-only", reason: probed.readOnly } as const) : READY;
      await tier.rejoin(op, probed, state);
      w.unopened = false;
      clearTimeout(w.timer);
      this.#down.delete(tier.name);
      this.#errors.delete(tier.name);
      this.#ranking.add(tier);
      this.#logger.info({ profile: tier.name, attempts: w.attempt + 1 }, "storage profile joined the ranking");
      return true;
    } catch (err) {
      if (op !== tier.op) await op.close().catch(() => {});
      const error = asProfileError(tier.name, err, "is still down");
      this.#errors.set(tier.name, error);
      w.attempt++;
      const wait = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** w.attempt);
      this.#schedule(w, wait, err instanceof Error ? err.message : String(err));
      return false;
    }
  }
}
