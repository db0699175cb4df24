/**
 * The CLI on a coherence bus (issue 13): `put`, `rm` and `repair` announce
 * their changes, so a running application drops its local copy; `watch`
 * prints the traffic (keys, origin, operation; never a value); a settings
 * file with a bad `[coherence]` table is refused with the path of the value.
 * Real servers: the machine's Redis and PostgreSQL.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeviceStorage, silentLogger } from "../../src/index.js";
import { deleteRedisKeys } from "../coherence/_gaps-util.js";
import { POSTGRES } from "../helpers/servers.js";
import { type CliEnv, cli, cliEnv, ensureBuilt, json } from "./_helpers.js";

const PG = `postgresql://${POSTGRES.user}@${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`;

interface Setup {
  t: CliEnv;
  app: DeviceStorage;
  settings: { profiles: Record<string, Record<string, string>>; coherence: Record<string, string> };
}

async function setup(bus: "redis" | "postgresql"): Promise<Setup> {
  const t = cliEnv();
  const id = randomUUID().slice(0, 8);
  const coherence: Record<string, string> =
    bus === "redis"
      ? { type: "redis", endpoint: "tcp://127.0.0.1:6379", channel: `cli-${id}` }
      : { type: "postgresql", connection_string: PG, channel: `cli-${id}` };
  const profiles = {
    mem: { type: "memory" },
    redis: { type: "redis", endpoint: "tcp://127.0.0.1:6379", root: `/cli-coherence-${id}/` },
  };
  const table = (name: string, o: Record<string, string>) =>
    `[${name}]\n${Object.entries(o)
      .map(([k, v]) => `${k} = "${v}"`)
      .join("\n")}\n`;
  t.writeSettings(
    [table("profiles.mem", profiles.mem), table("profiles.redis", profiles.redis), table("coherence", coherence)].join(
      "\n",
    ),
  );
  // The running application: a memory tier over the same shared redis, listening on the bus.
  const app = await DeviceStorage.fromSettings({ profiles, coherence }, { logger: silentLogger });
  return { t, app, settings: { profiles, coherence } };
}

/** Polls until `check` holds (the bus delivers within milliseconds; 5 s is the give-up point). */
async function eventually(check: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > 5000) throw new Error("condition not met within 5 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}

beforeAll(ensureBuilt, 180_000);

describe.each(["redis", "postgresql"] as const)("CLI on a %s coherence bus", (bus) => {
  let s: Setup;
  const run = (...args: string[]) => cli(args, { env: s.t.env, timeoutMs: 30_000 });

  beforeAll(async () => {
    s = await setup(bus);
  }, 30_000);
  afterAll(async () => {
    await s?.app.close();
    await deleteRedisKeys("cli-coherence-*");
    s?.t.cleanup();
  });

  it("profiles shows which profiles are shared and which local, the staleness bound, the lease and who announces", async () => {
    const r = await run("profiles", "--json");
    expect(r.code, r.stderr).toBe(0);
    const out = json<{
      profiles: { name: string; shared: boolean }[];
      coherence: {
        boundMs: number;
        trusted: boolean;
        listeners: { lastProofAgoMs: number | null }[];
        feeds: unknown[];
      };
    }>(r);
    expect(Object.fromEntries(out.profiles.map((p) => [p.name, p.shared]))).toEqual({ mem: false, redis: true });
    expect(out.coherence).toMatchObject({ boundMs: 1500, trusted: true });
    for (const l of out.coherence.listeners) expect(l.lastProofAgoMs).toEqual(expect.any(Number));
    expect(out.coherence.feeds).toEqual([
      expect.objectContaining({ profile: "redis", announcedBy: "server", via: "redis tracking" }),
    ]);
    const text = await run("profiles");
    expect(text.stdout).toMatch(/mem .*local/);
    expect(text.stdout).toMatch(/redis .*shared/);
    // One word per concept: the capability to be opened by several processes is not "shared".
    expect(text.stdout).toMatch(/redis .*multi-process.*shared/);
    expect(text.stdout).toContain("staleness bound 1500 ms");
    expect(text.stdout).toMatch(/listening: redis 127\.0\.0\.1:6379 \(connected, last proof \d+ ms ago\)/);
    expect(text.stdout).toContain("changes of redis: announced by its server (redis tracking)");
  }, 30_000);

  it("put and rm reach a running application, and watch prints keys and operations but no value", async () => {
    const key = "document_cli.json";
    await s.app.saveValue(key, { v: 1 });
    await s.app.loadValue(key);
    expect((await s.app.loadValue(key)).profile).toBe("mem"); // cached locally
    const lines: string[] = [];
    // Two changes, each heard twice: the server's report (redis tracking) and the CLI's own message on the bus.
    const watching = cli(["watch", "--json", "--count", "4", "--timeout", "20"], {
      env: s.t.env,
      timeoutMs: 30_000,
      onSpawn: (child) => child.stdout?.on("data", (d: Buffer) => lines.push(String(d))),
    });
    // Give watch time to subscribe before the changes are made.
    await new Promise((r) => setTimeout(r, 1500));

    const put = await cli(["put", key, "-", "--json"], { env: s.t.env, input: '{"v":2}' });
    expect(put.code, put.stderr).toBe(0);
    expect(json(put)).toMatchObject({ key, profiles: ["mem", "redis"] });
    // The application's memory copy ({v:1}) is dropped: its next load finds v2 in redis.
    await eventually(async () => (await s.app.loadValue<{ v: number }>(key)).value.v === 2);

    const rm = await run("rm", key);
    expect(rm.code, rm.stderr).toBe(0);
    await eventually(() => s.app.exists(key).then((e) => !e));

    const w = await watching;
    expect(w.code, w.stderr).toBe(0);
    const printed = w.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { source: string; op: string; keys: string[]; origin: string; key: string });
    const messages = printed.filter((m) => m.source === "bus");
    expect(messages.map((m) => m.op)).toEqual(["save", "delete"]);
    for (const m of messages) expect(m.keys).toEqual([key]);
    expect(messages[0]!.origin).not.toBe(s.app.coherenceStats()!.origin);
    const reports = printed.filter((m) => m.source === "server");
    expect(reports).toEqual([
      expect.objectContaining({ kind: "report", profile: "redis", key }),
      expect.objectContaining({ kind: "report", profile: "redis", key }),
    ]);
    expect(w.stdout).not.toContain('"v"'); // keys only: the value {"v":2} never travels on the bus
    expect(s.app.coherenceStats()!.received).toBeGreaterThanOrEqual(2);
  }, 60_000);
});

