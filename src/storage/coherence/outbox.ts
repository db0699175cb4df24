/**
 * The sending side of the coherence bus. Keys changed in shared tiers are
 * gathered (for the rest of this turn of the event loop when the bus was idle,
 * else until `batch_ms` after the last message) and sent as few messages as
 * the engine's payload limit allows, each with the next sequence number. A
 * message that could not be sent puts its keys in a bounded, de-duplicated
 * retry queue; past the bound the queue is dropped (logged and counted) and
 * replaced by one `clear` of everything, so receivers still drop their copies.
 * A heartbeat repeats the last sequence number, so a receiver also notices a
 * lost last message.
 *
 * @module
 */
import type { Logger } from "../../logger.js";
import { busChannel } from "../channels.js";
import { type BusMessage, type BusOp, batchKeys, encodeMessage } from "./message.js";
import type { Transport } from "./transport.js";

/** Keys (per operation) the retry queue holds at most. */
export const RETRY_QUEUE_LIMIT = 10_000;
/** How often queued keys are sent again. */
const RETRY_INTERVAL_MS = 250;
/** How long closing keeps retrying announcements that could not be sent yet. */
const CLOSE_GRACE_MS = 2000;

/** Counters of the sending side. */
export interface OutboxStats {
  sent: number;
  publishFailures: number;
  /** Keys dropped from a full retry queue (replaced by one clear-everything message). */
  overflowedKeys: number;
  retryQueue: number;
}

type Op = Exclude<BusOp, "clear">;

export class Outbox {
  readonly #origin: string;
  readonly #transport: Transport;
  readonly #logger: Logger;
  #seq = 0;
  /** Keys changed this turn, not yet sent. */
  #batch = { save: new Set<string>(), delete: new Set<string>() };
  /** When the gathered keys go out: at the end of this turn, or when the batch window closes. */
  #scheduled: { cancel(): void } | undefined;
  /** When the last batch went out (ms, monotonic). */
  #lastSent = -Infinity;
  readonly #batchMs: number;
  /** Keys whose message could not be sent: sent again (de-duplicated) by the retry timer. */
  readonly #retry = { save: new Set<string>(), delete: new Set<string>() };
  /** The retry queue overflowed: send one `clear` of everything. */
  #clearAll = false;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly stats: OutboxStats = { sent: 0, publishFailures: 0, overflowedKeys: 0, retryQueue: 0 };

