/**
 * What carries the coherence bus: Redis pub/sub or PostgreSQL LISTEN/NOTIFY.
 * Both are fire-and-forget: what is published while a listener is
 * disconnected is lost to it, so a transport says when its listener went
 * down (every message since may be lost) and when it is listening again.
 *
 * @module
 */
import { BackendError, redactSecrets } from "../../errors.js";
/** What a transport tells the bus. */
export interface TransportEvents {
  /** A payload arrived on the channel (its own included). */
  message(payload: string): void;
  /** The listener lost its connection (or never had one): messages may be missed until {@link up}. */
  down(reason: string): void;
  /** The listener is subscribed (again): anything published from now on arrives. */
  up(): void;
}

/** One engine's pub/sub, as the bus uses it. */
export interface Transport {
  /** The largest payload the engine takes, in bytes. */
  readonly maxPayloadBytes: number;
  /** Where it is, for messages: `redis 127.0.0.1:6379, channel "x"` (never a credential). */
  readonly description: string;
  /** Sends one payload. @throws when it could not be sent (the bus queues it for a retry). */
  publish(payload: string): Promise<void>;
  /**
   * Starts listening (and keeps reconnecting until {@link close}). `events.up`
   * is called on each subscription, `events.down` on each loss.
   */
  listen(events: TransportEvents): void;
  /** Stops listening and closes the connections. */
  close(): Promise<void>;
}

/** Reconnect back-off of a listener: 100 ms more per failed attempt, at most this. */
export const MAX_RECONNECT_DELAY_MS = 2000;
export const reconnectDelay = (attempt: number): number => Math.min(100 * attempt, MAX_RECONNECT_DELAY_MS);

/**
 * A listener's life: one connection at a time (`connect(attempt)`), and when
 * it ends, the next after the back-off, until {@link close}. Both transports
 * run their listener on it.
 */
export class ReconnectLoop {
  readonly #connect: (attempt: number) => void;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(connect: (attempt: number) => void) {
    this.#connect = connect;
  }

  get closed(): boolean {
    return this.#closed;
  }

  start(): void {
    this.#connect(0);
  }

  /** The connection listens: the back-off starts over. */
  listening(): void {
    this.#attempt = 0;
  }

  /** The connection ended: the next one after the back-off. */
  lost(): void {
    if (this.#closed) return;
    this.#attempt++;
    const attempt = this.#attempt;
    this.#timer = setTimeout(() => this.#closed || this.#connect(attempt), reconnectDelay(attempt));
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}

/** A publish the engine refused or could not take: transient (the outbox retries it), never with a credential. */
export function publishFailed(description: string, what: "publish" | "notify", err: unknown): BackendError {
  const why = redactSecrets(err instanceof Error ? err.message : String(err));
  return new BackendError(`coherence bus (${description}): ${what} failed: ${why}`, { transient: true });
}
