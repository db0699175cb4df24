/**
 * `demo` (the README's main job) on the embedded default settings with fresh
 * folders, the ten-line library example, and `bench` cleaning up its keys.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createOperator } from "../../src/index.js";
import { type CliEnv, cli, cliEnv, ensureBuilt, json, ROOT } from "./_helpers.js";

const exec = promisify(execFile);
const envs: CliEnv[] = [];
const fresh = () => {
  const e = cliEnv();
  envs.push(e);
  return e;
};

beforeAll(ensureBuilt, 120_000);
afterEach(() => {
  for (const e of envs.splice(0)) e.cleanup();
});

interface Demo {
  settings: string;
  profiles: { name: string }[];
  key: string;
  savedTo: string[];
  loadedFrom: string;
  afterRestart: { loadedFrom: string; writeBack: boolean; fastest: string };
  nextLoadFrom: string;
}

describe("demo", () => {
  it("runs the main job on the default settings written to TERRAPHIM_SETTINGS_PATH", async () => {
    const t = fresh();
    const r = await cli(["demo", "--json"], { env: t.env });
    expect(r.code, r.stderr).toBe(0);
    const d = json<Demo>(r);
    expect(d.settings).toBe(join(t.settingsDir, "settings.toml"));
    expect(existsSync(d.settings)).toBe(true);
    expect(existsSync(join(t.dataDir, "sqlite", "terraphim.db"))).toBe(true);
    expect(d.profiles.map((p) => p.name)).toEqual(["memory", "sqlite"]);
    expect(d.savedTo.sort()).toEqual(["memory", "sqlite"]);
    expect(d.loadedFrom).toBe("memory");
    expect(d.afterRestart).toEqual({ loadedFrom: "sqlite", writeBack: true, fastest: "memory" });
    expect(d.nextLoadFrom).toBe("memory");
    expect(r.stderr).toBe("");

    // The document was deleted at the end.
    const op = await createOperator("sqlite", { datadir: join(t.dataDir, "sqlite") });
    expect(await op.exists(d.key)).toBe(false);
    await op.close();

    const text = await cli(["demo"], { env: t.env });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/after restart: loaded from sqlite; write-back to memory scheduled/);
    expect(text.stdout).toMatch(/next load served by memory/);
  });

  it("runs with nothing but a fresh HOME (the platform folders under it)", async () => {
    const t = fresh();
    const env = { ...t.env };
    delete env.TERRAPHIM_SETTINGS_PATH;
    delete env.TERRAPHIM_DATA_PATH;
    const r = await cli(["demo", "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    const d = json<Demo>(r);
    expect(d.settings).toBe(join(t.home, ".config", "terraphim", "settings.toml"));
    expect(existsSync(join(t.home, ".terraphim", "sqlite", "terraphim.db"))).toBe(true);
    expect(d.afterRestart.writeBack).toBe(true);
  });

  it("keeps the ten-line library example working", async () => {
    const t = fresh();
    const { stdout } = await exec(process.execPath, [join(ROOT, "examples", "demo.mjs")], { env: t.env });
    expect(stdout.trim()).toBe('loaded "hi" from memory');
  });
});

describe("bench", () => {
  it("times every profile at each size and deletes its keys", async () => {
    const t = fresh();
    const r = await cli(["bench", "--ops", "30", "--sizes", "1k,64k", "--json"], { env: t.env });
    expect(r.code, r.stderr).toBe(0);
    const b = json<{ rows: { profile: string; size: number; write: object; read: object; mixed: object }[] }>(r);
    expect(b.rows.map((x) => [x.profile, x.size])).toEqual([
      ["memory", 1024],
      ["memory", 65536],
      ["sqlite", 1024],
      ["sqlite", 65536],
    ]);
    for (const row of b.rows) {
      for (const phase of [row.write, row.read, row.mixed]) {
        expect(phase).toMatchObject({ opsPerSecond: expect.any(Number), p50: expect.any(Number) });
      }
    }
    const op = await createOperator("sqlite", { datadir: join(t.dataDir, "sqlite") });
    expect((await op.list()).filter((k) => k.startsWith(".terraphim-"))).toEqual([]);
    await op.close();

    const text = await cli(["bench", "--ops", "10", "--sizes", "1k", "--profiles", "sqlite"], { env: t.env });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^profile\s+scheme\s+size\s+write\/s/);
    expect(text.stdout).toMatch(/sqlite\s+sqlite\s+1.0 KiB/);
  });
});
