/**
 * The built CLI moving data: `migrate` of 10,000 keys from sqlite to s3
 * (s3rver) then `verify`; a migrate killed with SIGKILL that resumes without
 * copying finished keys again; `verify` finding each kind of difference and
 * `repair` fixing them.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOperator, encodeJson, isCompressed, type Operator } from "../../src/index.js";
import { type S3rverInstance, s3Options, startS3rver } from "../helpers/servers.js";
import { type CliEnv, cli, cliEnv, ensureBuilt, json, s3Profile } from "./_helpers.js";

let s3: S3rverInstance;
let t: CliEnv;
const run = (...args: string[]) => cli(args, { env: t.env, timeoutMs: 120_000 });

/** Operators on the same stores as the CLI's profiles, for seeding and checking from the test. */
async function open(profile: "sqlite" | "s3" | "src2" | "dst2"): Promise<Operator> {
  switch (profile) {
    case "sqlite":
      return createOperator("sqlite", { datadir: join(t.dataDir, "sqlite") });
    case "src2":
      return createOperator("sqlite", { datadir: join(t.dataDir, "sqlite"), table: "resume_kv" });
    case "s3":
      return createOperator("s3", s3Options(s3, { root: "/main" }));
    case "dst2":
      return createOperator("s3", s3Options(s3, { root: "/resume" }));
  }
}

async function seed(op: Operator, keys: string[]): Promise<void> {
  for (const k of keys) await op.write(k, encodeJson({ key: k, body: `value of ${k}`, n: k.length }));
}

beforeAll(async () => {
  [s3] = await Promise.all([startS3rver(), ensureBuilt()]);
  t = cliEnv();
  t.writeSettings(`
[profiles.sqlite]
type = "sqlite"
datadir = "${t.dataDir}/sqlite"

[profiles.src2]
type = "sqlite"
datadir = "${t.dataDir}/sqlite"
table = "resume_kv"

[profiles.redb]
type = "redb"
datadir = "${t.dataDir}/store.redb"
table = "terraphim"

${s3Profile("s3", s3Options(s3, { root: "/main" }))}
${s3Profile("dst2", s3Options(s3, { root: "/resume" }))}
`);
}, 120_000);

afterAll(async () => {
  await s3?.stop();
  t?.cleanup();
});

describe("migrate", () => {
  it("copies 10,000 keys from sqlite to s3, then verify finds 0 differences", async () => {
    const keys = Array.from({ length: 10_000 }, (_, i) => `document_m${String(i).padStart(5, "0")}.json`);
    const src = await open("sqlite");
    await seed(src, keys);
    // One value large enough to be stored compressed: it must arrive compressed.
    await src.write("document_big.json", encodeJson({ body: "x".repeat(2_000_000) }));
    await src.close();

    const started = performance.now();
    const m = await run("migrate", "--from", "sqlite", "--to", "s3", "--concurrency", "32", "--json");
    const seconds = (performance.now() - started) / 1000;
    expect(m.code, m.stderr).toBe(0);
    const summary = json<Record<string, unknown>>(m);
    expect(summary).toMatchObject({ total: 10_001, copied: 10_001, skipped: 0, failed: 0, checkpoint: null });
    console.log(`migrate of 10,001 keys sqlite -> s3: ${seconds.toFixed(1)} s`);
    expect(existsSync(join(t.settingsDir, "migrate-sqlite-to-s3.checkpoint"))).toBe(false);

    const dst = await open("s3");
    expect(isCompressed(await dst.read("document_big.json"))).toBe(true);
    await dst.close();

    const v = await run("verify", "--profiles", "sqlite,s3", "--concurrency", "32", "--json");
    expect(v.code, v.stderr).toBe(0);
    expect(json(v)).toMatchObject({ keys: 10_001, differences: 0, missing: [], differing: [], undecodable: [] });
  }, 180_000);

  it("resumes after being killed, without copying finished keys again", async () => {
    const keys = Array.from({ length: 3000 }, (_, i) => `r/${String(i).padStart(4, "0")}.json`);
    const src = await open("src2");
    await seed(src, keys);
    await src.close();
    const checkpoint = join(t.settingsDir, "migrate-src2-to-dst2.checkpoint");
    const finished = () => {
      const text = existsSync(checkpoint) ? readFileSync(checkpoint, "utf8") : "";
      // Complete lines after the header.
      return text
        .split("\n")
        .slice(1, -1)
        .map((l) => JSON.parse(l) as string);
    };

    // Slow on purpose (one copy at a time), then SIGKILL once a few hundred keys are done.
    const first = cli(["migrate", "--from", "src2", "--to", "dst2", "--concurrency", "1"], {
      env: t.env,
      timeoutMs: 120_000,
      onSpawn: (child) => {
        const timer = setInterval(() => {
          if (finished().length >= 300) {
            clearInterval(timer);
            child.kill("SIGKILL");
          }
        }, 20);
        child.once("exit", () => clearInterval(timer));
      },
    });
    const killed = await first;
    expect(killed.signal).toBe("SIGKILL");
    const done = finished();
    expect(done.length).toBeGreaterThanOrEqual(300);
    expect(done.length).toBeLessThan(3000);

    // Mark one finished key in the destination: a resumed run must not copy it again.
    const marked = done[0] as string;
    const dst = await open("dst2");
    await dst.write(marked, encodeJson({ marker: true }));

    const second = await run("migrate", "--from", "src2", "--to", "dst2", "--concurrency", "16", "--json");
    expect(second.code, second.stderr).toBe(0);
    expect(json(second)).toMatchObject({
      total: 3000,
      skipped: done.length,
      copied: 3000 - done.length,
      failed: 0,
      checkpoint: null,
    });
    expect(JSON.parse(Buffer.from(await dst.read(marked)).toString())).toEqual({ marker: true });
    expect(existsSync(checkpoint)).toBe(false);

    // verify sees exactly the marked key; repair puts the source's value back.
    const v = json<{ differences: number; differing: { key: string }[] }>(
      await run("verify", "--profiles", "src2,dst2", "--json"),
    );
    expect(v.differences).toBe(1);
    expect(v.differing.map((d) => d.key)).toEqual([marked]);
    expect((await run("repair", "--from", "src2", "--profiles", "dst2")).code).toBe(0);
    expect((await run("verify", "--profiles", "src2,dst2")).code).toBe(0);
    await dst.close();
  }, 180_000);

  it("refuses a source that cannot list, and a checkpoint of another migrate", async () => {
    const noList = await run("migrate", "--from", "redb", "--to", "sqlite");
    expect(noList.code).toBe(1);
    expect(noList.stderr).toMatch(/cannot list its keys/);

    const cp = join(t.dataDir, "other.checkpoint");
    writeFileSync(cp, `${JSON.stringify({ terraphimMigrate: 1, from: "a", to: "b", prefix: "" })}\n"k"\n`);
    const other = await run("migrate", "--from", "sqlite", "--to", "s3", "--checkpoint", cp, "--prefix", "none/");
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/belongs to a migrate from "a" to "b"/);
    const fresh = await run(
      "migrate",
      "--from",
      "sqlite",
      "--to",
      "s3",
      "--checkpoint",
      cp,
      "--prefix",
      "none/",
      "--fresh",
    );
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(existsSync(cp)).toBe(false);
  });
});