  constructor(origin: string, transport: Transport, logger: Logger, timing: { heartbeatMs: number; batchMs: number }) {
    this.#origin = origin;
    this.#batchMs = timing.batchMs;
    this.#transport = transport;
    this.#logger = logger;
    const retry = setInterval(() => this.#sendRetries(), RETRY_INTERVAL_MS);
    const heartbeat = setInterval(() => this.#heartbeat(), timing.heartbeatMs);
    retry.unref();
    heartbeat.unref();
    this.#timers.push(retry, heartbeat);
  }

  /** A save or delete of `key` reached a shared tier: it goes out at the end of this turn. */
  add(op: Op, key: string): void {
    // A key saved and then deleted in one turn needs both: receivers drop it either way.
    this.#batch[op].add(key);
    if (this.#scheduled) return;
    // Idle: out at the end of this turn. Busy (a batch went out less than batchMs ago): gathered until
    // the window closes, so a loop of awaited saves sends one message per window, not one per save.
    const wait = this.#lastSent + this.#batchMs - performance.now();
    if (wait <= 0) {
      const t = setImmediate(() => this.#flushBatch());
      this.#scheduled = { cancel: () => clearImmediate(t) };
    } else {
      const t = setTimeout(() => this.#flushBatch(), wait);
      this.#scheduled = { cancel: () => clearTimeout(t) };
    }
  }

  /** Sends what is gathered and waits for every message in flight (not for the retry queue). */
  async flush(): Promise<void> {
    if (this.#scheduled) {
      this.#scheduled.cancel();
      this.#flushBatch();
    }
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Sends what is pending (retrying the queue for up to 2 s), then stops the timers. */
  async close(): Promise<void> {
    await this.flush();
    const until = Date.now() + CLOSE_GRACE_MS;
    while (this.#retry.save.size + this.#retry.delete.size > 0 || this.#clearAll) {
      if (Date.now() >= until) break;
      await new Promise((r) => setTimeout(r, RETRY_INTERVAL_MS / 2));
      this.#sendRetries();
      await this.flush();
    }
    for (const t of this.#timers) clearInterval(t);
    const left = this.#retry.save.size + this.#retry.delete.size;
    if (left > 0) this.#logger.warn({ keys: left }, "coherence bus: closed with changes it could not announce");
  }

  #flushBatch(): void {
    this.#scheduled = undefined;
    this.#lastSent = performance.now();
    const batch = this.#batch;
    this.#batch = { save: new Set(), delete: new Set() };
    for (const op of ["save", "delete"] as const) if (batch[op].size > 0) this.#send(op, [...batch[op]]);
  }

  #send(op: Op, keys: readonly string[]): void {
    for (const chunk of batchKeys(keys, this.#origin, this.#transport.maxPayloadBytes)) {
      const m: BusMessage = { origin: this.#origin, seq: ++this.#seq, op, keys: chunk };
      this.#publish(m, (reason) => this.#queue(op, chunk, reason));
    }
  }

  /** Sends `m`: counted (and traced) once the engine took it, else `failed` says why. */
  #publish(m: BusMessage, failed: (reason: string) => void): void {
    const sent = () => {
      this.stats.sent++;
      if (busChannel.hasSubscribers) {
        busChannel.publish({ event: "sent", origin: m.origin, op: m.op, keys: m.keys, seq: m.seq });
      }
    };
    const p = this.#transport.publish(encodeMessage(m)).then(sent, (err: Error) => {
      this.stats.publishFailures++;
      failed(err.message);
    });
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }

  #queue(op: Op, keys: readonly string[], reason: string): void {
    if (busChannel.hasSubscribers) busChannel.publish({ event: "publish-failed", origin: this.#origin, keys, reason });
    if (this.#clearAll) {
      this.stats.overflowedKeys += keys.length;
      return;
    }
    const queue = this.#retry[op];
    for (const k of keys) queue.add(k);
    const size = this.#retry.save.size + this.#retry.delete.size;
    if (size > RETRY_QUEUE_LIMIT) {
      this.stats.overflowedKeys += size;
      this.#retry.save.clear();
      this.#retry.delete.clear();
      this.#clearAll = true;
      this.#logger.error(
        { keys: size, limit: RETRY_QUEUE_LIMIT },
        "coherence bus: retry queue full; its keys are dropped and one clear of everything will be sent instead",
      );
      if (busChannel.hasSubscribers) busChannel.publish({ event: "overflow", origin: this.#origin, keys: size });
    } else {
      this.#logger.warn({ keys: keys.length, reason }, "coherence bus: publish failed; queued for a retry");
    }
    this.stats.retryQueue = this.#retry.save.size + this.#retry.delete.size;
  }

  #sendRetries(): void {
    if (this.#inFlight.size > 0) return;
    if (this.#clearAll) {
      this.#clearAll = false;
      const m: BusMessage = { origin: this.#origin, seq: ++this.#seq, op: "clear", keys: [], prefix: "" };
      this.#publish(m, () => {
        this.#clearAll = true;
      });
      return;
    }
    for (const op of ["save", "delete"] as const) {
      const queue = this.#retry[op];
      if (queue.size === 0) continue;
      const keys = [...queue];
      queue.clear();
      this.#send(op, keys);
    }
    this.stats.retryQueue = this.#retry.save.size + this.#retry.delete.size;
  }

  #heartbeat(): void {
    if (this.#seq === 0) return;
    const payload = encodeMessage({ origin: this.#origin, seq: this.#seq, op: "heartbeat", keys: [] });
    // A lost heartbeat needs no retry: the next one says the same.
    this.#transport.publish(payload).catch(() => {});
  }
}
