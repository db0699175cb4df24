/**
 * The metric instruments of the OpenTelemetry adapter (`./otel.ts`): the
 * operation latency histogram, the load and write-back counters, the state
 * change counter, and the quota and state gauges read from `storage.stats()`.
 *
 * @module
 */
import type {
  Attributes,
  BatchObservableCallback,
  Counter,
  Histogram,
  Meter,
  Observable,
  ObservableGauge,
} from "@opentelemetry/api";
import type { DeviceStorage } from "../index.js";

/** Names of the metrics that `instrument` (otel.ts) records. */
export const METRICS = {
  /** Histogram, seconds: one point per operation, with `terraphim.operation`, `terraphim.profile`, `terraphim.outcome`. */
  duration: "terraphim.persistence.operation.duration",
  /** Counter: loads served by the fastest profile (`terraphim.profile`). */
  hits: "terraphim.persistence.hits",
  /** Counter: loads no profile could answer with a value (`NotFoundError`). */
  misses: "terraphim.persistence.misses",
  /** Counter: loads served by a slower profile (`terraphim.profile` is the one that answered). */
  fallbacks: "terraphim.persistence.fallbacks",
  /** Counter: values copied into the fastest profile (`terraphim.profile`) from `terraphim.from`. */
  writeBacks: "terraphim.persistence.write_backs",
  /** Counter: changes of a profile's state (`terraphim.state`: ready, read-only, down). */
  stateChanges: "terraphim.persistence.state_changes",
  /** Gauge: quota usage of a profile with `max_size` / `max_items` (`terraphim.quota.unit`: bytes or items). */
  quotaUsage: "terraphim.persistence.quota.usage",
  /** Gauge: the quota's limit, same attributes as {@link METRICS.quotaUsage}. */
  quotaLimit: "terraphim.persistence.quota.limit",
  /** Gauge, 0..1: usage over limit, the fuller of bytes and items. */
  quotaUtilization: "terraphim.persistence.quota.utilization",
  /** Gauge: entries a `lru` quota has evicted so far. */
  quotaEvictions: "terraphim.persistence.quota.evictions",
  /** Gauge: 1 for a profile's current state (`terraphim.state`), 0 for the others. */
  profileState: "terraphim.persistence.profile.state",
} as const;

/** Latency bucket bounds in seconds: storage calls run from microseconds (memory) to seconds (remote). */
const DURATION_BUCKETS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  5, 10,
];
const STATE_KINDS = ["ready", "read-only", "down"] as const;

/** The synchronous instruments, and a `stop` that removes the gauges' callback. */
export interface Instruments {
  duration: Histogram;
  hits: Counter;
  misses: Counter;
  fallbacks: Counter;
  writeBacks: Counter;
  stateChanges: Counter;
  /** Removes the gauges' callback: they report nothing more. */
  stop(): void;
}

/**
 * Creates every instrument on `meter`; the gauges read `storage()` (undefined
 * or closed: nothing observed) once per collection.
 */
export function createInstruments(meter: Meter, storage: () => DeviceStorage | undefined): Instruments {
  const counter = (name: string, description: string) => meter.createCounter(name, { description, unit: "{load}" });
  const gauge = (name: string, description: string, unit: string) =>
    meter.createObservableGauge(name, { description, unit });
  // Bytes and items share one gauge, told apart by `terraphim.quota.unit`, hence no unit here.
  const usage = gauge(METRICS.quotaUsage, "Quota usage of a profile with max_size or max_items", "");
  const limit = gauge(METRICS.quotaLimit, "Quota limit of a profile (max_size bytes, max_items items)", "");
  const utilization = gauge(METRICS.quotaUtilization, "Quota usage over limit, the fuller of bytes and items", "1");
  const evictions = gauge(METRICS.quotaEvictions, "Entries evicted by an lru quota so far", "{item}");
  const state = gauge(METRICS.profileState, "1 for the profile's current state, 0 for the others", "1");
  const observables: Observable[] = [usage, limit, utilization, evictions, state];
  const callback: BatchObservableCallback = (result) => {
    const s = storage();
    if (s === undefined || s.closed) return;
    for (const [profile, st] of Object.entries(s.stats())) {
      const kind = st.state?.kind;
      if (kind !== undefined) {
        for (const k of STATE_KINDS)
          result.observe(state, k === kind ? 1 : 0, { "terraphim.profile": profile, "terraphim.state": k });
      }
      const u = st.usage;
      if (u === undefined) continue;
      const at = (unit: string): Attributes => ({ "terraphim.profile": profile, "terraphim.quota.unit": unit });
      const observe = (g: ObservableGauge, value: number, unit: string) => result.observe(g, value, at(unit));
      observe(usage, u.bytes, "bytes");
      observe(usage, u.items, "items");
      const ratios: number[] = [];
      if (u.maxSize !== undefined) {
        observe(limit, u.maxSize, "bytes");
        ratios.push(u.bytes / u.maxSize);
      }
      if (u.maxItems !== undefined) {
        observe(limit, u.maxItems, "items");
        ratios.push(u.items / u.maxItems);
      }
      if (ratios.length > 0) result.observe(utilization, Math.max(...ratios), { "terraphim.profile": profile });
      result.observe(evictions, u.evictions, { "terraphim.profile": profile });
    }
  };
  meter.addBatchObservableCallback(callback, observables);
  return {
    duration: meter.createHistogram(METRICS.duration, {
      description: "Duration of terraphim-persistence operations (load, save, delete, write-back, probe)",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    hits: counter(METRICS.hits, "Loads served by the fastest profile"),
    misses: counter(METRICS.misses, "Loads that found the key in no profile"),
    fallbacks: counter(METRICS.fallbacks, "Loads served by a slower profile after the faster ones missed"),
    writeBacks: meter.createCounter(METRICS.writeBacks, {
      description: "Values copied into the fastest profile by write-back",
      unit: "{value}",
    }),
    stateChanges: meter.createCounter(METRICS.stateChanges, {
      description: "Changes of a profile's state (ready, read-only, down)",
      unit: "{change}",
    }),
    stop: () => meter.removeBatchObservableCallback(callback, observables),
  };
}
