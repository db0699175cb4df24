/**
 * `storage.listKeys(prefix)`: the union of what the profiles in the read path
 * can list, who answered, and who could not be asked (a down server, a backend
 * without a listing), so a `clear` or an iterator can tell complete from
 * partial. Local profiles kept out of the read path by a coherence gap are not
 * asked (they may hold keys other instances deleted). Real SQLite, redb, and
 * the machine's Redis.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ClosedError, DeviceStorage, InvalidKeyError, silentLogger } from "../src/index.js";
import { freePort, requireServer } from "./helpers/servers.js";

const redisUp = await requireServer("redis (listKeys)", "127.0.0.1", 6379);
const dirs: string[] = [];
const open: DeviceStorage[] = [];
afterAll(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-list-"));
  dirs.push(d);
  return d;
};
async function storage(profiles: Record<string, Record<string, string>>, coherence?: Record<string, string>) {
  const s = await DeviceStorage.fromSettings({ profiles, coherence }, { logger: silentLogger });
  open.push(s);
  return s;
}

describe("storage.listKeys", () => {
  it("merges every profile's keys under the prefix, sorted, without reserved or expired ones", async () => {
    const s = await storage({ mem: { type: "memory" }, db: { type: "sqlite", datadir: tempDir() } });
    await s.saveValue("doc_b.json", 1);
    await s.saveValue("doc_a.json", 1, { profiles: ["mem"] }); // only in memory
    await s.saveValue("doc_c.json", 1, { profiles: ["db"] }); // only in sqlite
    await s.saveValue("doc_gone.json", 1, { ttlMs: 1 });
    await s.saveValue("other.json", 1);
    await new Promise((r) => setTimeout(r, 10));
    const l = await s.listKeys("doc_");
    expect(l.keys).toEqual(["doc_a.json", "doc_b.json", "doc_c.json"]);
    expect(l.asked.sort()).toEqual(["db", "mem"]);
    expect(l.missed).toEqual([]);
    expect((await s.listKeys()).keys).toEqual(["doc_a.json", "doc_b.json", "doc_c.json", "other.json"]);
  });

  it("names a profile that cannot list (redb) as missed and unsupported", async () => {
    const s = await storage({
      mem: { type: "memory" },
      redb: { type: "redb", datadir: join(tempDir(), "x.redb"), table: "kv" },
    });
    await s.saveValue("k.json", 1);
    const l = await s.listKeys();
    expect(l.keys).toEqual(["k.json"]);
    expect(l.missed).toEqual([
      { profile: "redb", reason: expect.stringContaining("cannot list"), durable: true, unsupported: true },
    ]);
  });

  it("names a down server as missed (not unsupported): the listing is partial", async () => {
    const port = await freePort();
    const s = await storage({
      mem: { type: "memory" },
      r: { type: "redis", endpoint: `tcp://127.0.0.1:${port}`, timeout_ms: "300" },
    });
    await s.saveValue("k.json", 1, { profiles: ["mem"] });
    const l = await s.listKeys();
    expect(l.keys).toEqual(["k.json"]);
    expect(l.missed).toMatchObject([{ profile: "r", unsupported: false }]);
    expect(l.missed[0]!.reason).toMatch(/^down/);
  });

  it.skipIf(!redisUp)(
    "does not ask a local profile kept out of the read path by a coherence gap",
    async () => {
      const id = randomUUID().slice(0, 8);
      const deadBus = await freePort();
      // The bus never answers: the local memory profile stays distrusted (it cannot hear other instances).
      const s = await storage(
        { mem: { type: "memory" }, r: { type: "redis", endpoint: "tcp://127.0.0.1:6379", root: `/tp-list-${id}/` } },
        { type: "redis", endpoint: `tcp://127.0.0.1:${deadBus}`, channel: `tp-list-${id}` },
      );
      expect(s.coherenceStats()?.distrusted).toEqual(["mem"]);
      await s.saveValue("shared.json", 1);
      await s.saveValue("stale.json", 1, { profiles: ["mem"] }); // e.g. deleted elsewhere while we were deaf
      const l = await s.listKeys();
      expect(l.keys).toEqual(["shared.json"]);
      expect(l.asked).toEqual(["r"]);
      await s.deleteValue("shared.json");
    },
    20_000,
  );

  it("refuses a bad prefix and a closed storage with typed errors", async () => {
    const s = await storage({ mem: { type: "memory" } });
    await expect(s.listKeys("../x")).rejects.toBeInstanceOf(InvalidKeyError);
    await s.close();
    await expect(s.listKeys()).rejects.toBeInstanceOf(ClosedError);
  });
});
