/**
 * OpenTelemetry for terraphim-persistence (`terraphim-persistence/otel`):
 * {@link instrument} subscribes to the library's `node:diagnostics_channel`
 * channels ({@link CHANNELS}) and turns them into spans (load, save, delete,
 * write-back, probe) and metrics (latency histogram, hit / miss / fallback /
 * write-back counters, quota and state gauges).
 *
 * What is recorded is only what is safe to export: profile names, schemes,
 * outcomes, sizes and error codes. Never a value, an error message (it may
 * name the key) or a profile option (endpoints, connection strings and
 * passwords stay out). Keys can carry user data, so they are left out unless
 * {@link InstrumentOptions.keys} asks for them, hashed or plain.
 *
 * @example
 * import { instrument } from "terraphim-persistence/otel";
 * const stop = instrument({ storage }); // the global tracer and meter providers
 * await storage.loadValue("document_a.json"); // a "persistence.load" span, a histogram point, a hit or fallback
 * stop(); // unsubscribes: nothing more is recorded
 *
 * @module
 */
import { createHmac, randomBytes } from "node:crypto";
import { channel, tracingChannel } from "node:diagnostics_channel";
import { performance } from "node:perf_hooks";
import {
  type Attributes,
  context,
  type MeterProvider,
  metrics,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import { CHANNELS, DeviceStorage, NotFoundError, PartialWriteError, PersistenceError } from "../index.js";
import { createInstruments, type Instruments } from "./_otel-metrics.js";

export { METRICS } from "./_otel-metrics.js";

/** The instrumentation scope of the tracer and meter. */
export const INSTRUMENTATION_SCOPE = "terraphim-persistence";

/** Span names, one per operation. */
export const SPAN_NAMES = {
  load: "persistence.load",
  save: "persistence.save",
  delete: "persistence.delete",
  writeBack: "persistence.write-back",
  probe: "persistence.probe",
} as const;

/** Attribute keys of the spans and metrics. */
export const ATTRIBUTES = {
  /** `load`, `save`, `delete`, `write-back` or `probe`. */
  operation: "terraphim.operation",
  /** The profile that served a load, received a write-back or was probed. */
  profile: "terraphim.profile",
  /** The profiles a save or delete went to (span: an array; metrics: joined with `,`). */
  profiles: "terraphim.profiles",
  /** Load: `hit` (fastest profile), `fallback` (a slower one), `miss` (`NotFoundError`) or `error`; else `ok` or `error`. */
  outcome: "terraphim.outcome",
  /** Stored size in bytes (save, write-back; a load when the library reports it). */
  bytes: "terraphim.bytes",
  /** The library error's stable `code` (`E_NOT_FOUND`, `E_PARTIAL_WRITE`, ...). */
  errorCode: "terraphim.error.code",
  /** OpenTelemetry's `error.type`: the `code`, or the class name of an error not from this library. */
  errorType: "error.type",
  /** Profiles a `PartialWriteError` names as failed. */
  failedProfiles: "terraphim.failed_profiles",
  /** Where a load found a value a write-back copies from. */
  from: "terraphim.from",
  /** Whether a load scheduled a write-back. */
  writeBack: "terraphim.write_back",
  /** A probed profile's scheme (`memory`, `sqlite`, `redis`, ...). */
  scheme: "terraphim.scheme",
  /** The probe's median read in µs. */
  probeLatencyUs: "terraphim.probe.latency_us",
  /** The key as given (`keys: "plain"`) or as your function maps it. */
  key: "terraphim.key",
  /** The key's keyed hash (`keys: "hash"`). */
  keyHash: "terraphim.key.hash",
  /** A profile's state: `ready`, `read-only` or `down`. */
  state: "terraphim.state",
  /** Why a profile is `read-only` (`disk full`, `configured`, ...). */
  stateReason: "terraphim.state.reason",
} as const;

/**
 * Whether and how keys are recorded on spans (never on metrics):
 * - `"omit"`: not at all;
 * - `"hash"`: `terraphim.key.hash`, the first 16 hex digits of an HMAC-SHA256
 *   under a random secret of this `instrument()` call: equal keys correlate
 *   within the process, and a short key cannot be found by hashing guesses;
 * - `"plain"`: `terraphim.key` as given (only when keys never carry user data);
 * - a function: `terraphim.key` is what it returns (`undefined`: not recorded).
 */
export type KeyRecording = "omit" | "hash" | "plain" | ((key: string) => string | undefined);

/** Options of {@link instrument}. */
export interface InstrumentOptions {
  /**
   * Where spans go.
   * @default trace.getTracerProvider() (the global one; it may be registered later)
   * @example instrument({ tracerProvider: new BasicTracerProvider({ spanProcessors: [processor] }) })
   */
  tracerProvider?: TracerProvider | undefined;
  /**
   * Where metrics go.
   * @default metrics.getMeterProvider() (the global one, as registered when `instrument` runs)
   * @example instrument({ meterProvider: new MeterProvider({ readers: [reader] }) })
   */
  meterProvider?: MeterProvider | undefined;
  /**
   * The storage whose `stats()` the quota and state gauges read, and whose
   * fastest profile tells a hit from a fallback.
   * @default DeviceStorage.current, looked up at each collection
   * @example instrument({ storage: await DeviceStorage.fromSettings(settings) })
   */
  storage?: DeviceStorage | undefined;
  /**
   * Keys on spans: they can carry user data (ids, e-mail addresses), so none by default.
   * @default "omit"
   * @example instrument({ keys: "hash" })
   * @example instrument({ keys: (k) => k.replace(/_.*$/, "_*") }) // document_*
   */
  keys?: KeyRecording | undefined;
}

/** Removes the instrumentation: every channel unsubscribed, the gauges' callback removed. Idempotent. */
export type Uninstrument = () => void;

type Ctx = Record<string, unknown>;
type Operation = "load" | "save" | "delete" | "write-back" | "probe";
/** One traced operation in progress. */
interface Flight {
  op: Operation;
  span: Span;
  t0: number;
  /** The profile label of its metrics. */
  profile: string | undefined;
}
interface Handlers {
  start(ctx: Ctx): void;
  end(ctx: Ctx): void;
  asyncStart(ctx: Ctx): void;
  asyncEnd(ctx: Ctx): void;
  error(ctx: Ctx): void;
}

const KEY_MODES = ["omit", "hash", "plain"];
const HASH_HEX_DIGITS = 16;

/**
 * Turns the library's diagnostics channels into OpenTelemetry spans and
 * metrics until the returned function is called. Several instrumentations may
 * run at once (each records everything). Loads traced this way take the
 * promise path (a subscriber turns off the synchronous hit shortcut).
 *
 * @throws PersistenceError for an option of the wrong type.
 * @example
 * const stop = instrument({ tracerProvider, meterProvider, storage, keys: "hash" });
 * // ... later
 * stop();
 */
export function instrument(options: InstrumentOptions = {}): Uninstrument {
  const keyOf = keyRecorder(checkOptions(options).keys ?? "omit");
  const tracer: Tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(INSTRUMENTATION_SCOPE);
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_SCOPE);
  const storage = () => options.storage ?? DeviceStorage.current;
  const m = createInstruments(meter, storage);
  const flights = new WeakMap<object, Flight>();

  const begin = (ctx: Ctx, op: Operation, name: string, profile: string | undefined, attributes: Attributes) => {
    const attrs: Attributes = { [ATTRIBUTES.operation]: op, ...attributes, ...keyOf(ctx.key) };
    const span = tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes: attrs }, context.active());
    flights.set(ctx, { op, span, t0: performance.now(), profile });
  };
  const finish = (ctx: Ctx) => {
    const f = flights.get(ctx);
    if (f === undefined) return;
    flights.delete(ctx);
    const failed = "error" in ctx;
    const outcome = failed ? failure(f, ctx.error) : success(f, ctx, storage(), m);
    f.span.setAttribute(ATTRIBUTES.outcome, outcome);
    f.span.end();
    const attrs: Attributes = { [ATTRIBUTES.operation]: f.op, [ATTRIBUTES.outcome]: outcome };
    if (f.profile !== undefined) attrs[ATTRIBUTES.profile] = f.profile;
    if (failed) attrs[ATTRIBUTES.errorType] = errorType(ctx.error);
    m.duration.record((performance.now() - f.t0) / 1000, attrs);
    if (outcome === "miss") m.misses.add(1);
  };
  const handlers = (onStart: (ctx: Ctx) => void): Handlers => ({
    start: onStart,
    // A synchronous throw: `error` came first and no async events follow.
    end: (ctx) => {
      if ("error" in ctx) finish(ctx);
    },
    asyncStart: () => {},
    asyncEnd: finish,
    error: () => {},
  });

  const subscriptions: [string, Handlers][] = [
    [CHANNELS.load, handlers((ctx) => begin(ctx, "load", SPAN_NAMES.load, undefined, {}))],
    [
      CHANNELS.save,
      handlers((ctx) => {
        const op = ctx.op === "delete" ? "delete" : "save";
        const profiles = strings(ctx.profiles);
        const attrs: Attributes = { [ATTRIBUTES.profiles]: profiles };
        if (op === "save") Object.assign(attrs, num(ATTRIBUTES.bytes, ctx.bytes));
        begin(ctx, op, SPAN_NAMES[op], profiles.join(","), attrs);
      }),
    ],
    [
      CHANNELS.writeBack,
      handlers((ctx) => {
        const profile = str(ctx.profile);
        const attrs = {
          [ATTRIBUTES.profile]: profile,
          [ATTRIBUTES.from]: str(ctx.from),
          ...num(ATTRIBUTES.bytes, ctx.bytes),
        };
        begin(ctx, "write-back", SPAN_NAMES.writeBack, profile, attrs);
      }),
    ],
    [
      CHANNELS.probe,
      handlers((ctx) => {
        const profile = str(ctx.profile);
        const attrs = { [ATTRIBUTES.profile]: profile, [ATTRIBUTES.scheme]: str(ctx.scheme) };
        begin(ctx, "probe", SPAN_NAMES.probe, profile, attrs);
      }),
    ],
  ];
  for (const [name, h] of subscriptions) tracingChannel<unknown, Ctx>(name).subscribe(h);
  const onState = (message: unknown) => {
    const { profile, to } = (message ?? {}) as { profile?: unknown; to?: { kind?: unknown; reason?: unknown } };
    const attrs: Attributes = { [ATTRIBUTES.profile]: str(profile), [ATTRIBUTES.state]: str(to?.kind) };
    // A read-only reason is one of a few fixed phrases; a down reason is free text (it may name a host), left out.
    if (to?.kind === "read-only") attrs[ATTRIBUTES.stateReason] = str(to.reason);
    m.stateChanges.add(1, attrs);
  };
  channel(CHANNELS.state).subscribe(onState);

  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    for (const [name, h] of subscriptions) tracingChannel<unknown, Ctx>(name).unsubscribe(h);
    channel(CHANNELS.state).unsubscribe(onState);
    m.stop();
  };
}

