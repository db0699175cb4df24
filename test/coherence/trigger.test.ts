/**
 * The change feed of a shared PostgreSQL table (issue 19): the trigger every
 * instance installs reports each row change, whoever made it, in the
 * writer's own transaction. Foreign INSERT, UPDATE, DELETE and TRUNCATE (as
 * `psql` makes them) drop an instance's local copies; a key too long for a
 * notification does not break the foreign writer and drops everything;
 * instances starting together install it once, without error; a role that may
 * not create it falls back to announcing its own saves, says so once, and
 * `doctor` names it with the fix. Real server: the machine's PostgreSQL.
 */
import { afterAll, describe, expect, it } from "vitest";
import { type DeviceStorage, silentLogger } from "../../src/index.js";
import { cli, cliEnv, ensureBuilt, json } from "../cli/_helpers.js";
import { psql } from "../helpers/servers.js";
import { captureLogger, localCopy, MACHINE_PG, openInstance, serversFor, uid, waitFor } from "./_gaps-util.js";

const ok = await serversFor({ postgres: true });
const open: DeviceStorage[] = [];
const tables: string[] = [];
const roles: string[] = [];
afterAll(async () => {
  await Promise.all(open.splice(0).map((s) => s.close().catch(() => {})));
  for (const t of tables) await psql(`DROP TABLE IF EXISTS ${t}`).catch(() => {});
  for (const r of roles) await psql(`DROP OWNED BY ${r}; DROP ROLE IF EXISTS ${r}`).catch(() => {});
});