describe("verify and repair", () => {
  it("finds missing, differing and undecodable values; compressed and plain copies of one value are equal", async () => {
    const sqlite = await open("sqlite");
    const s3op = await open("s3");
    const big = { body: "y".repeat(1_500_000) };
    const compressed = encodeJson(big);
    expect(isCompressed(compressed)).toBe(true);
    // Same value, compressed in one store and plain JSON in the other: equal.
    await sqlite.write("v/same.json", compressed);
    await s3op.write("v/same.json", JSON.stringify(big));
    // Same value, keys in another order: equal.
    await sqlite.write("v/order.json", '{"a":1,"b":[1,2]}');
    await s3op.write("v/order.json", '{"b":[1,2],"a":1}');
    await sqlite.write("v/missing.json", '{"only":"sqlite"}');
    await sqlite.write("v/compressed-missing.json", compressed);
    await sqlite.write("v/differs.json", '{"v":1}');
    await s3op.write("v/differs.json", '{"v":2}');
    await sqlite.write("v/bad.json", '{"ok":true}');
    await s3op.write("v/bad.json", "not json {");
    await s3op.write("v/extra.json", '{"only":"s3"}');

    const v = await run("verify", "--profiles", "sqlite,s3", "--prefix", "v/", "--json");
    expect(v.code).toBe(1);
    const r = json<{
      keys: number;
      differences: number;
      missing: { key: string; missingIn: string[] }[];
      differing: { key: string }[];
      undecodable: { key: string; profile: string }[];
    }>(v);
    expect(r.keys).toBe(7);
    expect(r.missing.map((m) => [m.key, m.missingIn]).sort()).toEqual([
      ["v/compressed-missing.json", ["s3"]],
      ["v/extra.json", ["sqlite"]],
      ["v/missing.json", ["s3"]],
    ]);
    expect(r.differing.map((d) => d.key)).toEqual(["v/differs.json"]);
    expect(r.undecodable).toMatchObject([{ key: "v/bad.json", profile: "s3" }]);
    expect(r.differences).toBe(5);
    const text = await run("verify", "--profiles", "sqlite,s3", "--prefix", "v/");
    expect(text.stdout).toMatch(/5 differences/);

    const dry = json<{ repaired: unknown[] }>(
      await run("repair", "--from", "sqlite", "--profiles", "s3", "--prefix", "v/", "--dry-run", "--json"),
    );
    expect(dry.repaired).toHaveLength(4);
    expect((await run("verify", "--profiles", "sqlite,s3", "--prefix", "v/")).code).toBe(1);

    const rep = await run("repair", "--from", "sqlite", "--profiles", "s3", "--prefix", "v/", "--json");
    expect(rep.code, rep.stderr).toBe(0);
    const fixed = json<{ repaired: { key: string }[]; notInSource: string[] }>(rep);
    expect(fixed.repaired.map((x) => x.key).sort()).toEqual([
      "v/bad.json",
      "v/compressed-missing.json",
      "v/differs.json",
      "v/missing.json",
    ]);
    expect(fixed.notInSource).toEqual(["v/extra.json"]);
    // Raw bytes were copied: the compressed value stays compressed.
    expect(isCompressed(await s3op.read("v/compressed-missing.json"))).toBe(true);

    const after = json<{ differences: number; missing: { key: string }[] }>(
      await run("verify", "--profiles", "sqlite,s3", "--prefix", "v/", "--json"),
    );
    expect(after.differences).toBe(1);
    expect(after.missing.map((m) => m.key)).toEqual(["v/extra.json"]);

    expect((await run("repair", "--from", "sqlite", "--profiles", "s3", "--prefix", "v/", "--delete-extra")).code).toBe(
      0,
    );
    expect(await s3op.exists("v/extra.json")).toBe(false);
    const clean = await run("verify", "--profiles", "sqlite,s3", "--prefix", "v/");
    expect(clean.code, clean.stdout).toBe(0);
    await sqlite.close();
    await s3op.close();
  });
});
