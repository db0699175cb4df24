/**
 * The coherence bus: several instances share tiers (Redis, PostgreSQL, S3,
 * ...) and each keeps local ones (memory, sqlite, ...). Every save or delete
 * that reaches a shared tier is announced (keys only, see `outbox.ts`); on
 * receipt, an instance drops those keys from its local tiers and discards any
 * write-back of them in flight (the write fence). A gap (the listener lost
 * its connection, or a sequence number skipped) is never silent: the local
 * tiers leave the read path at once (reads go to the shared tiers), and once
 * the listener is subscribed again they are resynced (volatile ones emptied,
 * durable ones revalidated, see `resync.ts`) and rejoin it.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { validateKey } from "../../keys/index.js";
import type { Logger } from "../../logger.js";
import type { CoherenceConfig } from "../../settings/coherence.js";
import { busChannel } from "../channels.js";
import type { WriteFence } from "../fence.js";
import type { Ranking } from "../ranking.js";
import type { Tier } from "../tier.js";
import type { ChangeSink } from "../types.js";
import { type BusMessage, decodeMessage } from "./message.js";
import { openTransport } from "./open-transport.js";
import { Outbox } from "./outbox.js";
import { resyncTier } from "./resync.js";
import type { Transport } from "./transport.js";

/** How long start-up waits for the first subscription before going on with the local tiers out of the read path. */
const FIRST_SUBSCRIBE_MS = 3000;
/** A resync that could not finish (no shared tier answered) is tried again after this long. */
const RESYNC_RETRY_MS = 2000;
/** Heartbeat periods after which a silent origin's last sequence number is forgotten. */
const PRUNE_HEARTBEATS = 20;

/** A change another instance made, as {@link Coherence.onRemoteChange} reports it. */
export interface RemoteChange {
  op: "save" | "delete" | "clear";
  /** The keys saved or deleted (empty for `clear`). */
  keys: readonly string[];
  /** The prefix a `clear` dropped (`""`: everything). */
  prefix?: string;
  /** The instance that made it. */
  origin: string;
}

