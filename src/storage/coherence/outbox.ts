/**
 * The sending side of the coherence bus, for changes no server announces
 * (shared tiers on S3, MySQL, or a server that refused to report changes).
 * A save or delete of such a tier does not resolve before its announcement
 * was taken by the bus server: a writer killed right after its save cannot
 * leave other instances unaware of it.
 *
 * Keys gather while a message is on its way (an idle bus sends at the end of
 * the event-loop turn), so a burst of saves costs few messages; messages go
 * out one at a time, in the order of their sequence numbers, as few as the
 * engine's payload limit allows. A message that could not be sent is sent
 * again, with the same number, until it is taken; the saves waiting for it
 * reject with an {@link AnnounceError} after the announce time limit, and it
 * stays queued. Past 10 000 queued keys the queue becomes one `clear` of
 * everything, so receivers still drop their copies.
 *
 * @module
 */
import { AnnounceError } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { busChannel } from "../channels.js";
import { type BusMessage, type BusOp, batchKeys, encodeMessage } from "./message.js";
import type { Publisher } from "./transport.js";

/** Keys the queue holds at most. */
export const RETRY_QUEUE_LIMIT = 10_000;
/** How soon a message that could not be sent is tried again. */
const RETRY_INTERVAL_MS = 250;
/** How long closing keeps trying to send what is queued. */
const CLOSE_GRACE_MS = 2000;

/** Counters of the sending side. */
export interface OutboxStats {
  sent: number;
  publishFailures: number;
  /** Keys dropped from a full queue (replaced by one clear-everything message). */
  overflowedKeys: number;
  /** Keys waiting to be sent again. */
  retryQueue: number;
}

type Op = Exclude<BusOp, "clear">;
interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}
interface Queued {
  message: BusMessage;
  /** Saves waiting for this message (and every earlier one) to be taken. */
  waiters: Waiter[];
}

export class Outbox {
  readonly #origin: string;
  readonly #publisher: Publisher;
  readonly #logger: Logger;
  readonly #announceMs: number;
  #seq = 0;
  /** Keys changed since the last message was made, and who waits for them. */
  #open = { save: new Set<string>(), delete: new Set<string>(), waiters: [] as Waiter[] };
  #scheduled = false;
  readonly #queue: Queued[] = [];
  #sending = false;
  #retry: NodeJS.Timeout | undefined;
  #idle: (() => void)[] = [];
  readonly stats: OutboxStats = { sent: 0, publishFailures: 0, overflowedKeys: 0, retryQueue: 0 };

  /** @param announceMs how long a save waits for its announcement before it rejects (it stays queued). */
  constructor(origin: string, publisher: Publisher, logger: Logger, announceMs: number) {
    this.#origin = origin;
    this.#publisher = publisher;
    this.#logger = logger;
    this.#announceMs = announceMs;
  }