/** Sets a successful operation's attributes and counters; returns its outcome. */
function success(f: Flight, ctx: Ctx, storage: DeviceStorage | undefined, m: Instruments): string {
  const span = f.span;
  if (f.op === "write-back") {
    m.writeBacks.add(1, { [ATTRIBUTES.profile]: str(ctx.profile), [ATTRIBUTES.from]: str(ctx.from) });
  } else if (f.op === "probe") {
    if (typeof ctx.result === "number") span.setAttribute(ATTRIBUTES.probeLatencyUs, ctx.result);
  } else if (f.op === "load") {
    const r = (ctx.result ?? {}) as { profile?: unknown; writeBack?: unknown; bytes?: unknown };
    const profile = str(r.profile);
    const writeBack = r.writeBack === true;
    f.profile = profile;
    span.setAttributes({ [ATTRIBUTES.profile]: profile, [ATTRIBUTES.writeBack]: writeBack });
    span.setAttributes(num(ATTRIBUTES.bytes, ctx.bytes ?? r.bytes));
    const outcome = isFallback(profile, writeBack, storage) ? "fallback" : "hit";
    (outcome === "hit" ? m.hits : m.fallbacks).add(1, { [ATTRIBUTES.profile]: profile });
    return outcome;
  }
  return "ok";
}

