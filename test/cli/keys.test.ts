/**
 * The built CLI on memory + sqlite + redb + s3 (s3rver): put / get / ls / rm /
 * stat round trips (parsed --json), and usage errors exiting 2.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type S3rverInstance, s3Options, startS3rver } from "../helpers/servers.js";
import { type CliEnv, cli, cliEnv, ensureBuilt, json, s3Profile } from "./_helpers.js";

let s3: S3rverInstance;
let t: CliEnv;
const run = (...args: string[]) => cli(args, { env: t.env });
const runIn = (input: string, ...args: string[]) => cli(args, { env: t.env, input });

beforeAll(async () => {
  [s3] = await Promise.all([startS3rver(), ensureBuilt()]);
  t = cliEnv();
  t.writeSettings(`
[profiles.memory]
type = "memory"

[profiles.sqlite]
type = "sqlite"
datadir = "${t.dataDir}/sqlite"

[profiles.redb]
type = "redb"
datadir = "${t.dataDir}/store.redb"
table = "terraphim"

${s3Profile("s3", s3Options(s3))}
`);
}, 120_000);

afterAll(async () => {
  await s3?.stop();
  t?.cleanup();
});

describe("put / get / stat / ls / rm", () => {
  it("round-trips a value through every profile", async () => {
    const value = { id: "a", title: "Hello", tags: ["x", "y"], n: 42 };
    const put = await runIn(JSON.stringify(value), "put", "document_a.json", "--json");
    expect(put.code, put.stderr).toBe(0);
    const saved = json<{ key: string; profiles: string[] }>(put);
    expect(saved.key).toBe("document_a.json");
    expect(saved.profiles.sort()).toEqual(["memory", "redb", "s3", "sqlite"]);

    // Without --profile: a tiered load. A new process has an empty memory profile, so a slower one serves it.
    const get = await run("get", "document_a.json", "--json");
    expect(get.code, get.stderr).toBe(0);
    const got = json<{ value: unknown; profile: string }>(get);
    expect(got.value).toEqual(value);
    expect(["sqlite", "redb", "s3"]).toContain(got.profile);

    // Plain output is the JSON value itself.
    const plain = await run("get", "document_a.json");
    expect(JSON.parse(plain.stdout)).toEqual(value);

    for (const profile of ["sqlite", "redb", "s3"]) {
      const one = await run("get", "document_a.json", "--profile", profile, "--json");
      expect(one.code, one.stderr).toBe(0);
      expect(json(one)).toMatchObject({ profile, value, compressed: false });
    }

    const stat = await run("stat", "document_a.json", "--json");
    expect(stat.code, stat.stderr).toBe(0);
    const rows = json<{
      profiles: { profile: string; present: boolean; storedBytes?: number; compressed?: boolean }[];
    }>(stat).profiles;
    const byName = Object.fromEntries(rows.map((r) => [r.profile, r]));
    expect(byName.memory?.present).toBe(false); // a fresh process: the in-memory profile is empty
    for (const p of ["sqlite", "redb", "s3"]) {
      expect(byName[p]).toMatchObject({ present: true, storedBytes: JSON.stringify(value).length, compressed: false });
    }

    const rm = await run("rm", "document_a.json", "--json");
    expect(rm.code, rm.stderr).toBe(0);
    expect(json(rm)).toMatchObject({ found: true });
    const gone = await run("get", "document_a.json");
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/not found/i);
    const statGone = await run("stat", "document_a.json", "--json");
    expect(statGone.code).toBe(1);
    expect(json<{ profiles: { present: boolean }[] }>(statGone).profiles.every((r) => !r.present)).toBe(true);
    const rmAgain = await run("rm", "document_a.json");
    expect(rmAgain.code).toBe(1);
    expect((await run("rm", "document_a.json", "--force")).code).toBe(0);
  });

  it("writes and deletes one profile with --profile, and reads a file argument", async () => {
    const file = join(t.dataDir, "value.json");
    writeFileSync(file, '{ "only": "s3" }');
    expect((await run("put", "only_s3.json", file, "--profile", "s3")).code).toBe(0);
    const stat = json<{ profiles: { profile: string; present: boolean }[] }>(
      await run("stat", "only_s3.json", "--json"),
    );
    expect(stat.profiles.filter((r) => r.present).map((r) => r.profile)).toEqual(["s3"]);
    // A tiered load finds it in s3 and writes it back to the fastest profile.
    const get = json<{ profile: string; writeBack: boolean }>(await run("get", "only_s3.json", "--json"));
    expect(get).toMatchObject({ profile: "s3", writeBack: true });
    expect((await run("get", "only_s3.json", "--profile", "sqlite")).code).toBe(1);
    expect((await run("rm", "only_s3.json", "--profile", "s3")).code).toBe(0);
    expect((await run("get", "only_s3.json", "--profile", "s3")).code).toBe(1);
  });

  it("stores a large value compressed and prints it decompressed", async () => {
    const big = { id: "big", body: "terraphim ".repeat(150_000) }; // 1.5 MB of JSON
    expect((await runIn(JSON.stringify(big), "put", "big.json", "--profile", "sqlite")).code).toBe(0);
    const stat = json<{
      profiles: { profile: string; compressed?: boolean; storedBytes?: number; jsonBytes?: number }[];
    }>(await run("stat", "big.json", "--profile", "sqlite", "--json"));
    expect(stat.profiles[0]).toMatchObject({
      profile: "sqlite",
      compressed: true,
      jsonBytes: JSON.stringify(big).length,
    });
    expect(stat.profiles[0]?.storedBytes).toBeLessThan(100_000);
    const get = await run("get", "big.json", "--profile", "sqlite");
    expect(JSON.parse(get.stdout)).toEqual(big);
    await run("rm", "big.json");
  });

  it("refuses invalid JSON without writing", async () => {
    const r = await runIn("{ not json", "put", "bad.json");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not valid JSON/);
    expect((await run("get", "bad.json")).code).toBe(1);
  });

  it("lists keys where the backend can, and says which profiles cannot", async () => {
    for (const k of ["ls/a.json", "ls/b.json", "other.json"]) {
      expect((await runIn(`{"k":"${k}"}`, "put", k)).code).toBe(0);
    }
    const all = json<{
      keys: { key: string; profiles: string[] }[];
      profiles: { name: string; listable: boolean; count?: number }[];
    }>(await run("ls", "ls/", "--json"));
    expect(all.keys.map((k) => k.key)).toEqual(["ls/a.json", "ls/b.json"]);
    expect(all.keys[0]?.profiles.sort()).toEqual(["s3", "sqlite"]);
    const redb = all.profiles.find((p) => p.name === "redb");
    expect(redb).toMatchObject({ listable: false });
    expect(redb?.count).toBeUndefined(); // not "0 keys": unknown

    const text = await run("ls");
    expect(text.stdout.trim().split("\n")).toEqual(expect.arrayContaining(["ls/a.json", "ls/b.json", "other.json"]));
    expect(text.stderr).toMatch(/redb \(redb\) cannot list keys/);

    const s3Only = await run("ls", "ls/", "--profile", "s3");
    expect(s3Only.stdout.trim().split("\n")).toEqual(["ls/a.json", "ls/b.json"]);
    const noList = await run("ls", "--profile", "redb");
    expect(noList.code).toBe(1);
    expect(noList.stderr).toMatch(/cannot list its keys/);
    for (const k of ["ls/a.json", "ls/b.json", "other.json"]) await run("rm", k);
    expect((await run("ls", "ls/")).stdout).toBe("");
  });

  it("prints the profiles in speed order with their capabilities", async () => {
    const r = await run("profiles", "--json");
    expect(r.code, r.stderr).toBe(0);
    const rows = json<{ profiles: { name: string; rank: number; status: string; capabilities: { list: boolean } }[] }>(
      r,
    ).profiles;
    expect(rows.map((p) => p.name).sort()).toEqual(["memory", "redb", "s3", "sqlite"]);
    expect(rows.map((p) => p.rank)).toEqual([1, 2, 3, 4]);
    expect(rows.every((p) => p.status === "ok")).toBe(true);
    expect(rows.find((p) => p.name === "redb")?.capabilities.list).toBe(false);
    const text = await run("profiles");
    expect(text.stdout).toMatch(/ok \(fastest\)/);
  });
});

describe("usage errors exit 2", () => {
  it.each([
    [[]],
    [["nope"]],
    [["get"]],
    [["get", "k", "--bogus"]],
    [["get", "/absolute"]],
    [["get", "k", "--profile", "nope"]],
    [["migrate", "--from", "sqlite"]],
    [["migrate", "--from", "sqlite", "--to", "sqlite"]],
    [["migrate", "--from", "sqlite", "--to", "s3", "--concurrency", "zero"]],
    [["verify", "--profiles", "sqlite"]],
    [["bench", "--sizes", "huge"]],
    [["profiles", "--settings", "/nonexistent/settings/folder"]],
  ])("%j", async (args) => {
    const r = await run(...args);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(2);
    expect(r.stderr).not.toBe("");
  });

  it("help and version exit 0", async () => {
    expect((await run("--help")).code).toBe(0);
    expect((await run("get", "--help")).code).toBe(0);
    expect((await run("--version")).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
