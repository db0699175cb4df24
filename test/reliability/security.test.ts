/**
 * Security: no secret in logs (a logger capturing everything at debug
 * level), thrown errors or their causes; fs-like backends keep every key
 * inside their root; database and settings files are created without world
 * access; a world-readable settings file holding secrets is warned about.
 */
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { InvalidKeyError, PartialWriteError } from "../../src/errors.js";
import type { Logger } from "../../src/logger.js";
import { createOperator } from "../../src/operators/index.js";
import { loadSettings, parseSettings } from "../../src/settings/index.js";
import { DeviceStorage } from "../../src/storage/device-storage.js";
import {
  createPgTable,
  hasCommand,
  type OwnServer,
  type PgTable,
  portAnswers,
  requireBinaries,
  type S3rverInstance,
  startRedis,
  startS3rver,
} from "../helpers/servers.js";
import { removeTempDirs, tempDir } from "./_util.js";

afterAll(removeTempDirs);

// ---------------------------------------------------------------- secrets

/** Everything a pino logger (or a crash report) could print of a value: messages, stacks, causes, fields. */
function dump(x: unknown, seen = new Set<unknown>()): string {
  if (x === null || x === undefined) return String(x);
  if (typeof x !== "object") return String(x);
  if (seen.has(x)) return "[cycle]";
  seen.add(x);
  if (x instanceof Error) {
    const own = Object.entries(x).map(([k, v]) => `${k}=${dump(v, seen)}`);
    return `${x.name}: ${x.message}\n${x.stack}\n${own.join(" ")}\ncause: ${dump(x.cause, seen)}`;
  }
  if (x instanceof Map) return [...x].map(([k, v]) => `${k}=${dump(v, seen)}`).join(" ");
  if (Array.isArray(x)) return x.map((v) => dump(v, seen)).join(" ");
  return Object.entries(x)
    .map(([k, v]) => `${k}=${dump(v, seen)}`)
    .join(" ");
}

function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const at =
    (level: string) =>
    (obj: object | string, msg?: string): void => {
      lines.push(`${level} ${msg ?? ""} ${dump(obj)}`);
    };
  return { logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }, lines };
}

const haveRedis = await requireBinaries("secrets (redis profiles)", await hasCommand("redis-server"));