/**
 * A load answered by a slower profile. It scheduled a write-back, or (a load
 * that shared another load's read) the watched storage has a faster profile.
 * A load of another storage than the watched one counts as a hit unless it wrote back.
 */
function isFallback(profile: string, writeBack: boolean, storage: DeviceStorage | undefined): boolean {
  if (writeBack) return true;
  if (storage === undefined || storage.closed) return false;
  try {
    return storage.ops.has(profile) && storage.fastestProfile !== profile;
  } catch {
    // No tier serving reads right now: a subscriber must never throw into the load it observes.
    return false;
  }
}

/** Sets a failed operation's attributes and status; returns its outcome (`miss` for a load's `NotFoundError`). */
function failure(f: Flight, error: unknown): string {
  const type = errorType(error);
  const attrs: Attributes = { [ATTRIBUTES.errorType]: type };
  if (error instanceof PersistenceError) attrs[ATTRIBUTES.errorCode] = error.code;
  if (error instanceof PartialWriteError) {
    attrs[ATTRIBUTES.failedProfiles] = error.outcomes.filter((o) => !o.ok).map((o) => o.profile);
  }
  f.span.setAttributes(attrs);
  // A miss is an answer, not a failure of the storage: the span keeps an unset status.
  if (f.op === "load" && error instanceof NotFoundError) return "miss";
  // The code only: a message may name the key.
  f.span.setStatus({ code: SpanStatusCode.ERROR, message: type });
  return "error";
}

