/**
 * The embedded default on the runtime running the tests (Node, Bun or Deno;
 * `.ci/run` runs this file on each): its own SQLite and zstd, no native
 * addon, and a large value that crosses a process restart through sqlite.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RUNTIME, runtimeSupport } from "../../src/index.js";
import { ensureBuilt } from "../cli/_helpers.js";
import { RawSqlite } from "../helpers/raw-sqlite.js";

const run = promisify(execFile);
const CHILD = new URL("./_child.mjs", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "tp-runtime-"));

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `node:sqlite` is unflagged from Node 22.13, zlib zstd from 22.15. */
const atLeast = (version: string, major: number, minor: number) => {
  const [a = 0, b = 0] = version.split(".").map(Number);
  return a > major || (a === major && b >= minor);
};

describe(`runtime: ${RUNTIME.name} ${RUNTIME.version}`, () => {
  it("is the runtime CI asked for (TP_EXPECT_RUNTIME), not another one on the PATH", () => {
    const expected = process.env.TP_EXPECT_RUNTIME;
    if (!expected) {
      if (process.env.CI) throw new Error("CI must say which runtime each leg runs (TP_EXPECT_RUNTIME)");
      return;
    }
    expect(`${RUNTIME.name} ${RUNTIME.version}`).toBe(expected);
  });

  it("serves sqlite and zstd from the runtime itself (no native addon)", () => {
    const r = runtimeSupport();
    const builtIn =
      RUNTIME.name === "bun"
        ? "bun:sqlite"
        : RUNTIME.name === "deno" || atLeast(RUNTIME.version, 22, 13)
          ? "node:sqlite"
          : undefined;
    const zstd = RUNTIME.name !== "node" || atLeast(RUNTIME.version, 22, 15) ? "node:zlib" : undefined;
    expect(r.sqlite.module).toBe(builtIn ?? "better-sqlite3");
    expect(r.zstd.module).toBe(zstd ?? "zstd-napi");
    if (builtIn) expect(r.sqlite).toMatchObject({ source: "runtime", installed: true });
    if (zstd) expect(r.zstd).toMatchObject({ source: "runtime", installed: true });
  });

  it("a 2 MiB value saved by one process through memory + sqlite loads from sqlite in the next (zstd on disk)", async () => {
    const key = `document_runtime_${process.pid}.json`;
    const child = async (mode: string) => {
      const { stdout } = await run(process.execPath, [CHILD, mode, dir, key], { maxBuffer: 1 << 20 });
      return JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, string | number>;
    };
    const saved = await child("save");
    expect(saved).toMatchObject({ runtime: RUNTIME.name, version: RUNTIME.version });
    expect(saved.bytes).toBeGreaterThan(2 * 1024 * 1024 - 1);
    const db = new RawSqlite(join(dir, "terraphim.db"), { readonly: true });
    const stored = db.prepare("SELECT value FROM terraphim_kv WHERE key = ?").pluck().get(key) as Uint8Array;
    db.close();
    expect(Buffer.from(stored.subarray(0, 4)).toString()).toBe("ZSTD");
    expect(stored.length).toBeLessThan(Number(saved.bytes) / 4);
    const loaded = await child("load");
    expect(loaded).toMatchObject({ profile: "sqlite", loaded: saved.saved, expected: saved.saved });
  }, 120_000);
});