describe.skipIf(!haveRedis)("secrets never reach logs or errors", () => {
  const SECRETS = {
    s3: "S3-Secret-Key-9f8e7d6c",
    s3bad: "S3-Bad-Secret-1a2b3c4d",
    redis: "Redis-Pass-5d6e7f8a",
    redisBad: "Redis-Wrong-Pass-4c4c4c",
    redisUrl: "Redis-Url-Pass-8h8h8h",
    pg: "Pg-Pass-2k2k2k2k",
    pgBad: "Pg-Bad-Pass-3m3m3m",
  };
  let s3: S3rverInstance;
  let redis: OwnServer & { endpoint: string };
  let pg: PgTable | undefined;
  beforeAll(async () => {
    s3 = await startS3rver();
    redis = await startRedis({ args: ["--requirepass", SECRETS.redis] });
    if (await portAnswers("127.0.0.1", 5432)) pg = await createPgTable();
    else if (process.env.CI) throw new Error("PostgreSQL on 127.0.0.1:5432 is required in CI");
    else
      console.warn("\n!!! SKIPPED: postgresql profiles of the secrets test: nothing answers on 127.0.0.1:5432 !!!\n");
  });
  afterAll(async () => {
    await s3?.stop();
    await redis?.stop();
    await pg?.drop();
  });

  it("through settings, start-up, saves, loads, fallbacks, an outage and failed profiles", async () => {
    const { logger, lines } = capture();
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      stderr.push(String(chunk));
      return write(chunk, ...rest);
    }) as typeof process.stderr.write;
    const port = redis.port;
    const s3Common = `bucket = "${s3.bucket}"\nendpoint = "${s3.endpoint}"\nregion = "us-east-1"\ndelete_max_size = "1"\ntimeout_ms = "2000"`;
    const pgProfiles = pg
      ? `
[profiles.pg]
type = "postgresql"
connection_string = "postgresql://postgres:${SECRETS.pg}@127.0.0.1:5432/test"
table = "${pg.table}"
timeout_ms = "2000"

[profiles.pgbad]
type = "postgresql"
connection_string = "postgresql://no_such_role:${SECRETS.pgBad}@127.0.0.1:5432/test"
table = "${pg.table}"
timeout_ms = "2000"
`
      : "";
    const toml = `
[profiles.memory]
type = "memory"

[profiles.sqlite]
type = "sqlite"
datadir = "${join(tempDir(), "sqlite")}"

[profiles.s3]
type = "s3"
${s3Common}
access_key_id = "S3RVER"
secret_access_key = "${SECRETS.s3}"

[profiles.s3bad]
type = "s3"
${s3Common}
access_key_id = "WRONG-ID"
secret_access_key = "${SECRETS.s3bad}"

[profiles.redis]
type = "redis"
endpoint = "tcp://127.0.0.1:${port}"
password = "${SECRETS.redis}"
timeout_ms = "1000"

[profiles.redisbad]
type = "redis"
endpoint = "tcp://127.0.0.1:${port}"
password = "${SECRETS.redisBad}"
timeout_ms = "1000"

[profiles.redisurl]
type = "redis"
endpoint = "redis://:${SECRETS.redisUrl}@127.0.0.1:${port}"
timeout_ms = "1000"
${pgProfiles}`;
    const errors: unknown[] = [];
    try {
      // A settings file that fails to parse shows an excerpt: not of the secrets.
      errors.push(parseSettings(`${toml}\n[broken`, { env: {} }) as never);
    } catch (e) {
      errors.push(e);
    }
    let storage: DeviceStorage | undefined;
    try {
      const settings = parseSettings(toml, { env: {} });
      storage = await DeviceStorage.fromSettings(settings, { logger });
      expect([...storage.ops.keys()].sort()).toEqual(["memory", "redis", "s3", "sqlite", ...(pg ? ["pg"] : [])].sort());
      expect([...storage.profileErrors.keys()].sort()).toEqual(
        ["redisbad", "redisurl", "s3bad", ...(pg ? ["pgbad"] : [])].sort(),
      );
      errors.push(...storage.profileErrors.values());
      // The profiles down at start-up (wrong passwords time out) are named in each save's PartialWriteError (issue 15).
      const reported = (e: unknown) => {
        if (!(e instanceof PartialWriteError)) throw e;
        errors.push(e);
      };
      for (let i = 0; i < 10; i++) await storage.saveValue(`k${i}.json`, { i }).catch(reported);
      for (let i = 0; i < 10; i++) {
        await storage.deleteValue(`k${i}.json`, { profiles: ["memory"] });
        await storage.loadValue(`k${i}.json`);
      }
      await storage.flush();
      await redis.kill();
      for (let i = 0; i < 3; i++) errors.push(await storage.saveValue(`k${i}.json`, { i: -i }).catch((e) => e));
      for (let i = 0; i < 3; i++) {
        await storage.deleteValue(`k${i}.json`, { profiles: ["memory", "sqlite"] });
        errors.push(await storage.loadValue(`k${i}.json`).catch((e) => e));
      }
      await storage.flush();
      expect(errors.some((e) => e instanceof PartialWriteError)).toBe(true);
    } finally {
      await storage?.close();
      process.stderr.write = write;
    }
    const haystacks = {
      logs: lines.join("\n"),
      errors: errors.map((e) => dump(e)).join("\n"),
      stderr: stderr.join(""),
    };
    expect(lines.length).toBeGreaterThan(10);
    for (const [where, text] of Object.entries(haystacks)) {
      for (const [name, secret] of Object.entries(SECRETS)) {
        expect(text.includes(secret), `${name} secret in ${where}`).toBe(false);
      }
    }
  }, 60_000);
});