/** The library's `code`, else the error's class name, else `_OTHER` (OpenTelemetry's fallback). */
function errorType(error: unknown): string {
  if (error instanceof PersistenceError) return error.code;
  if (error instanceof Error) return error.name;
  return "_OTHER";
}

/** The span attributes a key gives under `mode`. */
function keyRecorder(mode: KeyRecording): (key: unknown) => Attributes {
  if (mode === "omit") return () => ({});
  if (mode === "plain") return (key) => (typeof key === "string" ? { [ATTRIBUTES.key]: key } : {});
  if (mode === "hash") {
    const secret = randomBytes(32);
    return (key) => {
      if (typeof key !== "string") return {};
      const digest = createHmac("sha256", secret).update(key).digest("hex");
      return { [ATTRIBUTES.keyHash]: digest.slice(0, HASH_HEX_DIGITS) };
    };
  }
  return (key) => {
    const v = typeof key === "string" ? mode(key) : undefined;
    return typeof v === "string" ? { [ATTRIBUTES.key]: v } : {};
  };
}

function checkOptions(o: InstrumentOptions): InstrumentOptions {
  if (typeof o !== "object" || o === null)
    throw new PersistenceError(`Expected options to be an object, got ${typeof o}`);
  const k = o.keys;
  if (k !== undefined && typeof k !== "function" && !KEY_MODES.includes(k as string)) {
    throw new PersistenceError(
      `Expected \`keys\` to be "omit", "hash", "plain" or a function, got ${typeof k === "string" ? JSON.stringify(k) : typeof k}`,
    );
  }
  if (o.storage !== undefined && !(o.storage instanceof DeviceStorage)) {
    throw new PersistenceError(`Expected \`storage\` to be a DeviceStorage, got ${typeof o.storage}`);
  }
  for (const name of ["tracerProvider", "meterProvider"] as const) {
    const p = o[name] as unknown;
    const method = name === "tracerProvider" ? "getTracer" : "getMeter";
    if (p !== undefined && typeof (p as Record<string, unknown> | null)?.[method] !== "function") {
      throw new PersistenceError(
        `Expected \`${name}\` to have a ${method}() method, got ${p === null ? "null" : typeof p}`,
      );
    }
  }
  return o;
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

function num(key: string, v: unknown): Attributes {
  return typeof v === "number" && Number.isFinite(v) ? { [key]: v } : {};
}
