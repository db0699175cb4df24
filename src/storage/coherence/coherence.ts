/**
 * The coherence bus: several instances share tiers (Redis, PostgreSQL, S3,
 * ...) and each keeps local ones (memory, sqlite, ...). The promise: a load
 * never returns a value the shared tiers replaced or deleted more than Δ
 * (3 × `heartbeat_ms`) before it began.
 *
 * How it is kept:
 * - **Changes are announced by the server where it can** (`feeds.ts`): Redis
 *   tracking and a PostgreSQL trigger report every change, whoever made it,
 *   in the same step as the change. Elsewhere (S3, MySQL) the writer
 *   announces its saves on the bus, and a save resolves only once the bus
 *   took the announcement (`outbox.ts`).
 * - **On receipt** the key's local copies are dropped and write-backs of it
 *   fenced off.
 * - **A lease** (`lease.ts`): local tiers serve only while every listening
 *   connection heard the echo of a ping sent less than Δ ago (`liveness.ts`); a silent
 *   connection is replaced.
 * - **Gaps** (a listening connection lost, a skipped sequence number, a local
 *   copy that could not be dropped): local tiers leave the read path at once
 *   and are resynced (`resync.ts`) once every listener is back.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "../../logger.js";
import type { Operator } from "../../operators/types.js";
import type { CoherenceConfig } from "../../settings/coherence.js";
import { busChannel } from "../channels.js";
import type { WriteFence } from "../fence.js";
import type { Ranking } from "../ranking.js";
import type { Tier } from "../tier.js";
import type { ChangeSink } from "../types.js";
import { BusMessages } from "./bus-messages.js";
import { type CoherenceStats, type RemoteChange, statsOf } from "./coherence-stats.js";
import { expectingOperator, Feed, keyReport, type Report } from "./feeds.js";
import { Lease, stalenessBoundMs } from "./lease.js";
import type { ListenerEvents } from "./listener.js";
import { type Planned, planListeners } from "./listeners.js";
import { Liveness } from "./liveness.js";
import { LocalCopies } from "./local-copies.js";
import { openPublisher } from "./open-transport.js";
import { Outbox } from "./outbox.js";
import { feedChannel } from "./pg-trigger.js";
import { Resyncer } from "./resyncer.js";
import type { Publisher } from "./transport.js";

export type { CoherenceStats, RemoteChange } from "./coherence-stats.js";

/** How long start-up waits for every listener before going on with the local tiers out of the read path. */
const FIRST_SUBSCRIBE_MS = 3000;

export interface CoherenceOptions {
  /** Listen to other instances (false: only announce; the local tiers then never serve reads). @default true */
  subscribe: boolean;
  /** This instance's id. @default a random UUID */
  origin?: string | undefined;
}

export class Coherence implements ChangeSink {
  readonly origin: string;
  readonly #config: CoherenceConfig;
  readonly #ranking: Ranking<Tier>;
  readonly #fence: WriteFence;
  readonly #logger: Logger;
  readonly #subscribe: boolean;
  #publisher: Publisher | undefined;
  #outbox: Outbox | undefined;
  #lease: Lease | undefined;
  #planned: Planned[] = [];
  readonly #liveness = new Map<Planned, Liveness>();
  readonly #up = new Set<Planned>();
  /** Change feeds of the shared tiers whose server can report changes, by profile. */
  readonly #feeds = new Map<string, Feed>();
  readonly #resyncer: Resyncer;
  #closed = false;
  /** Listeners were planned (start-up): a feed found later gets its own. */
  #listening = false;
  readonly #messages: BusMessages;
  readonly #copies: LocalCopies;
  readonly #counts = { serverReports: 0, gaps: 0, silent: 0 };