// ---------------------------------------------------------------- confinement

describe("fs-like backends keep every key inside their root", () => {
  it("fs: traversal is refused; look-alike names stay inside", async () => {
    const d = tempDir();
    const root = join(d, "root");
    const fs = await createOperator("fs", { root });
    for (const key of ["../x.json", "a/../../x.json", "/x.json", "a\\..\\..\\x.json", "a/\u0000/x.json"]) {
      await expect(fs.write(key, "{}"), key).rejects.toBeInstanceOf(InvalidKeyError);
    }
    for (const key of ["..%2fx.json", "．．/x.json", "...json", "a/..b/x.json", " ../x.json"]) {
      await fs.write(key, "{}");
      expect(await fs.exists(key)).toBe(true);
    }
    expect(readdirSync(d)).toEqual(["root"]);
    await fs.close();
  });

  it("fs: a symlink planted inside the root does not let a key write outside it", async () => {
    const d = tempDir();
    const root = join(d, "root");
    const outside = join(d, "outside");
    mkdirSync(outside);
    const fs = await createOperator("fs", { root });
    symlinkSync(outside, join(root, "link"));
    const err = await fs.write("link/escaped.json", "{}").catch((e) => e);
    expect(readdirSync(outside), "a file was written outside the root").toEqual([]);
    expect(err).toBeInstanceOf(Error);
    await fs.close();
  });

  it("redb and sled: keys are entries inside one file / one folder, never files of their own", async () => {
    const d = tempDir();
    const redb = await createOperator("redb", { datadir: join(d, "redb", "store.redb"), table: "t" });
    const sled = await createOperator("sled", { datadir: join(d, "sled") });
    for (const op of [redb, sled]) {
      await op.write("a/b/escaped.json", "{}");
      await op.write("..json", "{}");
      await expect(op.write("../escaped.json", "{}")).rejects.toBeInstanceOf(InvalidKeyError);
    }
    await redb.close();
    await sled.close();
    expect(readdirSync(join(d, "redb"))).toEqual(["store.redb"]);
    const files = (readdirSync(d, { recursive: true }) as string[]).map(String);
    expect(files.filter((f) => f.includes("escaped") || f.endsWith(".json"))).toEqual([]);
  });
});

// ---------------------------------------------------------------- file modes

describe("files are created without group or world access", () => {
  let umask: number;
  beforeAll(() => {
    // The usual default; the library must not rely on a stricter one.
    umask = process.umask(0o022);
  });
  afterAll(() => {
    process.umask(umask);
  });

  const mode = (p: string) => (lstatSync(p).mode & 0o777).toString(8).padStart(3, "0");
  const walk = (dir: string): string[] =>
    (readdirSync(dir, { recursive: true }) as string[]).map((f) => join(dir, String(f)));

  it("sqlite: the database, its -wal and -shm, and the folder", async () => {
    const d = tempDir();
    const op = await createOperator("sqlite", { datadir: join(d, "sqlite") });
    await op.write("k.json", "{}");
    const files = walk(join(d, "sqlite"));
    expect(files.map((f) => f.slice(d.length))).toEqual(
      expect.arrayContaining(["/sqlite/terraphim.db", "/sqlite/terraphim.db-wal", "/sqlite/terraphim.db-shm"]),
    );
    for (const f of files) expect(mode(f), f).toBe("600");
    expect(mode(join(d, "sqlite"))).toBe("700");
    await op.close();
  });

  it("fs: value files 0600, folders 0700", async () => {
    const d = tempDir();
    const op = await createOperator("fs", { root: join(d, "fs") });
    await op.write("a/b/k.json", "{}");
    await op.write("top.json", "{}");
    for (const f of [join(d, "fs"), ...walk(join(d, "fs"))]) {
      expect(mode(f), f).toBe(statSync(f).isDirectory() ? "700" : "600");
    }
    await op.close();
  });

  it("redb: the database file and the folder created for it", async () => {
    const d = tempDir();
    const op = await createOperator("redb", { datadir: join(d, "new", "store.redb"), table: "t" });
    await op.write("k.json", "{}");
    await op.close();
    expect(mode(join(d, "new", "store.redb")), "redb file").toBe("600");
    expect(mode(join(d, "new")), "folder created for it").toBe("700");
  });

  it("sled: every file in its folder, and the folder", async () => {
    const d = tempDir();
    const op = await createOperator("sled", { datadir: join(d, "sled") });
    await op.write("k.json", "{}");
    await op.close();
    expect(mode(join(d, "sled")), "sled folder").toBe("700");
    for (const f of walk(join(d, "sled"))) {
      if (!statSync(f).isDirectory()) expect(mode(f), f).toBe("600");
    }
  });

  it("the default settings file written on first run", async () => {
    const d = tempDir();
    const dir = join(d, "config");
    await loadSettings({ path: dir, env: { HOME: d, TERRAPHIM_DATA_PATH: join(d, "data") } });
    expect(mode(join(dir, "settings.toml"))).toBe("600");
    expect(mode(dir)).toBe("700");
  });
});

