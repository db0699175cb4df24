/**
 * The built CLI honours values' TTL as the library does: `get --profile` and
 * `stat` do not show an expired value, and `migrate` and `repair` copy a
 * value with its expiry (an expired one counts as absent). Values are saved
 * with the library on a sqlite and an fs profile, then the CLI runs on the
 * same settings.
 */
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeviceStorage, silentLogger } from "../../src/index.js";
import { type CliEnv, cli, cliEnv, ensureBuilt, json } from "./_helpers.js";

let t: CliEnv;
let profiles: Record<string, Record<string, string>>;
const run = (...args: string[]) => cli(args, { env: t.env });

beforeAll(ensureBuilt, 120_000);

/** A fresh settings folder with a sqlite profile `a` and an fs profile `b`, each in its own temp folder. */
function setup(): void {
  t = cliEnv();
  profiles = {
    a: { type: "sqlite", datadir: join(t.dataDir, "a") },
    b: { type: "fs", root: join(t.dataDir, "b") },
  };
  t.writeSettings(
    Object.entries(profiles)
      .map(
        ([name, o]) =>
          `[profiles.${name}]\n${Object.entries(o)
            .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
            .join("\n")}\n`,
      )
      .join("\n"),
  );
}

/** Runs `fn` on the library's storage over the same profiles (closed before the CLI runs). */
async function withLibrary<T>(fn: (s: DeviceStorage) => Promise<T>): Promise<T> {
  const storage = await DeviceStorage.fromSettings({ profiles }, { logger: silentLogger });
  try {
    return await fn(storage);
  } finally {
    await storage.close();
  }
}

/** The expiry of `key` in profile `name`, or `"absent"`. */
function expiryIn(name: string, key: string): Promise<number | undefined | "absent"> {
  return withLibrary(async (s) => {
    const entry = await s.profile(name).readEntry(key);
    return entry === undefined ? "absent" : entry.expiresAt;
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(() => t?.cleanup());

describe("TTL in the CLI", () => {
  it("get --profile and stat do not show a value whose TTL has passed", async () => {
    setup();
    await withLibrary((s) => s.saveValue("short.json", { v: "short" }, { ttlMs: 200, profiles: ["a"] }));
    await sleep(400);

    const one = await run("get", "short.json", "--profile", "a");
    expect(one.code, one.stdout).toBe(1);
    expect(one.stderr).toMatch(/not found/i);
    expect(one.stdout).toBe("");
    expect((await run("get", "short.json")).code).toBe(1);
    const stat = json<{ profiles: { profile: string; present: boolean | null }[] }>(
      await run("stat", "short.json", "--profile", "a", "--json"),
    );
    expect(stat.profiles).toMatchObject([{ profile: "a", present: false }]);
  });

  it("migrate copies each value with its expiry, and not the expired ones", async () => {
    setup();
    const expiresAt = Date.now() + 3_600_000;
    await withLibrary(async (s) => {
      await s.saveValue("lasting.json", { v: "lasting" }, { expiresAt, profiles: ["a"] });
      await s.saveValue("forever.json", { v: "forever" }, { profiles: ["a"] });
      await s.saveValue("gone.json", { v: "gone" }, { ttlMs: 200, profiles: ["a"] });
    });
    await sleep(400);

    const m = await run("migrate", "--from", "a", "--to", "b", "--json");
    expect(m.code, m.stderr).toBe(0);
    expect(json(m)).toMatchObject({ total: 2, copied: 2, failed: 0 });
    expect(await expiryIn("b", "lasting.json")).toBe(expiresAt);
    expect(await expiryIn("b", "forever.json")).toBeUndefined();
    expect(await expiryIn("b", "gone.json")).toBe("absent");
  });

  it("repair copies a value with its expiry", async () => {
    setup();
    const expiresAt = Date.now() + 3_600_000;
    await withLibrary(async (s) => {
      await s.saveValue("fix.json", { v: "right" }, { expiresAt, profiles: ["a"] });
      await s.saveValue("fix.json", { v: "wrong" }, { profiles: ["b"] });
      await s.saveValue("missing.json", { v: "only in a" }, { expiresAt, profiles: ["a"] });
    });

    const r = await run("repair", "--from", "a", "--profiles", "b", "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(
      json<{ repaired: { key: string }[] }>(r)
        .repaired.map((x) => x.key)
        .sort(),
    ).toEqual(["fix.json", "missing.json"]);
    expect(await expiryIn("b", "fix.json")).toBe(expiresAt);
    expect(await expiryIn("b", "missing.json")).toBe(expiresAt);
  });
});
