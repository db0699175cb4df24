/**
 * The fault tests' worker process (_worker.ts) on the machine's Redis: its
 * history survives its own SIGKILL (every acknowledged save is on disk, the
 * save that killed it included, and the value is in the shared store), and
 * on `final` it loads every key once more and exits cleanly.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { requireServer } from "../helpers/servers.js";
import { redisStore } from "./_store.js";
import { faultValueId } from "./_values.js";
import type { FromWorker, ToWorker, WorkerConfig } from "./_worker.js";
import { readHistory } from "./history.js";

const WORKER = fileURLToPath(new URL("./_worker.ts", import.meta.url));
const ok = await requireServer("redis (fault worker)", "127.0.0.1", 6379);
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});

function setup(armed: boolean) {
  const dir = mkdtempSync(join(tmpdir(), "tp-worker-"));
  const tag = `tp-worker-${randomBytes(4).toString("hex")}`;
  const store = redisStore("127.0.0.1", 6379, `/${tag}/`);
  cleanup.push(async () => {
    await store.clear();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const endpoint = "tcp://127.0.0.1:6379";
  const config: WorkerConfig = {
    name: "w9.0",
    historyFile: join(dir, "w9.0.jsonl"),
    settings: {
      profiles: { local: { type: "memory" }, shared: { type: "redis", endpoint, root: `/${tag}/` } },
      coherence: { type: "redis", endpoint, channel: tag, heartbeat_ms: "200" },
    },
    keys: ["a.json", "b.json"],
    seed: 9,
    mix: armed ? { save: 1, delete: 0, load: 0 } : { save: 2, delete: 1, load: 3 },
    pauseMs: [1, 3],
    armed,
  };
  const child: ChildProcess = fork(WORKER, [JSON.stringify(config)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  cleanup.push(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));
  const exited = new Promise<[number | null, string | null]>((r) => child.once("exit", (c, s) => r([c, s])));
  const message = (t: FromWorker["t"]) =>
    new Promise<FromWorker>((r) => child.on("message", (m: FromWorker) => m.t === t && r(m)));
  return { config, child, exited, message, store };
}

describe.skipIf(!ok)("fault worker", () => {
  it("armed, it SIGKILLs itself right after its first acknowledged save, which is recorded and stored", async () => {
    const w = setup(true);
    const [code, signal] = await w.exited;
    expect([code, signal]).toEqual([null, "SIGKILL"]);
    const h = readHistory([w.config.historyFile]);
    expect(h.ops.map((o) => [o.op, o.value, o.outcome])).toEqual([["save", "w9.0:1", "ok"]]);
    const key = h.ops[0]!.key;
    expect(faultValueId(await w.store.get(key))).toBe("w9.0:1");
  }, 30_000);

  it("records saves, deletes and loads; on final it loads every key once more and exits 0", async () => {
    const w = setup(false);
    expect(await w.message("ready")).toEqual({ t: "ready", trusted: true });
    await new Promise((r) => setTimeout(r, 500));
    const done = w.message("done");
    w.child.send({ t: "final" } satisfies ToWorker);
    await done;
    expect(await w.exited).toEqual([0, null]);
    const h = readHistory([w.config.historyFile]);
    const kinds = new Set(h.ops.map((o) => o.op));
    expect(kinds).toEqual(new Set(["save", "delete", "load"]));
    expect(h.ops.every((o) => o.outcome === "ok")).toBe(true);
    // The last two operations: one load of each key.
    expect(h.ops.slice(-2).map((o) => [o.op, o.key])).toEqual([
      ["load", "a.json"],
      ["load", "b.json"],
    ]);
    // What each final load returned is what the store holds.
    for (const o of h.ops.slice(-2)) {
      const stored = await w.store.get(o.key);
      expect(o.value).toBe(stored === null ? null : faultValueId(stored));
    }
  }, 30_000);
});