describe("CLI settings with a bad [coherence] table", () => {
  it("names the bad value and exits 1 before touching any profile", async () => {
    const t = cliEnv();
    try {
      t.writeSettings('[profiles.mem]\ntype = "memory"\n\n[coherence]\ntype = "kafka"\n');
      const r = await cli(["profiles"], { env: t.env });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('coherence.type: expected "redis" or "postgresql", got "kafka"');
      const w = await cli(["watch", "--count", "1"], { env: t.env });
      expect(w.code).not.toBe(0);
      expect(w.stderr).toContain("coherence.type");
    } finally {
      t.cleanup();
    }
  });

  it("watch without a [coherence] table is a usage error (exit 2)", async () => {
    const t = cliEnv();
    try {
      t.writeSettings('[profiles.mem]\ntype = "memory"\n');
      const r = await cli(["watch", "--count", "1"], { env: t.env });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("no [coherence] table");
    } finally {
      t.cleanup();
    }
  });

  it("a password in the coherence endpoint never shows in CLI output", async () => {
    const t = cliEnv();
    try {
      t.writeSettings(
        '[profiles.mem]\ntype = "memory"\n\n[coherence]\ntype = "postgresql"\nconnection_string = "postgresql://postgres:Sup3rSecretPw@127.0.0.1:1/test"\n',
      );
      const r = await cli(["watch", "--timeout", "1.5"], { env: t.env });
      expect(`${r.stdout}${r.stderr}`).not.toContain("Sup3rSecretPw");
      expect(r.stderr).toContain("connection lost");
      const p = await cli(["profiles", "--json"], { env: t.env });
      expect(`${p.stdout}${p.stderr}`).not.toContain("Sup3rSecretPw");
    } finally {
      t.cleanup();
    }
  });
});
