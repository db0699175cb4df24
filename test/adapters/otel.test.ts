/**
 * The OpenTelemetry adapter on real backends (SQLite files in a temp dir, the
 * machine's Redis) with the OpenTelemetry SDK's in-memory span exporter and a
 * metric reader collected on demand (delta temporality: each collection holds
 * only what was recorded since the previous one).
 */
import { randomUUID } from "node:crypto";
import { channel, tracingChannel } from "node:diagnostics_channel";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { metrics, SpanStatusCode, trace } from "@opentelemetry/api";
import {
  AggregationTemporality,
  type DataPoint,
  MeterProvider,
  type MetricData,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ATTRIBUTES as A, instrument, METRICS, SPAN_NAMES, type Uninstrument } from "../../src/adapters/otel.js";
import {
  CHANNELS,
  chaosOperator,
  createOperator,
  DeviceStorage,
  NotFoundError,
  PartialWriteError,
  silentLogger,
} from "../../src/index.js";
import { requireServer } from "../helpers/servers.js";

const dir = mkdtempSync(join(tmpdir(), "tp-otel-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const redisOk = await requireServer("redis (OpenTelemetry adapter)", "127.0.0.1", 6379);

/** A metric reader collected by the test. */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.DELTA });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

interface Telemetry {
  exporter: InMemorySpanExporter;
  tracerProvider: BasicTracerProvider;
  meterProvider: MeterProvider;
  reader: TestReader;
  /** The metrics recorded since the previous call, by name. */
  collect(): Promise<Map<string, MetricData>>;
}