  /**
   * A save or delete of `key` reached a shared tier. Resolves once its announcement was taken by the bus.
   * @throws AnnounceError when it could not be sent within the announce time limit (it is still being tried).
   */
  add(op: Op, key: string): Promise<void> {
    this.#open[op].add(key);
    const done = new Promise<void>((resolve, reject) => this.#open.waiters.push({ resolve, reject }));
    if (!this.#scheduled && !this.#sending) {
      this.#scheduled = true;
      setImmediate(() => this.#pump());
    }
    return done;
  }

  /** Resolves when everything gathered so far was sent, or failed once (it then waits in the queue). */
  flush(): Promise<void> {
    this.#pump();
    if (!this.#sending) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Sends what is pending (trying for up to 2 s), then stops. */
  async close(): Promise<void> {
    const until = Date.now() + CLOSE_GRACE_MS;
    await this.flush();
    while (this.#queue.length > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, RETRY_INTERVAL_MS / 2));
      await this.flush();
    }
    clearTimeout(this.#retry);
    const left = this.#keysQueued();
    if (left > 0) {
      this.#logger.warn({ keys: left }, "coherence bus: closed with changes it could not announce");
      const err = new AnnounceError(`coherence bus (${this.#publisher.description}): closed before announcing`);
      for (const q of this.#queue) for (const w of q.waiters) w.reject(err);
      this.#queue.length = 0;
    }
  }

  /** Turns what gathered into messages (each with the next sequence number) at the end of the queue. */
  #seal(): void {
    const open = this.#open;
    if (open.waiters.length === 0) return;
    this.#open = { save: new Set(), delete: new Set(), waiters: [] };
    let last: Queued | undefined;
    for (const op of ["save", "delete"] as const) {
      for (const chunk of batchKeys([...open[op]], this.#origin, this.#publisher.maxPayloadBytes)) {
        last = { message: { origin: this.#origin, seq: ++this.#seq, op, keys: chunk }, waiters: [] };
        this.#queue.push(last);
      }
    }
    // One time limit for the whole batch: its saves wait for the same message.
    const timer = setTimeout(() => {
      const err = new AnnounceError(
        `coherence bus (${this.#publisher.description}): the change was not announced within ${this.#announceMs} ms; still trying`,
      );
      for (const w of open.waiters) w.reject(err);
    }, this.#announceMs);
    timer.unref();
    last!.waiters = open.waiters.map((w) => ({
      resolve: () => {
        clearTimeout(timer);
        w.resolve();
      },
      reject: (e) => {
        clearTimeout(timer);
        w.reject(e);
      },
    }));
    this.#overflow();
  }

  /** A queue past its bound becomes one `clear` of everything (sent after what is on its way). */
  #overflow(): void {
    const size = this.#keysQueued();
    if (size <= RETRY_QUEUE_LIMIT) return;
    // The message on its way stays: its outcome shifts it off the queue.
    const keep = this.#sending ? 1 : 0;
    const dropped = this.#queue.splice(keep);
    const waiters = dropped.flatMap((q) => q.waiters);
    this.stats.overflowedKeys += size;
    const clear: BusMessage = { origin: this.#origin, seq: ++this.#seq, op: "clear", keys: [], prefix: "" };
    this.#queue.push({ message: clear, waiters });
    this.#logger.error(
      { keys: size, limit: RETRY_QUEUE_LIMIT },
      "coherence bus: announcement queue full; its keys are dropped and one clear of everything will be sent instead",
    );
    if (busChannel.hasSubscribers) busChannel.publish({ event: "overflow", origin: this.#origin, keys: size });
  }

  #pump(): void {
    this.#scheduled = false;
    if (this.#sending) return;
    this.#seal();
    const head = this.#queue[0];
    this.stats.retryQueue = this.#keysQueued();
    if (!head) {
      for (const done of this.#idle.splice(0)) done();
      return;
    }
    this.#sending = true;
    const m = head.message;
    this.#publisher.publish(encodeMessage(m)).then(
      () => {
        this.#sending = false;
        this.#queue.shift();
        this.stats.sent++;
        if (busChannel.hasSubscribers) {
          busChannel.publish({ event: "sent", origin: m.origin, op: m.op, keys: m.keys, seq: m.seq });
        }
        for (const w of head.waiters) w.resolve();
        this.#pump();
      },
      (err: Error) => {
        this.#sending = false;
        this.stats.publishFailures++;
        this.stats.retryQueue = this.#keysQueued();
        if (busChannel.hasSubscribers) {
          busChannel.publish({ event: "publish-failed", origin: this.#origin, keys: m.keys, reason: err.message });
        }
        this.#logger.warn({ keys: m.keys.length, reason: err.message }, "coherence bus: publish failed; sending again");
        for (const done of this.#idle.splice(0)) done();
        clearTimeout(this.#retry);
        this.#retry = setTimeout(() => this.#pump(), RETRY_INTERVAL_MS);
        this.#retry.unref();
      },
    );
  }

  #keysQueued(): number {
    let n = 0;
    for (const q of this.#queue) n += Math.max(1, q.message.keys.length);
    return n;
  }
}