// ---------------------------------------------------------------- settings warnings

describe("a world-readable settings file holding secrets is warned about", () => {
  const SECRET = "Settings-Secret-Value-7q7q";
  const file = (modeBits: number, secretLine: string) => {
    const d = tempDir();
    const f = join(d, "settings.toml");
    writeFileSync(
      f,
      // The secret sits in a memory profile (which ignores it), so that opening these settings needs no server.
      `[profiles.memory]\ntype = "memory"\n${secretLine}\n`,
    );
    chmodSync(f, modeBits);
    return f;
  };

  it("0644 with a secret in clear: a warning naming the file and the fix, not the secret", async () => {
    const f = file(0o644, `secret_access_key = "${SECRET}"`);
    const s = await loadSettings({ path: f, env: {} });
    expect(s.warnings).toHaveLength(1);
    expect(s.warnings![0]).toContain(f);
    expect(s.warnings![0]).toMatch(/chmod 600/);
    expect(s.warnings![0]).not.toContain(SECRET);
  });

  it("no warning for 0600, nor for a secret given as a $VAR reference", async () => {
    expect((await loadSettings({ path: file(0o600, `secret_access_key = "${SECRET}"`), env: {} })).warnings).toEqual(
      [],
    );
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a settings reference, not a template
    const ref = file(0o644, 'secret_access_key = "${S3_SECRET:-}"');
    expect((await loadSettings({ path: ref, env: { S3_SECRET: SECRET } })).warnings).toEqual([]);
    expect(readFileSync(ref, "utf8")).not.toContain(SECRET);
  });

  describe("DeviceStorage.instance() passes the warning on to its logger", () => {
    const saved = { path: process.env.TERRAPHIM_SETTINGS_PATH, log: process.env.TERRAPHIM_LOG };
    afterEach(async () => {
      await DeviceStorage.resetInstance();
      for (const [k, v] of [
        ["TERRAPHIM_SETTINGS_PATH", saved.path],
        ["TERRAPHIM_LOG", saved.log],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });

    it("a user of the singleton sees the warning on stderr", async () => {
      process.env.TERRAPHIM_SETTINGS_PATH = file(0o644, `secret_access_key = "${SECRET}"`);
      process.env.TERRAPHIM_LOG = "warn";
      const out: string[] = [];
      const write = process.stderr.write.bind(process.stderr);
      process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
        out.push(String(chunk));
        return write(chunk, ...rest);
      }) as typeof process.stderr.write;
      try {
        await DeviceStorage.instance();
      } finally {
        process.stderr.write = write;
      }
      const text = out.join("");
      expect(text).toMatch(/readable by every user/);
      expect(text).not.toContain(SECRET);
    });
  });
});
