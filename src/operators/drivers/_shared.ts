/**
 * Small pieces every driver uses: bytes, the open/closed state, and for the
 * network drivers their capabilities, option checks, root rule and error copies.
 *
 * @module
 */
import { ClosedError, PersistenceError, ProfileError, redactSecrets } from "../../errors.js";
import type { OperatorCapabilities } from "../types.js";

const encoder = new TextEncoder();

/** Strings are stored as UTF-8; bytes are used as given. */
export function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : data;
}

/** Tracks whether an operator was closed, and throws `ClosedError` when it was. */
export class OpenState {
  #closed = false;
  constructor(private readonly scheme: string) {}
  get closed(): boolean {
    return this.#closed;
  }
  close(): boolean {
    const was = this.#closed;
    this.#closed = true;
    return !was;
  }
  check(key?: string): void {
    if (this.#closed) throw new ClosedError(`The ${this.scheme} operator is closed`, { key });
  }
}

/** What every network driver (redis, postgresql, mysql) can do: list, shared between processes, durable. */
export const NETWORK_CAPABILITIES: OperatorCapabilities = Object.freeze({
  list: true,
  lastModified: false,
  durable: true,
  shared: true,
  syncRead: false,
});

/**
 * A profile's options as a driver takes them: `type` and empty values dropped
 * (an unset `${VAR}` expands to `""`), values as strings, and any key not in
 * `accepted` a {@link ProfileError} listing the accepted ones. With
 * `foldKeys`, keys are matched (and returned) in lower case, as OpenDAL's redis
 * service matches them.
 */
export function profileOptions(
  options: Record<string, string>,
  accepted: readonly string[],
  scheme: string,
  profile: string,
  foldKeys = false,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(options)) {
    if (key === "type" || value === undefined || value === null || value === "") continue;
    const k = foldKeys ? key.toLowerCase() : key;
    if (!accepted.includes(k)) {
      throw new ProfileError(
        `profiles.${profile}.${key}: unknown option for a ${scheme} profile (accepted: ${accepted.join(", ")})`,
        { profile },
      );
    }
    out[k] = String(value);
  }
  return out;
}

/** OpenDAL's `normalize_root` as stored keys see it: segments joined with a trailing `/`, no leading one; `""` for `/`. */
export function normalizeRoot(root: string): string {
  const path = root.split("/").filter(Boolean).join("/");
  return path ? `${path}/` : "";
}

/** The password of a URL such as `redis://user:pw@host`, decoded; undefined when there is none or it is no URL. */
export function urlPassword(raw: string | undefined): string | undefined {
  if (!raw?.includes("@")) return undefined;
  try {
    return decodeURIComponent(new URL(raw.trim()).password) || undefined;
  } catch {
    return undefined;
  }
}

/** Bytes as a `Buffer` without copying (a string stays a string): what the clients send as a value. */
export function asBuffer(data: Uint8Array | string): Buffer | string {
  return typeof data === "string" || Buffer.isBuffer(data)
    ? data
    : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** What {@link redactedCopy} keeps besides the message and name. */
export interface RedactedCopyOptions {
  /** Properties copied as they are when set (codes: `code`, `errno`, `sqlState`). @default [] */
  fields?: readonly string[];
  /** Keep the stack (redacted). @default true */
  stack?: boolean;
}

/**
 * A client error made fit to be a `cause`: message (and stack) through
 * {@link redactSecrets}, the name and the listed code fields kept, nothing
 * else (a client's attached command holds values, or an AUTH password).
 * A {@link PersistenceError} is returned unchanged.
 */
export function redactedCopy(err: unknown, options: RedactedCopyOptions = {}): Error {
  if (err instanceof PersistenceError) return err;
  const src = err instanceof Error ? err : new Error(String(err));
  const copy = new Error(redactSecrets(src.message));
  copy.name = src.name;
  if (options.stack !== false && src.stack !== undefined) copy.stack = redactSecrets(src.stack);
  for (const field of options.fields ?? []) {
    const value = (src as unknown as Record<string, unknown>)[field];
    if (value !== undefined) Object.assign(copy, { [field]: value });
  }
  return copy;
}

/** One read waiting in a {@link ReadCoalescer} batch. */
interface WaitingRead {
  path: string;
  resolve: (value: Uint8Array | undefined) => void;
  reject: (err: unknown) => void;
}

/**
 * Coalesces single reads made in the same turn of the event loop into batched ones: 64 loads
 * in flight become one `MGET` (or one `= ANY($1)`) instead of 64 commands, at most `max` keys
 * per call. A read while nothing is in flight is sent at once (`readOne`); others wait for the
 * end of the turn (`process.nextTick`) and go together. A failed batch fails
 * each of its reads with the same error (each caller's retries then apply).
 */
export class ReadCoalescer {
  #waiting: WaitingRead[] | undefined;
  /** Calls sent and not yet answered. */
  #inFlight = 0;
  readonly #flush = () => this.#send();
  readonly #done = () => {
    this.#inFlight--;
  };

  /**
   * @param readMany the values of a batch in order; an `Error` in place of a value fails that
   *   read alone (a Cluster's batch spans several servers, one of which may be down).
   */
  constructor(
    private readonly readOne: (path: string) => Promise<Uint8Array | undefined>,
    private readonly readMany: (paths: readonly string[]) => Promise<(Uint8Array | undefined | Error)[]>,
    private readonly max: number,
  ) {}

  /** The value of `path` (checked and translated by the caller), or undefined when absent. */
  read(path: string): Promise<Uint8Array | undefined> {
    // Nothing waiting and nothing in flight: a lone read (one at a time) goes at once, without a turn's wait.
    if (this.#waiting === undefined && this.#inFlight === 0) return this.#track(this.readOne(path));
    return new Promise((resolve, reject) => {
      let waiting = this.#waiting;
      if (waiting === undefined) {
        waiting = this.#waiting = [];
        process.nextTick(this.#flush);
      }
      waiting.push({ path, resolve, reject });
      if (waiting.length >= this.max) this.#send();
    });
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight++;
    p.then(this.#done, this.#done);
    return p;
  }

  #send(): void {
    const batch = this.#waiting;
    if (batch === undefined) return;
    this.#waiting = undefined;
    if (batch.length === 1) {
      const only = batch[0]!;
      this.#track(this.readOne(only.path)).then(only.resolve, only.reject);
      return;
    }
    this.#track(this.readMany(batch.map((w) => w.path))).then(
      (values) => {
        for (let i = 0; i < batch.length; i++) {
          const v = values[i];
          if (v instanceof Error) batch[i]!.reject(v);
          else batch[i]!.resolve(v);
        }
      },
      (err) => {
        for (const w of batch) w.reject(err);
      },
    );
  }
}

/** `items` in consecutive chunks of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
