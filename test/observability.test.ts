import { tracingChannel } from "node:diagnostics_channel";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CHANNELS } from "../src/diagnostics.js";
import { NotFoundError } from "../src/errors.js";
import { consoleLogger, type Logger } from "../src/logger.js";
import { createOperator } from "../src/operators/index.js";
import { chaosOperator } from "../src/operators/wrappers/chaos.js";
import { DeviceStorage } from "../src/storage/device-storage.js";

const dir = mkdtempSync(join(tmpdir(), "tp-obs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture() {
  const lines: { level: string; obj: unknown; msg?: string | undefined }[] = [];
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { logger, lines };
}

async function storage(logger: Logger) {
  return DeviceStorage.fromOperators(
    [
      { name: "memory", op: await createOperator("memory"), speed: 1 },
      { name: "sqlite", op: await createOperator("sqlite", { datadir: mkdtempSync(join(dir, "s-")) }), speed: 2 },
    ],
    { logger },
  );
}

describe("observability", () => {
  it("tracing channels report load, save, write-back and probe", async () => {
    const events: string[] = [];
    const sub = (name: string) => ({
      start: (ctx: unknown) => events.push(`${name}:start:${JSON.stringify(pick(ctx))}`),
      asyncEnd: (ctx: unknown) => events.push(`${name}:end:${JSON.stringify(pick(ctx))}`),
      error: (ctx: unknown) => events.push(`${name}:error:${(ctx as { error: Error }).error.name}`),
    });
    const pick = (ctx: unknown) => {
      const c = ctx as Record<string, unknown>;
      const r = c.result as { profile?: string } | number | undefined;
      return { key: c.key, profile: c.profile ?? (typeof r === "object" ? r?.profile : undefined), from: c.from };
    };
    const subs = Object.entries(CHANNELS).map(([name, ch]) => {
      const handlers = sub(name);
      tracingChannel(ch).subscribe(handlers as never);
      return () => tracingChannel(ch).unsubscribe(handlers as never);
    });
    try {
      const { logger } = capture();
      const s = await storage(logger);
      await s.saveValue("k.json", { a: 1 }, { profiles: ["sqlite"] });
      await s.loadValue("k.json");
      await s.flush();
      await s.loadValue("missing.json").catch(() => {});
      await s.close();
      expect(events).toContain('probe:start:{"profile":"memory"}');
      expect(events).toContain('save:start:{"key":"k.json"}');
      expect(events).toContain('load:end:{"key":"k.json","profile":"sqlite"}');
      expect(events).toContain('writeBack:start:{"key":"k.json","profile":"memory","from":"sqlite"}');
      expect(events).toContain("load:error:NotFoundError");
    } finally {
      for (const u of subs) u();
    }
  });

  it("an expected miss logs no warning; a real failure does", async () => {
    const { logger, lines } = capture();
    const s = await storage(logger);
    await expect(s.loadValue("first-run.json")).rejects.toBeInstanceOf(NotFoundError);
    expect(lines.filter((l) => l.level === "warn" || l.level === "error")).toEqual([]);
    await s.close();
    // A profile that fails during the fallback is worth a warning.
    const flaky = chaosOperator(await createOperator("memory"));
    const s2 = await DeviceStorage.fromOperators(
      [
        { name: "memory", op: await createOperator("memory"), speed: 1 },
        { name: "flaky", op: flaky, speed: 2 },
      ],
      { logger },
    );
    flaky.faults.fail = ["read"];
    await s2.loadValue("first-run.json").catch(() => {});
    expect(lines.filter((l) => l.level === "warn").map((l) => l.msg)).toEqual(["profile failed during fallback read"]);
    await s2.close();
  });

  it("stats count hits, misses, fallbacks, write-backs and bytes per profile", async () => {
    const { logger } = capture();
    const s = await storage(logger);
    await s.saveValue("a.json", { v: "x".repeat(100) }, { profiles: ["sqlite"] });
    await s.loadValue("a.json");
    await s.flush();
    await s.loadValue("a.json");
    await s.loadValue("b.json").catch(() => {});
    const st = s.stats();
    expect(st.memory).toMatchObject({ hits: 1, misses: 2, writeBacks: 1, failures: 0 });
    expect(st.sqlite).toMatchObject({ fallbacks: 1, misses: 1 });
    expect(st.sqlite!.bytesWritten).toBe(108);
    expect(st.memory!.bytesWritten).toBe(108);
    await s.close();
  });

  it("the console logger follows TERRAPHIM_LOG and redacts secrets", () => {
    const writes: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => {
      writes.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      consoleLogger("warn").debug("hidden");
      consoleLogger("debug").debug({ url: "postgresql://u:hunter2secret@h/db" }, "connecting");
      consoleLogger(undefined).info("hidden too");
      consoleLogger("silent").error("nothing");
    } finally {
      process.stderr.write = orig;
    }
    expect(writes).toHaveLength(1);
    expect(writes[0]).toContain("DEBUG connecting");
    expect(writes[0]).not.toContain("hunter2secret");
  });
});
