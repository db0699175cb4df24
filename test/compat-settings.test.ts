/**
 * The four settings files of the Rust repo (shared/compat/rust-settings) load
 * through loadSettings + DeviceStorage, each profile ending usable or with a
 * clear per-profile error; `atomicserver` is reported, never turned into RAM.
 * Hard-coded /tmp paths are redirected to temp dirs with the crate's own
 * TERRAPHIM_PROFILE_<NAME>_<KEY> overrides; the s3 profile goes to s3rver.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/logger.js";
import { loadSettings } from "../src/settings/index.js";
import { DeviceStorage } from "../src/storage/device-storage.js";
import { startS3rver } from "./helpers/servers.js";

const COMPAT = resolve(import.meta.dirname, "../../shared/compat/rust-settings");
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "tp-compat-settings-"));
  dirs.push(d);
  return d;
};
const s3 = await startS3rver();
afterAll(async () => {
  await s3.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function open(file: string, env: Record<string, string>) {
  const dir = tempDir();
  copyFileSync(join(COMPAT, file), join(dir, "settings.toml"));
  const settings = await loadSettings({
    path: dir,
    env: { HOME: dir, TERRAPHIM_DATA_PATH: join(dir, "data"), ...env },
  });
  const storage = await DeviceStorage.fromSettings(settings, { logger: silentLogger });
  const usable = [...storage.ops.keys()].sort();
  const failed = Object.fromEntries([...storage.profileErrors].map(([k, e]) => [k, e.message]));
  return { storage, usable, failed, settings };
}

/** Saves and loads through every usable profile, proving each is a real store of its scheme. */
async function roundTrip(storage: DeviceStorage) {
  await storage.saveValue("document_compat.json", { id: "compat" });
  for (const name of storage.ops.keys()) {
    const op = storage.ops.get(name)!.op;
    expect(Buffer.from(await op.read("document_compat.json")).toString(), name).toBe('{"id":"compat"}');
  }
  await storage.deleteValue("document_compat.json");
}

describe("Rust settings files", () => {
  it("settings.toml: the sqlite profile under TERRAPHIM_DATA_PATH", async () => {
    const { storage, usable, failed, settings } = await open("settings.toml", {});
    expect(usable).toEqual(["sqlite"]);
    expect(failed).toEqual({});
    expect(settings.profiles.sqlite!.connection_string).toBe(join(settings.defaultDataPath, "sqlite/terraphim.db"));
    expect(storage.ops.get("sqlite")!.scheme).toBe("sqlite");
    await roundTrip(storage);
    await storage.close();
  });

  it("settings_local.toml: sled + dashmap", async () => {
    const dir = tempDir();
    const { storage, usable, failed } = await open("settings_local.toml", {
      TERRAPHIM_PROFILE_SLED_DATADIR: join(dir, "sled"),
    });
    expect(usable).toEqual(["dash", "sled"]);
    expect(failed).toEqual({});
    expect(storage.fastestProfile).toBe("dash");
    expect(storage.ops.get("sled")!.op.capabilities.durable).toBe(true);
    await roundTrip(storage);
    await storage.close();
  });

  it("settings_local_dev.toml: dashmap + sqlite, dashmap ranked fastest", async () => {
    const dir = tempDir();
    const { storage, usable, failed } = await open("settings_local_dev.toml", {
      TERRAPHIM_PROFILE_DASHMAP_ROOT: join(dir, "dashmap"),
      TERRAPHIM_PROFILE_SQLITE_DATADIR: join(dir, "sqlite"),
      TERRAPHIM_PROFILE_SQLITE_CONNECTION_STRING: join(dir, "sqlite/terraphim.db"),
    });
    expect(usable).toEqual(["dashmap", "sqlite"]);
    expect(failed).toEqual({});
    expect(storage.fastestProfile).toBe("dashmap");
    await roundTrip(storage);
    await storage.close();
  });

  it("settings_full.toml with credentials: s3, sled, dashmap, redb, sqlite usable; atomicserver reported unsupported", async () => {
    const dir = tempDir();
    const { storage, usable, failed } = await open("settings_full.toml", {
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "compat-secret-value-123",
      TERRAPHIM_PROFILE_S3_ENDPOINT: s3.endpoint,
      TERRAPHIM_PROFILE_S3_BUCKET: s3.bucket,
      TERRAPHIM_PROFILE_S3_DELETE_MAX_SIZE: "1",
      TERRAPHIM_PROFILE_SLED_DATADIR: join(dir, "sled"),
      TERRAPHIM_PROFILE_DASHMAP_ROOT: join(dir, "dashmap"),
      TERRAPHIM_PROFILE_REDB_DATADIR: join(dir, "redb/terraphim.redb"),
      TERRAPHIM_PROFILE_SQLITE_DATADIR: join(dir, "sqlite"),
      TERRAPHIM_PROFILE_ATOMICSERVER: "http://localhost:9883",
      TERRAPHIM_PROFILE_ATOMICSERVER_PRIVATE_KEY: "atomic-private-key-xyz",
      TERRAPHIM_PROFILE_ATOMICSERVER_PUBLIC_KEY: "atomic-public",
    });
    expect(usable).toEqual(["dashmap", "redb", "s3", "sled", "sqlite"]);
    expect(Object.keys(failed)).toEqual(["atomicserver"]);
    expect(failed.atomicserver).toMatch(/atomicserver/);
    expect(failed.atomicserver).not.toMatch(/atomic-private-key-xyz/);
    // Every usable profile is what it says: no memory stand-ins.
    for (const [name, e] of storage.ops) expect(e.scheme, name).toBe(name);
    expect(storage.ops.get("s3")!.op.capabilities.shared).toBe(true);
    await roundTrip(storage);
    await storage.close();
  });

  it("settings_full.toml without credentials: s3 and atomicserver fail per profile, naming the variables", async () => {
    const dir = tempDir();
    const { storage, usable, failed } = await open("settings_full.toml", {
      TERRAPHIM_PROFILE_SLED_DATADIR: join(dir, "sled"),
      TERRAPHIM_PROFILE_DASHMAP_ROOT: join(dir, "dashmap"),
      TERRAPHIM_PROFILE_REDB_DATADIR: join(dir, "redb/terraphim.redb"),
      TERRAPHIM_PROFILE_SQLITE_DATADIR: join(dir, "sqlite"),
    });
    expect(usable).toEqual(["dashmap", "redb", "sled", "sqlite"]);
    expect(Object.keys(failed).sort()).toEqual(["atomicserver", "s3"]);
    expect(failed.s3).toMatch(/AWS_ACCESS_KEY_ID/);
    expect(failed.atomicserver).toMatch(/TERRAPHIM_PROFILE_ATOMICSERVER/);
    await storage.close();
  });
});