async function table(): Promise<string> {
  const t = `tp_trig_${uid()}`;
  await psql(`CREATE TABLE ${t} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
  tables.push(t);
  return t;
}

const settings = (t: string, connection_string = MACHINE_PG) => ({
  profiles: { mem: { type: "memory" }, pg: { type: "postgresql", connection_string, table: t } },
  coherence: { type: "postgresql", connection_string, channel: `tp_trig_${uid()}`, heartbeat_ms: "100" },
});

/** B caches `key` (v1) in its memory tier. */
async function cached(b: DeviceStorage, key: string): Promise<void> {
  await b.loadValue(key);
  await b.flush();
  expect((await b.loadValue(key)).profile).toBe("mem");
}

describe.skipIf(!ok)("postgresql change feed (trigger)", () => {
  it("foreign INSERT, UPDATE, DELETE and TRUNCATE drop the local copies within the bound", async () => {
    const t = await table();
    const s = settings(t);
    const [a, b] = await Promise.all([
      openInstance(s.profiles, s.coherence, { logger: silentLogger }),
      openInstance(s.profiles, s.coherence, { logger: silentLogger }),
    ]);
    open.push(a, b);
    expect(b.coherenceStats()!.feeds).toEqual([
      expect.objectContaining({ profile: "pg", announcedBy: "server", via: `postgresql trigger on "${t}"` }),
    ]);
    const bound = b.coherenceStats()!.lease!.boundMs;
    const within = async (what: string, cond: () => Promise<boolean>) => {
      const t0 = performance.now();
      await waitFor(cond, what, bound);
      return performance.now() - t0;
    };
    const json = (v: unknown) => `'\\x${Buffer.from(JSON.stringify(v)).toString("hex")}'::bytea`;

    await a.saveValue("u.json", { v: 1 });
    await a.saveValue("d.json", { v: 1 });
    await cached(b, "u.json");
    await cached(b, "d.json");
    await psql(`UPDATE ${t} SET value = ${json({ v: "psql" })} WHERE key = 'u.json'`);
    await within("B serves the UPDATE", async () => (await b.loadValue<{ v: unknown }>("u.json")).value.v === "psql");
    await psql(`DELETE FROM ${t} WHERE key = 'd.json'`);
    await within("B sees the DELETE", async () => !(await b.exists("d.json")));

    // INSERT of a key B had cached as absent (a value B saved to memory only, never to the table).
    await b.saveValue("i.json", { v: "local only" }, { profiles: ["mem"] });
    await psql(`INSERT INTO ${t} (key, value) VALUES ('i.json', ${json({ v: "inserted" })})`);
    await within(
      "B serves the INSERT",
      async () => (await b.loadValue<{ v: unknown }>("i.json")).value.v === "inserted",
    );

    await cached(b, "u.json");
    await psql(`TRUNCATE ${t}`);
    await within("TRUNCATE empties B's copies", async () => (await localCopy(b, "mem", "u.json")) === undefined);
    expect(await b.exists("u.json")).toBe(false);
    expect(b.coherenceStats()!.gaps).toBe(0);
  });

  it("a foreign key too long for a notification still commits, and drops every local copy", async () => {
    const t = await table();
    const s = settings(t);
    const b = await openInstance(s.profiles, s.coherence, { logger: silentLogger });
    open.push(b);
    await b.saveValue("keep.json", { v: 1 });
    await cached(b, "keep.json");
    const long = "k".repeat(9000);
    await psql(`INSERT INTO ${t} (key, value) VALUES ('${long}', '\\x00')`);
    expect((await psql(`SELECT count(*) FROM ${t} WHERE key = '${long}'`)).trim()).toBe("1");
    await waitFor(async () => (await localCopy(b, "mem", "keep.json")) === undefined, "every copy dropped");
  });

  it("instances starting together install the trigger once, without error", async () => {
    const t = await table();
    const s = settings(t);
    const log = captureLogger();
    const all = await Promise.all(
      Array.from({ length: 4 }, () => openInstance(s.profiles, s.coherence, { logger: log })),
    );
    open.push(...all);
    for (const i of all) expect(i.coherenceStats()!.feeds[0]).toMatchObject({ announcedBy: "server" });
    expect(log.lines.filter((l) => l.includes("cannot install the change trigger"))).toEqual([]);
    expect(
      (await psql(`SELECT count(*) FROM pg_trigger WHERE tgrelid = '${t}'::regclass AND NOT tgisinternal`)).trim(),
    ).toBe("2");
  });

  it("a role that may not create the trigger notifies in its own statements, says so once; doctor names the fix", async () => {
    const t = await table();
    const role = `tp_trig_role_${uid()}`;
    roles.push(role);
    await psql(`CREATE ROLE ${role} LOGIN; GRANT SELECT, INSERT, UPDATE, DELETE ON ${t} TO ${role}`);
    const limited = MACHINE_PG.replace("postgres@", `${role}@`);
    const log = captureLogger();
    const lim = settings(t, limited);
    const a = await openInstance(lim.profiles, lim.coherence, { logger: log });
    open.push(a);
    const feeds = a.coherenceStats()!.feeds;
    expect(feeds, JSON.stringify(feeds)).toEqual([
      // PostgreSQL 15 refuses CREATE on schema public first; an older one, or another schema, says "must be owner".
      expect.objectContaining({
        profile: "pg",
        announcedBy: "statement",
        reason: expect.stringMatching(/permission denied|must be owner/),
      }),
    ]);
    expect(log.lines.filter((l) => l.includes("cannot install the change trigger"))).toHaveLength(1);
    // Its writes notify in their own statement (atomic, as a trigger would): another instance still drops its copy.
    const b = await openInstance(lim.profiles, lim.coherence, { logger: silentLogger });
    open.push(b);
    const heard = new Promise<void>((resolve) => {
      const stop = b.onRemoteChange((c) => {
        if (c.keys.includes("x.json")) {
          stop();
          resolve();
        }
      });
    });
    await a.saveValue("x.json", { v: 1 });
    // B caches only once the news of v1 was handled (its drop fences write-backs while it runs).
    await heard;
    await b.flush();
    await cached(b, "x.json");
    const sent = a.coherenceStats()!.sent;
    await a.saveValue("x.json", { v: 2 });
    // No bus message: the statement itself told the others (a writer killed right after cannot leave them unaware).
    expect(a.coherenceStats()!.sent).toBe(sent);
    await waitFor(async () => (await b.loadValue<{ v: number }>("x.json")).value.v === 2, "B sees v2");
    expect(
      (await psql(`SELECT count(*) FROM pg_trigger WHERE tgrelid = '${t}'::regclass AND NOT tgisinternal`)).trim(),
    ).toBe("0");

    // doctor: the profile fails its coherence check, with the reason and the fix.
    await ensureBuilt();
    const env = cliEnv();
    try {
      const toml = (name: string, o: Record<string, string>) =>
        `[${name}]\n${Object.entries(o)
          .map(([k, v]) => `${k} = "${v}"`)
          .join("\n")}\n`;
      env.writeSettings(
        [
          toml("profiles.mem", lim.profiles.mem),
          toml("profiles.pg", lim.profiles.pg),
          toml("coherence", lim.coherence),
        ].join("\n"),
      );
      const r = await cli(["doctor", "--json"], { env: env.env, timeoutMs: 60_000 });
      expect(r.code).toBe(1);
      const findings = json<{ findings: { subject: string; ok: boolean; summary: string; fix?: string }[] }>(
        r,
      ).findings;
      expect(findings.find((f) => f.subject === "coherence")).toMatchObject({ ok: true });
      const pg = findings.filter((f) => f.subject === "pg");
      expect(pg).toEqual([
        expect.objectContaining({ ok: true }),
        expect.objectContaining({
          ok: false,
          summary: expect.stringContaining("writes by other programs"),
          fix: expect.stringContaining("terraphim_changes"),
        }),
      ]);
      expect(`${r.stdout}${r.stderr}`).not.toContain(`${role}@`); // no connection string echoed
    } finally {
      env.cleanup();
    }

    // An instance that may install it starts: from then on the limited ones hear every change too (they
    // listen on the trigger's channel whatever their own install said), a psql UPDATE included.
    const owner = settings(t);
    const c = await openInstance(
      owner.profiles,
      { ...owner.coherence, channel: lim.coherence.channel },
      {
        logger: silentLogger,
      },
    );
    open.push(c);
    expect(
      (await psql(`SELECT count(*) FROM pg_trigger WHERE tgrelid = '${t}'::regclass AND NOT tgisinternal`)).trim(),
    ).toBe("2");
    await cached(b, "x.json");
    const hex = Buffer.from(JSON.stringify({ v: "psql" })).toString("hex");
    await psql(`UPDATE ${t} SET value = '\\x${hex}'::bytea WHERE key = 'x.json'`);
    await waitFor(
      async () => (await b.loadValue<{ v: unknown }>("x.json")).value.v === "psql",
      "the limited instance hears the trigger",
      b.coherenceStats()!.lease!.boundMs,
    );
  }, 90_000);
});