function telemetry(): Telemetry {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const collect = async () => {
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    const out = new Map<string, MetricData>();
    for (const s of resourceMetrics.scopeMetrics) for (const m of s.metrics) out.set(m.descriptor.name, m);
    return out;
  };
  return { exporter, tracerProvider, meterProvider, reader, collect };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Instruments with `t`'s providers; removed after the test. */
function instrumentWith(t: Telemetry, more: Parameters<typeof instrument>[0] = {}): Uninstrument {
  const stop = instrument({ tracerProvider: t.tracerProvider, meterProvider: t.meterProvider, ...more });
  cleanups.push(stop);
  return stop;
}

/** Memory (with a quota) over SQLite in a fresh temp dir, the ranking fixed. */
async function memoryOverSqlite(): Promise<DeviceStorage> {
  const s = await DeviceStorage.fromSettings(
    {
      profiles: {
        mem: { type: "memory", speed: "1", max_items: "100", max_size: "1MiB" },
        db: { type: "sqlite", datadir: mkdtempSync(join(dir, "db-")), table: "kv", speed: "2" },
      },
    },
    { logger: silentLogger },
  );
  cleanups.push(() => s.close());
  return s;
}

const spans = (t: Telemetry, name?: string) => t.exporter.getFinishedSpans().filter((s) => !name || s.name === name);
const only = (t: Telemetry, name: string, pred: (s: ReadableSpan) => boolean = () => true) => {
  const found = spans(t, name).filter(pred);
  expect(found, `one ${name} span`).toHaveLength(1);
  return found[0]!;
};
const points = (m: Map<string, MetricData>, name: string) => (m.get(name)?.dataPoints ?? []) as DataPoint<unknown>[];
const pointWith = (m: Map<string, MetricData>, name: string, attrs: Record<string, unknown>) =>
  points(m, name).filter((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v));
const sum = (m: Map<string, MetricData>, name: string, attrs: Record<string, unknown> = {}) =>
  pointWith(m, name, attrs).reduce((n, p) => n + (p.value as number), 0);
const histogramCount = (m: Map<string, MetricData>, attrs: Record<string, unknown>) =>
  pointWith(m, METRICS.duration, attrs).reduce((n, p) => n + (p.value as { count: number }).count, 0);

describe("instrument() on memory over sqlite", () => {
  it("records probe, save, load (fallback, hit, miss), write-back and delete spans", async () => {
    const t = telemetry();
    instrumentWith(t);
    const s = await memoryOverSqlite();
    for (const [profile, scheme] of [
      ["mem", "memory"],
      ["db", "sqlite"],
    ]) {
      const probe = only(t, SPAN_NAMES.probe, (x) => x.attributes[A.profile] === profile);
      expect(probe.attributes).toMatchObject({ [A.operation]: "probe", [A.scheme]: scheme, [A.outcome]: "ok" });
      expect(probe.attributes[A.probeLatencyUs]).toBeGreaterThanOrEqual(0);
    }

    await s.saveValue("note_a.json", { a: 1 }, { profiles: ["db"] });
    const save = only(t, SPAN_NAMES.save);
    expect(save.attributes).toMatchObject({
      [A.operation]: "save",
      [A.profiles]: ["db"],
      [A.bytes]: 7,
      [A.outcome]: "ok",
    });

    const first = await s.loadValue("note_a.json");
    expect(first).toMatchObject({ profile: "db", writeBack: true });
    await s.flush();
    const fallback = only(t, SPAN_NAMES.load);
    expect(fallback.attributes).toMatchObject({ [A.profile]: "db", [A.outcome]: "fallback", [A.writeBack]: true });
    expect(fallback.status.code).toBe(SpanStatusCode.UNSET);
    const wb = only(t, SPAN_NAMES.writeBack);
    expect(wb.attributes).toMatchObject({ [A.profile]: "mem", [A.from]: "db", [A.bytes]: 7, [A.outcome]: "ok" });

    t.exporter.reset();
    expect(await s.loadValue("note_a.json")).toMatchObject({ profile: "mem", writeBack: false });
    expect(only(t, SPAN_NAMES.load).attributes).toMatchObject({ [A.profile]: "mem", [A.outcome]: "hit" });

    t.exporter.reset();
    await expect(s.loadValue("note_missing.json")).rejects.toBeInstanceOf(NotFoundError);
    const miss = only(t, SPAN_NAMES.load);
    expect(miss.attributes).toMatchObject({
      [A.outcome]: "miss",
      [A.errorCode]: "E_NOT_FOUND",
      [A.errorType]: "E_NOT_FOUND",
    });
    expect(miss.status.code).toBe(SpanStatusCode.UNSET);

    await s.deleteValue("note_a.json");
    const del = only(t, SPAN_NAMES.delete);
    expect(del.attributes).toMatchObject({ [A.operation]: "delete", [A.profiles]: ["mem", "db"], [A.outcome]: "ok" });
    expect(del.attributes[A.bytes]).toBeUndefined();

    // Keys are left out by default; nothing of a span names them.
    const dump = JSON.stringify(t.exporter.getFinishedSpans().map(view));
    expect(dump).not.toContain("note_");
  });

  it("histogram, counters and the quota gauge have data per profile and operation", async () => {
    const t = telemetry();
    const s = await memoryOverSqlite();
    instrumentWith(t, { storage: s });
    await s.saveValue("note_b.json", { b: 2 }, { profiles: ["db"] });
    await s.saveValue("note_c.json", { c: 3 });
    await s.loadValue("note_b.json"); // fallback from db, written back to mem
    await s.flush();
    await s.loadValue("note_b.json"); // hit in mem
    await s.loadValue("note_c.json"); // hit in mem
    await s.loadValue("note_none.json").catch(() => {});
    const m = await t.collect();

    expect(histogramCount(m, { [A.operation]: "load", [A.profile]: "mem", [A.outcome]: "hit" })).toBe(2);
    expect(histogramCount(m, { [A.operation]: "load", [A.profile]: "db", [A.outcome]: "fallback" })).toBe(1);
    expect(histogramCount(m, { [A.operation]: "load", [A.outcome]: "miss", [A.errorType]: "E_NOT_FOUND" })).toBe(1);
    expect(histogramCount(m, { [A.operation]: "save", [A.profile]: "db" })).toBe(1);
    expect(histogramCount(m, { [A.operation]: "save", [A.profile]: "mem,db" })).toBe(1);
    expect(histogramCount(m, { [A.operation]: "write-back", [A.profile]: "mem" })).toBe(1);
    expect(m.get(METRICS.duration)?.descriptor.unit).toBe("s");

    expect(sum(m, METRICS.hits, { [A.profile]: "mem" })).toBe(2);
    expect(sum(m, METRICS.hits)).toBe(2);
    expect(sum(m, METRICS.fallbacks, { [A.profile]: "db" })).toBe(1);
    expect(sum(m, METRICS.misses)).toBe(1);
    expect(sum(m, METRICS.writeBacks, { [A.profile]: "mem", [A.from]: "db" })).toBe(1);

    // mem holds note_b (written back) and note_c; db has no quota, so no gauge for it.
    const usage = s.stats().mem!.usage!;
    expect(usage).toMatchObject({ items: 2, maxItems: 100 });
    expect(sum(m, METRICS.quotaUsage, { [A.profile]: "mem", "terraphim.quota.unit": "items" })).toBe(2);
    expect(sum(m, METRICS.quotaUsage, { [A.profile]: "mem", "terraphim.quota.unit": "bytes" })).toBe(usage.bytes);
    expect(usage.bytes).toBeGreaterThan(0);
    expect(sum(m, METRICS.quotaLimit, { [A.profile]: "mem", "terraphim.quota.unit": "bytes" })).toBe(1024 * 1024);
    expect(sum(m, METRICS.quotaUtilization, { [A.profile]: "mem" })).toBeCloseTo(2 / 100);
    expect(pointWith(m, METRICS.quotaUsage, { [A.profile]: "db" })).toEqual([]);
    expect(sum(m, METRICS.profileState, { [A.profile]: "db", [A.state]: "ready" })).toBe(1);
    expect(sum(m, METRICS.profileState, { [A.profile]: "db", [A.state]: "down" })).toBe(0);
  });

  it("a failed save carries the error code and failed profiles; state changes are counted", async () => {
    const t = telemetry();
    const chaos = chaosOperator(await createOperator("sqlite", { datadir: mkdtempSync(join(dir, "rofs-")) }));
    const s = await DeviceStorage.fromOperators(
      [
        { name: "mem", op: await createOperator("memory"), speed: 1 },
        { name: "db", op: chaos, speed: 2 },
      ],
      { logger: silentLogger },
    );
    cleanups.push(() => s.close());
    instrumentWith(t, { storage: s });
    const erofs = () => Object.assign(new Error("injected: read-only file system"), { code: "EROFS" });
    chaos.faults = { fail: ["write"], error: erofs };
    const err = await s.saveValue("note_d.json", { d: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PartialWriteError);
    const save = only(t, SPAN_NAMES.save);
    expect(save.attributes).toMatchObject({
      [A.outcome]: "error",
      [A.errorCode]: "E_PARTIAL_WRITE",
      [A.failedProfiles]: ["db"],
    });
    expect(save.status).toEqual({ code: SpanStatusCode.ERROR, message: "E_PARTIAL_WRITE" });
    expect(s.profile("db").state).toEqual({ kind: "read-only", reason: "read-only file system" });

    chaos.faults = {};
    await s.saveValue("note_d.json", { d: 5 });
    expect(s.profile("db").state).toEqual({ kind: "ready" });
    const m = await t.collect();
    const ro = { [A.profile]: "db", [A.state]: "read-only", [A.stateReason]: "read-only file system" };
    expect(sum(m, METRICS.stateChanges, ro)).toBe(1);
    expect(sum(m, METRICS.stateChanges, { [A.profile]: "db", [A.state]: "ready" })).toBe(1);
    expect(histogramCount(m, { [A.operation]: "save", [A.outcome]: "error", [A.errorType]: "E_PARTIAL_WRITE" })).toBe(
      1,
    );
  });

  it("records keys only as asked: hashed (keyed, stable) or plain", async () => {
    const s = await memoryOverSqlite();
    const hashed = telemetry();
    const stopHashed = instrumentWith(hashed, { storage: s, keys: "hash" });
    const plain = telemetry();
    instrumentWith(plain, { storage: s, keys: (k) => k.replace(/_.*$/, "_*") });
    await s.saveValue("user_alice@example.com.json", { n: 1 });
    await s.loadValue("user_alice@example.com.json");
    await s.saveValue("user_bob.json", { n: 2 });
    const h = spans(hashed).map((x) => x.attributes[A.keyHash]);
    expect(h).toHaveLength(3);
    for (const v of h) expect(v).toMatch(/^[0-9a-f]{16}$/);
    expect(h[0]).toBe(h[1]);
    expect(h[2]).not.toBe(h[0]);
    expect(JSON.stringify(spans(hashed).map(view))).not.toMatch(/alice|bob/);
    expect(spans(plain).map((x) => x.attributes[A.key])).toEqual(["user_*", "user_*", "user_*"]);
    stopHashed();
    expect(() => instrument({ keys: "raw" as never })).toThrow(
      /Expected `keys` to be "omit", "hash", "plain" or a function, got "raw"/,
    );
  });

  it("uses the global providers when none are given", async () => {
    const t = telemetry();
    const s = await memoryOverSqlite();
    expect(trace.setGlobalTracerProvider(t.tracerProvider)).toBe(true);
    expect(metrics.setGlobalMeterProvider(t.meterProvider)).toBe(true);
    cleanups.push(() => {
      trace.disable();
      metrics.disable();
    });
    const stop = instrument({ storage: s });
    cleanups.push(stop);
    await s.saveValue("note_g.json", { g: 1 });
    await s.loadValue("note_g.json");
    expect(spans(t).map((x) => x.name)).toEqual([SPAN_NAMES.save, SPAN_NAMES.load]);
    const m = await t.collect();
    expect(sum(m, METRICS.hits, { [A.profile]: "mem" })).toBe(1);
    expect(sum(m, METRICS.quotaUsage, { [A.profile]: "mem", "terraphim.quota.unit": "items" })).toBe(1);
  });

  it("without a storage, the gauges read DeviceStorage.current", async () => {
    const t = telemetry();
    instrumentWith(t);
    expect((await t.collect()).get(METRICS.profileState)?.dataPoints ?? []).toEqual([]);
    await DeviceStorage.initMemoryOnly();
    cleanups.push(() => DeviceStorage.resetInstance());
    const m = await t.collect();
    expect(sum(m, METRICS.profileState, { [A.profile]: "memory", [A.state]: "ready" })).toBe(1);
    expect(sum(m, METRICS.profileState, { [A.profile]: "memory", [A.state]: "read-only" })).toBe(0);
  });

  it("after the returned function, nothing more is recorded", async () => {
    const t = telemetry();
    const s = await memoryOverSqlite();
    const stop = instrumentWith(t, { storage: s });
    await s.saveValue("note_e.json", { e: 1 }, { profiles: ["db"] });
    await s.loadValue("note_e.json");
    await s.flush();
    expect(spans(t).length).toBe(3);
    expect((await t.collect()).size).toBeGreaterThan(0);
    stop();
    stop(); // idempotent
    for (const name of [CHANNELS.load, CHANNELS.save, CHANNELS.writeBack, CHANNELS.probe]) {
      expect(tracingChannel(name).hasSubscribers, name).toBe(false);
    }
    expect(channel(CHANNELS.state).hasSubscribers).toBe(false);
    t.exporter.reset();
    await s.saveValue("note_f.json", { f: 1 }, { profiles: ["db"] });
    await s.loadValue("note_f.json");
    await s.loadValue("note_f.json");
    await s.loadValue("note_none.json").catch(() => {});
    await s.deleteValue("note_e.json");
    await s.flush();
    expect(spans(t)).toEqual([]);
    const after = await t.collect();
    const recorded = [...after.values()].flatMap((m) => m.dataPoints as DataPoint<unknown>[]);
    expect(recorded).toEqual([]);
  });
});

/** What an exporter would send of a span: everything but the ids and timings. */
function view(s: ReadableSpan) {
  return { name: s.name, attributes: s.attributes, events: s.events, status: s.status, links: s.links };
}

describe.skipIf(!redisOk)("instrument() on memory over Redis (127.0.0.1:6379)", () => {
  for (const [label, endpoint] of [
    ["password-less endpoint", "tcp://127.0.0.1:6379"],
    ["endpoint with a password", "redis://:s3cret-pw@127.0.0.1:6379"],
  ] as const) {
    it(`${label}: fallback and write-back spans, no secret or value anywhere`, async () => {
      const t = telemetry();
      instrumentWith(t);
      const root = `/tp-otel-${randomUUID()}/`;
      const s = await DeviceStorage.fromSettings(
        {
          profiles: {
            mem: { type: "memory", speed: "1", max_items: "50" },
            r: { type: "redis", endpoint, root, speed: "2" },
          },
        },
        { logger: silentLogger },
      );
      cleanups.push(() => s.close());
      const marker = `VALUE-${randomUUID()}`;
      const key = `note_${randomUUID()}.json`;
      cleanups.push(() => s.deleteValue(key).catch(() => {}));
      await s.saveValue(key, { marker }, { profiles: ["r"] });
      expect(await s.loadValue(key)).toMatchObject({ profile: "r", value: { marker } });
      await s.flush();
      await s.loadValue(key);
      await s.loadValue(`note_${randomUUID()}.json`).catch(() => {});
      await s.deleteValue(key);

      expect(only(t, SPAN_NAMES.probe, (x) => x.attributes[A.profile] === "r").attributes[A.scheme]).toBe("redis");
      const loads = spans(t, SPAN_NAMES.load).map((x) => [x.attributes[A.profile] ?? "", x.attributes[A.outcome]]);
      expect(loads).toEqual([
        ["r", "fallback"],
        ["mem", "hit"],
        ["", "miss"],
      ]);
      expect(only(t, SPAN_NAMES.writeBack).attributes).toMatchObject({ [A.profile]: "mem", [A.from]: "r" });
      expect(only(t, SPAN_NAMES.delete).attributes[A.profiles]).toEqual(["mem", "r"]);

      const m = await t.collect();
      expect(histogramCount(m, { [A.operation]: "load", [A.profile]: "r", [A.outcome]: "fallback" })).toBe(1);
      expect(sum(m, METRICS.writeBacks, { [A.profile]: "mem", [A.from]: "r" })).toBe(1);
      const everything = JSON.stringify({
        spans: t.exporter.getFinishedSpans().map(view),
        metrics: [...m.values()].map((x) => ({ d: x.descriptor, p: x.dataPoints.map((p) => p.attributes) })),
      });
      for (const secret of ["s3cret", marker, key, root, "127.0.0.1", "6379"]) expect(everything).not.toContain(secret);
    });
  }
});