/** Counters and state of the bus, from {@link Coherence.stats}. */
export interface CoherenceStats {
  /** This instance's id on the bus. */
  origin: string;
  /** Whether the listener is subscribed now (always false for a publish-only storage). */
  connected: boolean;
  /** Messages sent, and received from other instances. */
  sent: number;
  received: number;
  /** Local copies dropped because another instance changed their key. */
  droppedKeys: number;
  /** Gaps seen (listener down, a skipped sequence number, a message that is not ours). */
  gaps: number;
  /** Sends that failed (their keys went to the retry queue). */
  publishFailures: number;
  /** Keys waiting in the retry queue. */
  retryQueue: number;
  /** Keys dropped from a full retry queue (a clear of everything was sent instead). */
  overflowedKeys: number;
  /** Resyncs of local tiers finished. */
  resyncs: number;
  /** Other instances whose sequence numbers are tracked (one silent for 20 heartbeat periods is forgotten). */
  origins: number;
  /** Local profiles out of the read path now (until resynced). */
  distrusted: string[];
}

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
  #transport: Transport | undefined;
  #outbox: Outbox | undefined;
  #connected = false;
  /** Bumped by each gap: a resync started before the latest gap does not put tiers back. */
  #generation = 0;
  #resync: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The last sequence number seen per origin. */
  readonly #seen = new Map<string, number>();
  /** Origins heard from since the last prune: an origin silent for a whole prune period (no heartbeat) is forgotten. */
  #heard = new Set<string>();
  #pruneTimer: NodeJS.Timeout | undefined;
  readonly #listeners = new Set<(change: RemoteChange) => void>();
  readonly #counts = { received: 0, droppedKeys: 0, gaps: 0, resyncs: 0 };

  constructor(config: CoherenceConfig, ranking: Ranking<Tier>, fence: WriteFence, logger: Logger, o: CoherenceOptions) {
    this.#config = config;
    this.#ranking = ranking;
    this.#fence = fence;
    this.#logger = logger;
    this.#subscribe = o.subscribe;
    this.origin = o.origin ?? randomUUID();
  }

  /** Tiers other instances do not write to: the ones the bus keeps honest. */
  get #local(): Tier[] {
    return this.#ranking.all.filter((t) => !t.shared);
  }

  /**
   * Connects, and (when subscribing) waits up to 3 s for the first subscription. Until the
   * local tiers are resynced they are out of the read path: a durable one may hold values
   * other instances replaced while this one was not running.
   * @throws SettingsError for bad connection options.
   */
  async start(): Promise<void> {
    this.#transport = await openTransport(this.#config);
    // A live origin heartbeats every heartbeatMs: one silent for 20 of them has gone (each process start is a new one).
    this.#pruneTimer = setInterval(() => this.#prune(), PRUNE_HEARTBEATS * this.#config.heartbeatMs);
    this.#pruneTimer.unref();
    this.#outbox = new Outbox(this.origin, this.#transport, this.#logger, this.#config);
    if (!this.#ranking.all.some((t) => t.shared)) {
      this.#logger.warn({}, "coherence bus configured, but no profile is shared: it has nothing to keep coherent");
      return;
    }
    this.#distrustLocal();
    if (!this.#subscribe) return;
    let first: () => void = () => {};
    const subscribed = new Promise<void>((resolve) => {
      first = resolve;
    });
    this.#transport.listen({
      message: (payload) => this.#receive(payload),
      down: (reason) => this.#down(reason),
      up: () => {
        first();
        this.#up();
      },
    });
    const timer = setTimeout(first, FIRST_SUBSCRIBE_MS);
    await subscribed;
    clearTimeout(timer);
    if (!this.#connected) {
      this.#logger.warn(
        { bus: this.#transport.description },
        "coherence bus not reachable at start-up: local profiles stay out of the read path until it is",
      );
    }
  }

  /** A save or delete reached a shared tier: announce it. */
  changed(op: "save" | "delete", key: string): void {
    this.#outbox?.add(op, key);
  }

  /** A local tier back from `down` missed every message meanwhile: out of the read path until resynced. */
  rejoined(profile: string): void {
    const tier = this.#local.find((t) => t.name === profile);
    if (!tier || !this.#ranking.all.some((t) => t.shared)) return;
    this.#ranking.distrust(tier);
    if (this.#connected) this.#startResync();
  }

  /** Calls `listener` for each change another instance announces. Returns the function that stops it. */
  onRemoteChange(listener: (change: RemoteChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Counters and state of the bus. */
  stats(): CoherenceStats {
    const o = this.#outbox?.stats ?? { sent: 0, publishFailures: 0, overflowedKeys: 0, retryQueue: 0 };
    return {
      origin: this.origin,
      connected: this.#connected,
      ...o,
      ...this.#counts,
      origins: this.#seen.size,
      distrusted: this.#ranking.all.filter((t) => this.#ranking.distrusted(t)).map((t) => t.name),
    };
  }

  /** Resolves when every announcement gathered so far was sent (or queued for a retry), and any resync running has ended. */
  async flush(): Promise<void> {
    await this.#outbox?.flush();
    while (this.#resync) await this.#resync;
  }

  /** Sends what is pending, stops listening, closes the connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pruneTimer);
    await this.#outbox?.close();
    await this.#transport?.close();
    this.#connected = false;
  }

  #prune(): void {
    for (const origin of this.#seen.keys()) if (!this.#heard.has(origin)) this.#seen.delete(origin);
    this.#heard = new Set();
  }

  #receive(payload: string): void {
    let m: BusMessage;
    try {
      m = decodeMessage(payload);
    } catch (err) {
      this.#gap((err as Error).message);
      return;
    }
    if (m.origin === this.origin) return;
    const last = this.#seen.get(m.origin);
    // A heartbeat repeats the last number sent; a change takes the next one.
    const expected = last === undefined ? undefined : m.op === "heartbeat" ? last : last + 1;
    if (last === undefined || m.seq > last) this.#seen.set(m.origin, m.seq);
    this.#heard.add(m.origin);
    if (m.op === "heartbeat") {
      if (expected !== undefined && m.seq > expected)
        this.#gap(`missed ${m.seq - expected} message(s) from ${m.origin}`);
      return;
    }
    this.#counts.received++;
    const keys = m.keys.filter((k) => {
      try {
        validateKey(k);
        return true;
      } catch {
        return false;
      }
    });
    if (busChannel.hasSubscribers) {
      busChannel.publish({ event: "received", origin: this.origin, from: m.origin, op: m.op, keys, seq: m.seq });
    }
    if (keys.length < m.keys.length) this.#gap(`a message from ${m.origin} named keys that are not valid`);
    // Drop the copies first, then resync for a skipped number (the resync cannot bring them back).
    if (m.op === "clear") this.#clear(m.prefix ?? "");
    else {
      const local = this.#local.filter((t) => t.state.kind !== "down");
      for (const key of keys) this.#drop(key, local);
    }
    if (expected !== undefined && m.seq > expected) this.#gap(`missed ${m.seq - expected} message(s) from ${m.origin}`);
    const change: RemoteChange = { op: m.op, keys, origin: m.origin };
    if (m.prefix !== undefined) change.prefix = m.prefix;
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        this.#logger.warn({ err }, "coherence bus: a remote-change listener threw");
      }
    }
  }

  /**
   * Another instance changed `key`: no write-back of it may land (a local tier's delete fences the key
   * too, but a write-back may target a shared tier, or every local tier may be down), and no local copy may stay.
   */
  #drop(key: string, local: readonly Tier[]): void {
    this.#fence.invalidate(key);
    for (const tier of local) {
      this.#counts.droppedKeys++;
      tier.delete(key).catch((err) => this.#failedDrop(tier, err));
    }
  }

  #clear(prefix: string): void {
    this.#fence.invalidateAll();
    for (const tier of this.#local) {
      if (tier.state.kind === "down") continue;
      void tier
        .list(prefix)
        .then((keys) => Promise.all(keys.map((k) => tier.delete(k).then(() => this.#counts.droppedKeys++))))
        .catch((err) => this.#failedDrop(tier, err));
    }
  }

  /** A local copy that could not be dropped must not be served: the tier leaves the read path until resynced. */
  #failedDrop(tier: Tier, err: unknown): void {
    this.#logger.warn({ profile: tier.name, err }, "coherence bus: could not drop a local copy; resyncing the profile");
    this.#gap(`profile "${tier.name}" could not drop a changed key`);
  }

  #down(reason: string): void {
    if (!this.#connected && this.#counts.gaps > 0) return; // still down: one gap per outage
    this.#connected = false;
    if (busChannel.hasSubscribers) busChannel.publish({ event: "disconnected", origin: this.origin, reason });
    this.#gap(`coherence bus listener down: ${reason}`);
  }

  #up(): void {
    this.#connected = true;
    if (busChannel.hasSubscribers) busChannel.publish({ event: "connected", origin: this.origin });
    this.#logger.info({ bus: this.#transport?.description }, "coherence bus: listening");
    // Subscribed first, then resynced: nothing published in between is missed.
    this.#startResync();
  }

  /** Anything may have changed elsewhere: local tiers leave the read path, write-backs in flight are dropped. */
  #gap(reason: string): void {
    if (this.#closed) return;
    this.#counts.gaps++;
    this.#generation++;
    this.#distrustLocal();
    this.#logger.warn({ reason }, "coherence bus: gap; local profiles are out of the read path until resynced");
    if (busChannel.hasSubscribers) busChannel.publish({ event: "gap", origin: this.origin, reason });
    if (this.#connected) this.#startResync();
  }

  #distrustLocal(): void {
    this.#fence.invalidateAll();
    if (!this.#ranking.all.some((t) => t.shared)) return;
    for (const t of this.#local) this.#ranking.distrust(t);
  }

  #startResync(): void {
    const run = async () => {
      const generation = ++this.#generation;
      this.#seen.clear();
      const current = () => !this.#closed && this.#connected && this.#generation === generation;
      const shared = this.#ranking.readOrder.filter((t) => t.shared);
      let failed = false;
      for (const tier of this.#local) {
        if (!current()) return;
        if (!this.#ranking.distrusted(tier) || tier.state.kind === "down") continue;
        try {
          const report = await resyncTier(tier, shared, this.#fence, current);
          if (!report) return;
          this.#ranking.trust(tier);
          this.#counts.resyncs++;
          this.#logger.info({ profile: tier.name, ...report }, "coherence bus: local profile resynced");
          if (busChannel.hasSubscribers)
            busChannel.publish({ event: "resync", origin: this.origin, profile: tier.name, ...report });
        } catch (err) {
          failed = true;
          this.#logger.warn({ profile: tier.name, err }, "coherence bus: resync failed; trying again");
        }
      }
      if (failed && current()) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => this.#startResync(), RESYNC_RETRY_MS);
        this.#retryTimer.unref();
      }
    };
    // One resync at a time: a gap during one makes it stop early, and the next one starts after it.
    const previous = this.#resync ?? Promise.resolve();
    const p: Promise<void> = previous.then(run).finally(() => {
      if (this.#resync === p) this.#resync = undefined;
    });
    this.#resync = p;
  }
}
