// biome-ignore-all lint/suspicious/noTemplateCurlyInString: settings values use shell-style ${VAR} references
/**
 * The coherence bus in one process, on real servers: the `[coherence]`
 * settings (env overrides, `${VAR}` expansion, errors with their path, checked
 * before anything opens), which profiles are shared, what a message carries
 * (keys, never values; deletes too; PostgreSQL payloads split under 8000
 * bytes), that no credential of the bus reaches a log line or an error, and
 * that `onRemoteChange` reports other instances only.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import {
  type BusEvent,
  checkCoherence,
  DeviceStorage,
  PartialWriteError,
  parseSettings,
  type RemoteChange,
  SettingsError,
  silentLogger,
  watchCoherenceBus,
} from "../../src/index.js";
import { freePort, startRedis } from "../helpers/servers.js";
import {
  captureLogger,
  deleteRedisKeys,
  MACHINE_PG,
  MACHINE_REDIS,
  openInstance,
  serversFor,
  sleep,
  uid,
  waitFor,
} from "./_gaps-util.js";

const logger = silentLogger;
const ok = await serversFor({ ownRedis: true, redis: true, postgres: true });
const dirs: string[] = [];
const open: DeviceStorage[] = [];
afterAll(async () => {
  await deleteRedisKeys("tp-bus-*");
  await Promise.all(open.splice(0).map((s) => s.close().catch(() => {})));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-bus-"));
  dirs.push(d);
  return d;
};
const redisProfile = () => ({ type: "redis", endpoint: MACHINE_REDIS, root: `/tp-bus-${uid()}/` });
const settingsError = (fn: () => unknown): SettingsError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsError);
    expect((err as SettingsError).code).toBe("E_SETTINGS");
    return err as SettingsError;
  }
  throw new Error("expected a SettingsError");
};

describe("[coherence] settings", () => {
  const toml = (table: string) => `[profiles.mem]\ntype = "memory"\n${table}`;

  it("reads the table, expands ${VAR}, takes TERRAPHIM_COHERENCE_* overrides; none of it: no bus", () => {
    const table =
      '[coherence]\ntype = "redis"\nendpoint = "${BUS_HOST:-tcp://127.0.0.1:6379}"\nchannel = "${APP}-bus"\n';
    expect(parseSettings(toml(table), { env: { APP: "shop" } }).coherence).toEqual({
      type: "redis",
      endpoint: "tcp://127.0.0.1:6379",
      channel: "shop-bus",
    });
    const env = { APP: "shop", BUS_HOST: "tcp://10.1.2.3:6380", TERRAPHIM_COHERENCE_CHANNEL: "override" };
    expect(parseSettings(toml(table), { env }).coherence).toEqual({
      type: "redis",
      endpoint: "tcp://10.1.2.3:6380",
      channel: "override",
    });
    // Overrides alone make the table (a container configured by its environment).
    const onlyEnv = {
      TERRAPHIM_COHERENCE_TYPE: "postgresql",
      TERRAPHIM_COHERENCE_CONNECTION_STRING: "postgresql://app@db:5432/app",
    };
    expect(parseSettings(toml(""), { env: onlyEnv }).coherence).toEqual({
      type: "postgresql",
      connection_string: "postgresql://app@db:5432/app",
    });
    expect(parseSettings(toml(""), { env: {} }).coherence).toBeUndefined();
    expect(checkCoherence({ type: "redis", heartbeat_ms: "50" })).toMatchObject({
      type: "redis",
      channel: "terraphim-persistence",
      heartbeatMs: 50,
    });
  });

  it("bad values are SettingsErrors naming their path", () => {
    const parse =
      (table: string, env: Record<string, string> = {}) =>
      () =>
        parseSettings(toml(`[coherence]\n${table}`), { env });
    expect(settingsError(parse('type = "kafka"')).message).toContain(
      'coherence.type: expected "redis" or "postgresql", got "kafka"',
    );
    expect(settingsError(parse('type = "redis"', { TERRAPHIM_COHERENCE_TYPE: "nats" })).message).toContain(
      'coherence.type: expected "redis" or "postgresql", got "nats"',
    );
    expect(settingsError(parse('type = "redis"\ncolour = "blue"')).message).toContain(
      "coherence.colour: unknown option for a redis bus",
    );
    expect(settingsError(parse('type = "postgresql"\nendpoint = "tcp://127.0.0.1:6379"')).message).toContain(
      "coherence.endpoint: unknown option for a postgresql bus",
    );
    expect(settingsError(parse('type = "postgresql"')).message).toContain(
      "coherence.connection_string: required for a postgresql bus",
    );
    expect(settingsError(parse('type = "redis"\nheartbeat_ms = "10"')).message).toContain("coherence.heartbeat_ms:");
    expect(settingsError(parse('type = "redis"\nendpoint = "${NOPE_UNSET}"')).message).toContain(
      "coherence.endpoint: environment variable NOPE_UNSET is not set",
    );
    expect(settingsError(parse("port = 6379")).message).toContain("coherence.type: required");
    const long = "x".repeat(64);
    expect(
      settingsError(() => checkCoherence({ type: "postgresql", connection_string: MACHINE_PG, channel: long })).message,
    ).toContain("coherence.channel: expected at most 63 bytes");
  });

  it("DeviceStorage.fromSettings with a bad table throws before opening any profile", async () => {
    const datadir = join(tempDir(), "not-yet");
    const profiles = { sq: { type: "sqlite", datadir, table: "kv" } };
    const bad: Record<string, string>[] = [
      { type: "kafka" },
      { type: "postgresql" },
      { type: "redis", colour: "blue" },
    ];
    for (const coherence of bad) {
      const err = await DeviceStorage.fromSettings({ profiles, coherence }, { logger }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SettingsError);
      expect(existsSync(datadir)).toBe(false);
    }
    // The control: the same profiles without the table open (and create the folder).
    const s = await DeviceStorage.fromSettings({ profiles }, { logger });
    open.push(s);
    expect(existsSync(datadir)).toBe(true);
    expect(s.coherenceStats()).toBeUndefined();
  });
});

describe.skipIf(!ok)("coherence bus, one process", () => {
  it("shared: by scheme, overridden by the profile option, shown in stats()", async () => {
    const s = await DeviceStorage.fromSettings(
      {
        profiles: {
          mem: { type: "memory" },
          sq: { type: "sqlite", datadir: tempDir(), table: "kv" },
          r: redisProfile(),
          rLocal: { ...redisProfile(), shared: "false" },
          sqShared: { type: "sqlite", datadir: tempDir(), table: "kv", shared: "true" },
          bad: { type: "memory", shared: "maybe" },
        },
      },
      { logger },
    );
    open.push(s);
    const shared = Object.fromEntries(Object.entries(s.stats()).map(([name, st]) => [name, st.shared]));
    expect(shared).toEqual({ mem: false, sq: false, r: true, rLocal: false, sqShared: true });
    expect(s.profileErrors.get("bad")?.message).toContain(
      'profiles.bad.shared: expected "true" or "false", got "maybe"',
    );
  });

  it("messages carry keys, never values; a delete is announced; an idle instance sends nothing (no heartbeats)", async () => {
    const coherence = { type: "redis", endpoint: MACHINE_REDIS, channel: `bus-keys-${uid()}`, heartbeat_ms: "100" };
    const raw: string[] = [];
    const sub = new Redis(6379, "127.0.0.1");
    const events: BusEvent[] = [];
    const stop = await watchCoherenceBus(coherence, (e) => events.push(e));
    try {
      await sub.subscribe(coherence.channel);
      sub.on("message", (_ch: string, payload: string) => raw.push(payload));
      await waitFor(() => events.some((e) => e.kind === "up"), "the watcher subscribed");
      // A shared profile no server announces (a memory profile marked shared): this instance announces its changes.
      const a = await openInstance({ mem: { type: "memory" }, shm: { type: "memory", shared: "true" } }, coherence, {
        logger,
      });
      open.push(a);
      const marker = `value-marker-${uid()}`;
      await a.saveValue("old.json", { note: marker });
      await a.saveValue("doc.json", { note: marker, n: 424242 });
      await a.deleteValue("old.json");
      const messages = () => events.flatMap((e) => (e.kind === "message" ? [e.message] : []));
      await waitFor(() => messages().some((m) => m.op === "delete"), "the delete's message");
      const origin = a.coherenceStats()!.origin;
      // Each save resolved once its message was taken: in order, one each.
      expect(messages().map((m) => [m.op, ...m.keys])).toEqual([
        ["save", "old.json"],
        ["save", "doc.json"],
        ["delete", "old.json"],
      ]);
      expect(messages().filter((m) => m.op === "delete")).toEqual([
        { origin, seq: expect.any(Number), op: "delete", keys: ["old.json"] },
      ]);
      expect(events.filter((e) => e.kind === "malformed")).toEqual([]);
      // Idle for ten ping periods: liveness is a ping on each instance's own connection, never a message to all.
      const before = raw.length;
      await sleep(1000);
      expect(raw.length).toBe(before);
      expect(a.coherenceStats()!.lease).toMatchObject({ trusted: true, boundMs: 300 });
      for (const payload of raw) {
        expect(payload).not.toContain(marker);
        expect(payload).not.toContain("424242");
        expect(payload).not.toContain('"hb"');
        const body = JSON.parse(payload) as Record<string, unknown>;
        for (const field of Object.keys(body)) expect(["v", "o", "s", "op", "k", "p"]).toContain(field);
      }
    } finally {
      await stop();
      sub.disconnect();
    }
  });

  it("postgresql: 300 long keys saved in one turn go out as NOTIFY payloads under 8000 bytes", async () => {
    const channel = `tpsplit_${uid()}`;
    const listener = new pg.Client({ connectionString: MACHINE_PG });
    const payloads: string[] = [];
    await listener.connect();
    try {
      await listener.query(`LISTEN "${channel}"`);
      listener.on("notification", (n) => payloads.push(n.payload ?? ""));
      // A memory profile marked shared: every save reaches it in the same turn, so all 300 keys meet in one batch.
      const s = await openInstance(
        { mem: { type: "memory" }, shm: { type: "memory", shared: "true" } },
        { type: "postgresql", connection_string: MACHINE_PG, channel },
        { logger },
      );
      open.push(s);
      const keys = Array.from({ length: 300 }, (_, i) => `split_${String(i).padStart(3, "0")}_${"k".repeat(200)}.json`);
      await Promise.all(keys.map((k, i) => s.saveValue(k, i)));
      await s.flush();
      await waitFor(
        () => new Set(payloads.flatMap((p) => JSON.parse(p).k ?? [])).size === 300,
        "all 300 keys notified",
      );
      const sizes = payloads.map((p) => Buffer.byteLength(p));
      for (const size of sizes) expect(size).toBeLessThan(8000);
      // 300 keys of ~215 bytes cannot fit fewer than 9 payloads; batching packs them close to the limit.
      expect(payloads.length).toBeGreaterThanOrEqual(9);
      expect(payloads.length).toBeLessThan(20);
      expect(Math.max(...sizes)).toBeGreaterThan(7000);
      expect(s.coherenceStats()!.sent).toBe(payloads.length);
    } finally {
      await listener.end();
    }
  });

  it("onRemoteChange reports other instances' changes only: from the server (redis tracking) and from the bus", async () => {
    const coherence = { type: "redis", endpoint: MACHINE_REDIS, channel: `bus-remote-${uid()}` };
    const dir = tempDir();
    // r: its server reports every change; f: a shared folder no server announces (the instances do, on the bus).
    const profiles = { mem: { type: "memory" }, r: redisProfile(), f: { type: "fs", root: dir, shared: "true" } };
    const a = await openInstance(profiles, coherence, { logger });
    const b = await openInstance(profiles, coherence, { logger });
    open.push(a, b);
    const seenA: RemoteChange[] = [];
    const seenB: RemoteChange[] = [];
    a.onRemoteChange((c) => seenA.push(c));
    const stopB = b.onRemoteChange((c) => seenB.push(c));
    await a.saveValue("x.json", 1);
    await b.saveValue("y.json", 2);
    await a.deleteValue("x.json");
    await waitFor(() => seenB.length === 4 && seenA.length === 2, "both changes of A at B, B's at A");
    const originA = a.coherenceStats()!.origin;
    const originB = b.coherenceStats()!.origin;
    const server = { origin: "server r", source: "server", op: "change" };
    expect(seenB).toEqual(
      expect.arrayContaining([
        { ...server, keys: ["x.json"] },
        { op: "save", keys: ["x.json"], origin: originA, source: "bus" },
        { op: "delete", keys: ["x.json"], origin: originA, source: "bus" },
      ]),
    );
    expect(seenB.filter((c) => c.source === "server")).toEqual([
      { ...server, keys: ["x.json"] },
      { ...server, keys: ["x.json"] },
    ]);
    expect(seenA).toEqual(
      expect.arrayContaining([
        { ...server, keys: ["y.json"] },
        { op: "save", keys: ["y.json"], origin: originB, source: "bus" },
      ]),
    );
    // The server reports A's own writes to A too: each was expected, so none reached A's listeners.
    expect(a.coherenceStats()!.feeds).toEqual([
      expect.objectContaining({ profile: "r", announcedBy: "server", via: "redis tracking", ownReports: 2 }),
    ]);
    expect(seenA.filter((c) => c.keys.includes("x.json"))).toEqual([]);
    stopB();
    await a.saveValue("z.json", 3);
    await b.saveValue("w.json", 4);
    await waitFor(() => seenA.length === 4, "B's second change at A");
    expect(seenB).toHaveLength(4);
  });

  it("no bus credential reaches a log line or an error", async () => {
    const secrets = ["Wr0ngS3cret-abc", "UrlS3cret-def", "PgS3cret-ghi", "BadUrlS3cret-jkl"];
    const own = await startRedis({ args: ["--requirepass", "the-right-one"] });
    const log = captureLogger();
    const errors: unknown[] = [];
    try {
      // A shared profile no server announces: every save must be announced, and the bus refuses (or is not there).
      const profiles = { mem: { type: "memory" }, shm: { type: "memory", shared: "true" } };
      const redisBus = {
        type: "redis",
        endpoint: `tcp://bususer:${secrets[1]}@127.0.0.1:${own.port}`,
        password: secrets[0]!,
        channel: `bus-secret-${uid()}`,
      };
      const pgBus = {
        type: "postgresql",
        connection_string: `postgresql://postgres:${secrets[2]}@127.0.0.1:${await freePort()}/test`,
        channel: `tpsecret_${uid()}`,
      };
      // Neither bus lets the listener in (wrong password, nothing listening): each waits its start-up bound.
      const [a, b] = await Promise.all([
        DeviceStorage.fromSettings({ profiles, coherence: redisBus }, { logger: log }),
        DeviceStorage.fromSettings({ profiles, coherence: pgBus }, { logger: log }),
      ]);
      open.push(a, b);
      for (const s of [a, b]) {
        // The save waits for its announcement up to the bound, then names it.
        errors.push(await s.saveValue("k.json", 1).catch((e: unknown) => e));
        await waitFor(() => s.coherenceStats()!.publishFailures > 0, "a failed publish");
        log.lines.push(JSON.stringify(s.coherenceStats()));
      }
      errors.push(
        await DeviceStorage.fromSettings(
          {
            profiles,
            coherence: { type: "postgresql", connection_string: `postgresql://u:${secrets[3]}@db:notaport/x` },
          },
          { logger: log },
        ).catch((e: unknown) => e),
      );
      expect(errors[0]).toBeInstanceOf(PartialWriteError);
      expect(errors[1]).toBeInstanceOf(PartialWriteError);
      expect(errors[2]).toBeInstanceOf(SettingsError);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await own.stop();
    }
    // The test saw the failures it is about.
    expect(log.lines.some((l) => l.includes("publish failed"))).toBe(true);
    expect(log.lines.some((l) => l.includes("notify failed"))).toBe(true);
    const texts = [...log.lines];
    for (const err of errors as PartialWriteError[]) {
      texts.push(`${err.message} ${err.stack} ${String((err.cause as Error | undefined)?.message)}`);
      for (const o of err.outcomes ?? []) if (!o.ok) texts.push(`${o.error.message} ${o.error.stack}`);
    }
    for (const secret of secrets) for (const t of texts) expect(t).not.toContain(secret);
  });
});
