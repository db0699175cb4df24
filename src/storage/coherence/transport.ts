/**
 * What sends the coherence bus's messages: Redis `PUBLISH` or PostgreSQL
 * `pg_notify`, on one connection so that they keep the order of their
 * sequence numbers. Listening is the listeners' business (`listener.ts`).
 *
 * @module
 */
import { BackendError, redactSecrets } from "../../errors.js";

/** One engine's publishing side, as the bus uses it. */
export interface Publisher {
  /** The largest payload the engine takes, in bytes. */
  readonly maxPayloadBytes: number;
  /** Where it is, for messages: `redis 127.0.0.1:6379, channel "x"` (never a credential). */
  readonly description: string;
  /** Sends one payload. @throws when it could not be sent in time (the outbox sends it again). */
  publish(payload: string): Promise<void>;
  close(): Promise<void>;
}

/** A publish the engine refused, or did not take in time: transient (the outbox retries it), never with a credential. */
export function publishFailed(description: string, what: "publish" | "notify", err: unknown): BackendError {
  const why = redactSecrets(err instanceof Error ? err.message : String(err));
  return new BackendError(`coherence bus (${description}): ${what} failed: ${why}`, { transient: true });
}

/** `p`, or a rejection once `ms` have passed (the call may still land: a retry carries the same sequence number). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
