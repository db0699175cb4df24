/**
 * The built CLI with a profile marked `read_only = "true"` and one whose
 * server is down (issue 15): `profiles` shows each state; put / rm / migrate
 * / repair refuse to write to the read-only profile when named, skip it
 * otherwise, and write to it with --force.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/servers.js";
import { type CliEnv, cli, cliEnv, ensureBuilt, json } from "./_helpers.js";

let t: CliEnv;
const run = (...args: string[]) => cli(args, { env: t.env });
const runIn = (input: string, ...args: string[]) => cli(args, { env: t.env, input });

beforeAll(async () => {
  await ensureBuilt();
  t = cliEnv();
  // Nothing listens on this port: the redis profile is down at start-up.
  const port = await freePort();
  t.writeSettings(`
[profiles.sqlite]
type = "sqlite"
datadir = "${t.dataDir}/sqlite"

[profiles.shipped]
type = "fs"
root = "${t.dataDir}/shipped"
read_only = "true"

[profiles.redis]
type = "redis"
endpoint = "tcp://127.0.0.1:${port}"
timeout_ms = "500"
`);
}, 120_000);

afterAll(() => t?.cleanup());

describe("read-only and down profiles in the CLI", () => {
  it("profiles shows ready, read-only (configured) and down", async () => {
    const r = await run("profiles", "--json");
    expect(r.code).toBe(0);
    const rows = json<{ profiles: { name: string; status: string; state?: { kind: string; reason?: string } }[] }>(
      r,
    ).profiles;
    const by = Object.fromEntries(rows.map((p) => [p.name, p]));
    expect(by.sqlite?.state).toEqual({ kind: "ready" });
    expect(by.shipped?.state).toEqual({ kind: "read-only", reason: "configured" });
    expect(by.redis?.status).toBe("down");
    expect(by.redis?.state?.kind).toBe("down");
    const table = await run("profiles");
    expect(table.stdout).toMatch(/read-only \(configured\)/);
    expect(table.stdout).toMatch(/down: redis: .*cannot reach redis/);
  }, 30_000);

  it("put, rm, migrate and repair refuse to write to a read_only profile they name, unless --force", async () => {
    const named = await runIn('{"a":1}', "put", "k.json", "-", "-p", "shipped");
    expect(named.code).toBe(2);
    expect(named.stderr).toMatch(/profile shipped is read-only \(read_only = "true" in its settings\).*--force/);
    const forced = await runIn('{"a":1}', "put", "k.json", "-", "-p", "shipped", "--force");
    expect(forced.code).toBe(0);
    expect((await run("get", "k.json", "-p", "shipped")).stdout).toContain('"a"');

    const rm = await run("rm", "k.json", "-p", "shipped");
    expect(rm.code).toBe(2);
    const migrate = await run("migrate", "--from", "sqlite", "--to", "shipped");
    expect(migrate.code).toBe(2);
    expect(migrate.stderr).toMatch(/read-only/);
    const repair = await run("repair", "--from", "sqlite", "--profiles", "shipped");
    expect(repair.code).toBe(2);
    expect(repair.stderr).toMatch(/read-only/);
    expect((await run("rm", "k.json", "-p", "shipped", "--force")).code).toBe(0);
  }, 60_000);

  it("put to every profile skips the read_only one, saying so, and names the down one as failed", async () => {
    const r = await runIn('{"b":2}', "put", "all.json", "-");
    expect(r.stderr).toMatch(/skipped read-only profile shipped/);
    // The down redis is not swallowed: the write is reported as partial, naming it.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed in 1 of 2 profiles \(redis: .*\); written to: sqlite/);
    expect((await run("get", "all.json", "-p", "sqlite")).code).toBe(0);
    expect((await run("get", "all.json", "-p", "shipped")).code).not.toBe(0);
  }, 30_000);
});