  constructor(config: CoherenceConfig, ranking: Ranking<Tier>, fence: WriteFence, logger: Logger, o: CoherenceOptions) {
    this.#config = config;
    this.#ranking = ranking;
    this.#fence = fence;
    this.#logger = logger;
    this.#subscribe = o.subscribe;
    this.origin = o.origin ?? randomUUID();
    this.#resyncer = new Resyncer(ranking, fence, logger, this.origin, () => this.#apply());
    const shared = () => ranking.all.filter((t) => t.shared);
    this.#copies = new LocalCopies(fence, logger, (t) => this.#gap(`profile "${t.name}" could not drop a key`), shared);
    this.#messages = new BusMessages(
      this.origin,
      this.#copies,
      () => this.#local,
      (r) => this.#gap(r),
    );
  }

  /** The staleness bound Δ in ms. */
  get boundMs(): number {
    return stalenessBoundMs(this.#config.heartbeatMs);
  }

  get #local(): Tier[] {
    return this.#ranking.all.filter((t) => !t.shared);
  }

  get #connected(): boolean {
    return this.#planned.length > 0 && this.#up.size === this.#planned.length;
  }

  /**
   * Connects, and (when subscribing) waits up to 3 s for every listener. Until the local tiers are
   * resynced they are out of the read path: a durable one may hold values replaced meanwhile.
   * @throws SettingsError for bad connection options.
   */
  async start(): Promise<void> {
    for (const w of this.#config.warnings) this.#logger.warn({}, w);
    this.#publisher = await openPublisher(this.#config);
    this.#outbox = new Outbox(this.origin, this.#publisher, this.#logger, this.boundMs);
    if (!this.#ranking.all.some((t) => t.shared)) {
      this.#logger.warn({}, "coherence bus configured, but no profile is shared: it has nothing to keep coherent");
      return;
    }
    this.#resyncer.distrust(this.#local);
    this.#apply();
    if (!this.#subscribe) return;
    this.#lease = new Lease(this.boundMs, () => this.#lapsed());
    this.#ranking.guard(this.#lease);
    this.#listening = true;
    const planned = await planListeners(this.#config, [...this.#feeds.values()], this.#logger);
    let first: () => void = () => {};
    const all = new Promise<void>((resolve) => {
      first = resolve;
    });
    for (const p of planned) this.#startListener(p, () => this.#connected && first());
    const timer = setTimeout(first, FIRST_SUBSCRIBE_MS);
    await all;
    clearTimeout(timer);
    if (!this.#connected) {
      this.#logger.warn(
        { bus: this.#planned.filter((p) => !this.#up.has(p)).map((p) => p.listener.description) },
        "coherence bus not reachable at start-up: local profiles stay out of the read path until it is",
      );
    }
  }

  /** Wraps a shared tier's operator: where its server reports changes, this instance's own writes are expected. */
  watch(profile: string, op: Operator): Operator {
    if (!this.#subscribe || !op.changeFeed) return op;
    let feed = this.#feeds.get(profile);
    if (!feed) {
      feed = new Feed(profile, op.changeFeed);
      this.#feeds.set(profile, feed);
      // A shared tier that first opened after start-up (it was down then): listen to it from now on.
      if (this.#listening) void this.#listenTo(feed);
    }
    feed.op = op;
    if (feed.state.kind === "statement") op.announceWrites?.(feedChannel(feed.source));
    // A write that failed or ended unknown: the local copies may now differ from the shared truth.
    return expectingOperator(op, feed, (path) => this.#handle(keyReport(path)));
  }

  /**
   * A save or delete reached shared tier `profile`. Where its server announces changes, nothing to do;
   * else the announcement, which the save waits for.
   */
  changed(op: "save" | "delete", key: string, profile: string): Promise<void> | undefined {
    if (this.#feeds.get(profile)?.announced) return undefined;
    return this.#outbox?.add(op, key);
  }

  /** A save's write to local tier `profile` failed: its copy of `key` may be older than the shared truth. */
  localFailed(profile: string, key: string): void {
    const tier = this.#local.find((t) => t.name === profile);
    if (tier && this.#ranking.all.some((t) => t.shared)) this.#copies.drop(key, [tier]);
  }

  /** A local tier back from `down` missed every change meanwhile: out of the read path until resynced. */
  rejoined(profile: string): void {
    const tier = this.#local.find((t) => t.name === profile);
    if (!tier || !this.#ranking.all.some((t) => t.shared)) return;
    this.#resyncer.distrust([tier]);
    this.#apply();
    if (this.#connected) this.#resyncer.start(this.#current());
  }

  /** Calls `listener` for each change of a shared key made elsewhere. Returns the function that stops it. */
  onRemoteChange(listener: (change: RemoteChange) => void): () => void {
    return this.#copies.onRemoteChange(listener);
  }

  stats(): CoherenceStats {
    return statsOf({
      origin: this.origin,
      connected: this.#connected,
      outbox: this.#outbox?.stats,
      counts: {
        ...this.#counts,
        received: this.#messages.received,
        droppedKeys: this.#copies.dropped,
        resyncs: this.#resyncer.resyncs,
      },
      origins: this.#messages.origins,
      distrusted: this.#ranking.all.filter((t) => this.#ranking.distrusted(t)).map((t) => t.name),
      lease: this.#lease?.snapshot(),
      boundMs: this.boundMs,
      listeners: this.#planned.map((p) => ({
        description: p.listener.description,
        up: this.#up.has(p),
        lastProof: this.#liveness.get(p)?.lastProof,
      })),
      feeds: [...this.#feeds.values()],
    });
  }

  /** Resolves when every announcement gathered so far was sent (or failed once), drops are done, and any resync ended. */
  async flush(): Promise<void> {
    await this.#outbox?.flush();
    await this.#copies.settled();
    await this.#resyncer.idle();
  }

  /** Sends what is pending, stops listening, closes the connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#messages.close();
    this.#resyncer.close();
    await this.#outbox?.close();
    for (const live of this.#liveness.values()) live.stop();
    await Promise.all(this.#planned.map((p) => p.listener.close()));
    this.#up.clear();
    await this.#publisher?.close();
    this.#ranking.guard(undefined);
    this.#lease?.close();
  }

  #startListener(p: Planned, onUp: () => void): void {
    this.#planned.push(p);
    const live = new Liveness(
      p.listener,
      this.#config.heartbeatMs,
      () => this.#proved(),
      (r) => this.#silent(p, r),
    );
    this.#liveness.set(p, live);
    p.listener.start(this.#events(p, onUp));
  }

  /** Listens to a feed found after start-up; until its listener is up and the local tiers resynced, they step aside. */
  async #listenTo(feed: Feed): Promise<void> {
    try {
      const planned = await planListeners(undefined, [feed], this.#logger);
      if (this.#closed) return;
      for (const p of planned) this.#startListener(p, () => {});
      this.#gap(`profile "${feed.tier}" opened: its changes are heard from now on`);
    } catch (err) {
      this.#logger.error({ profile: feed.tier, err }, "coherence bus: cannot listen to a profile's changes");
      this.#gap(`profile "${feed.tier}": cannot listen to its changes`);
    }
  }

  #events(p: Planned, upCallback: () => void): ListenerEvents {
    return {
      message: (channel, payload) => {
        if (p.bus && channel === this.#config.channel) {
          this.#messages.receive(payload, this.#planned.filter((x) => x.bus).length === 1);
        }
        const feed = p.channels.get(channel);
        if (feed) this.#handle(this.#report(feed, payload), feed);
      },
      invalidated: (keys) => {
        for (const feed of p.tracked) {
          if (keys === null) this.#handle({ dropAll: true }, feed);
          else for (const k of keys) this.#handle(this.#report(feed, k), feed);
        }
      },
      unsupported: (reason) => {
        for (const feed of p.tracked) feed.state = { kind: "bus", reason: `no CLIENT TRACKING: ${reason}` };
        this.#logger.warn(
          { listener: p.listener.description, reason },
          "coherence bus: the redis server does not report changes (CLIENT TRACKING); this instance announces its own writes, other programs' changes go unseen",
        );
      },
      down: (reason) => {
        this.#up.delete(p);
        this.#liveness.get(p)?.down();
        if (busChannel.hasSubscribers) busChannel.publish({ event: "disconnected", origin: this.origin, reason });
        this.#gap(`${p.listener.description}: ${reason}`);
      },
      up: () => {
        for (const feed of [...p.tracked, ...p.channels.values()]) {
          this.#ranking.all.find((t) => t.name === feed.tier)?.serverAnswered(); // no breaker cool-down to wait out
          feed.forget();
          if (feed.source.kind === "redis" && p.listener.tracking)
            feed.state = { kind: "server", via: "redis tracking" };
        }
        this.#up.add(p);
        // Messages were missed while it was down (the resync covers them): numbering starts over.
        if (p.bus) this.#messages.forget();
        if (busChannel.hasSubscribers) busChannel.publish({ event: "connected", origin: this.origin });
        this.#logger.info({ listener: p.listener.description }, "coherence bus: listening");
        this.#liveness.get(p)?.up();
        upCallback();
        // Subscribed first, then resynced: nothing announced in between is missed.
        if (this.#connected) this.#resyncer.start(this.#current());
      },
    };
  }

  /** What the server's report of `raw` asks for. */
  #report(feed: Feed, raw: string): Report {
    this.#counts.serverReports++;
    const r = feed.reported(raw);
    if (busChannel.hasSubscribers) {
      const what = r === undefined ? "own" : "dropAll" in r ? "all" : r.quiet ? "own delete" : "drop";
      busChannel.publish({ event: "report", origin: this.origin, profile: feed.tier, key: raw, outcome: what });
    }
    return r;
  }

  /** Drops what a report names (`feed`: the server's report; none: this instance's failed write). */
  #handle(report: Report, feed?: Feed): void {
    if (report === undefined) return;
    const origin = `server ${feed?.tier ?? ""}`;
    const tell = feed !== undefined && !("quiet" in report && report.quiet);
    if ("dropAll" in report) {
      if (feed) this.#copies.expiryChanged(null, feed.tier);
      this.#copies.clear(
        "",
        this.#local,
        tell ? { op: "clear", keys: [], prefix: "", origin, source: "server" } : undefined,
      );
    } else {
      if (feed && report.sidecar && !report.quiet) this.#copies.expiryChanged(report.drop, feed.tier);
      const change: RemoteChange = { op: "change", keys: [report.drop], origin, source: "server" };
      this.#copies.drop(report.drop, this.#local, tell ? change : undefined);
    }
  }

  /** Local tiers serve only while the lease holds and they are resynced. */
  #apply(): void {
    const leased = this.#lease?.valid === true;
    for (const t of this.#local) {
      if (leased && !this.#resyncer.unsynced(t)) this.#ranking.trust(t);
      else this.#ranking.distrust(t);
    }
  }

  /** Every listener answered: the lease runs from the oldest of their latest proofs (after pending drops). */
  #proved(): void {
    if (!this.#connected || !this.#lease) return;
    let oldest = Number.POSITIVE_INFINITY;
    for (const p of this.#planned) oldest = Math.min(oldest, this.#liveness.get(p)?.lastProof ?? Number.NaN);
    if (!Number.isFinite(oldest)) return;
    const lease = this.#lease;
    const renew = () => {
      if (lease.renew(oldest)) this.#apply();
    };
    if (!this.#copies.pending) renew();
    else void this.#copies.settled().then(renew);
  }

  #lapsed(): void {
    this.#apply();
    this.#logger.warn(
      { boundMs: this.boundMs },
      "coherence bus: no fresh proof of hearing every change; local profiles are out of the read path",
    );
    if (busChannel.hasSubscribers) busChannel.publish({ event: "lapse", origin: this.origin });
  }

  #silent(p: Planned, reason: string): void {
    this.#counts.silent++;
    this.#logger.warn({ listener: p.listener.description, reason }, "coherence bus: listener replaced");
  }

  /** Anything may have changed elsewhere: local tiers leave the read path, write-backs in flight are dropped. */
  #gap(reason: string): void {
    if (this.#closed) return;
    this.#counts.gaps++;
    this.#resyncer.distrust(this.#local);
    this.#fence.invalidateAll();
    this.#apply();
    this.#logger.warn({ reason }, "coherence bus: gap; local profiles are out of the read path until resynced");
    if (busChannel.hasSubscribers) busChannel.publish({ event: "gap", origin: this.origin, reason });
    if (this.#connected) this.#resyncer.start(this.#current());
  }

  /** What a resync checks to know it still counts: open, every listener up, no gap since it started. */
  #current(): () => boolean {
    return () => !this.#closed && this.#connected;
  }
}
