// biome-ignore-all lint/suspicious/noTemplateCurlyInString: settings values use shell-style ${VAR} references
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { redactSecrets, SettingsError } from "../src/errors.js";
import { platformSettingsDir } from "../src/settings/_paths.js";
import {
  DEFAULT_SETTINGS_TOML,
  type DeviceSettings,
  defaultSettings,
  loadSettings,
  memoryOnlySettings,
  parseSettings,
  resolveSettingsFile,
  toToml,
} from "../src/settings/index.js";

const COMPAT = new URL("../../shared/compat/rust-settings/", import.meta.url).pathname;
const posix = process.platform !== "win32";

let dir: string;
let home: string;
/** A clean environment: tests never see the real HOME, config folder or TERRAPHIM_* variables. */
let env: Record<string, string | undefined>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "terraphim-settings-"));
  home = join(dir, "home");
  await mkdir(home);
  env = { HOME: home, XDG_CONFIG_HOME: join(home, ".config") };
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Copies a Rust settings file into a fresh folder (tests never read shared/ in place). */
async function compatFolder(name: string): Promise<string> {
  const folder = join(dir, `cfg-${name}`);
  await mkdir(folder);
  await copyFile(join(COMPAT, name), join(folder, "settings.toml"));
  return folder;
}

function parse(toml: string, extraEnv: Record<string, string | undefined> = {}): DeviceSettings {
  return parseSettings(toml, { env: { ...env, ...extraEnv } });
}

describe("Rust settings files (compat/rust-settings)", () => {
  it("settings.toml: a sqlite profile under ~/.terraphim", async () => {
    const folder = await compatFolder("settings.toml");
    const s = await loadSettings({ path: folder, env });
    expect(s.source).toBe(join(folder, "settings.toml"));
    expect(s.serverHostname).toBe("127.0.0.1:8000");
    expect(s.apiEndpoint).toBe("http://localhost:8000/api");
    expect(s.initialized).toBe(false);
    expect(s.defaultDataPath).toBe(`${home}/.terraphim`);
    expect(s.profiles).toEqual({
      sqlite: {
        type: "sqlite",
        datadir: `${home}/.terraphim/sqlite`,
        connection_string: `${home}/.terraphim/sqlite/terraphim.db`,
        table: "terraphim_kv",
      },
    });
    expect(s.profileErrors).toEqual({});
    expect(s.warnings).toEqual([]);
  });

  it("settings.toml follows TERRAPHIM_DATA_PATH and TERRAPHIM_INITIALIZED", async () => {
    const folder = await compatFolder("settings.toml");
    const s = await loadSettings({
      path: folder,
      env: { ...env, TERRAPHIM_DATA_PATH: "/srv/terraphim", TERRAPHIM_INITIALIZED: "true" },
    });
    expect(s.initialized).toBe(true);
    expect(s.defaultDataPath).toBe("/srv/terraphim");
    expect(s.profiles.sqlite?.connection_string).toBe("/srv/terraphim/sqlite/terraphim.db");
  });

  it("settings_full.toml without credentials: s3 and atomicserver fail on their own, the rest load", async () => {
    const folder = await compatFolder("settings_full.toml");
    const s = await loadSettings({ path: folder, env });
    expect(Object.keys(s.profiles).sort()).toEqual(["dashmap", "redb", "sled", "sqlite"]);
    expect(s.profiles.redb).toEqual({
      type: "redb",
      datadir: "/tmp/terraphim_redb/terraphim.redb",
      table: "terraphim",
    });

    const s3 = s.profileErrors?.s3;
    expect(s3).toBeInstanceOf(SettingsError);
    expect(s3?.code).toBe("E_SETTINGS");
    expect(s3?.profile).toBe("s3");
    expect(s3?.message).toContain("profiles.s3.access_key_id");
    expect(s3?.message).toContain("AWS_ACCESS_KEY_ID is not set and has no default");
    expect(s3?.message).toContain("AWS_SECRET_ACCESS_KEY is not set and has no default");
    expect(s3?.message).toContain(join(folder, "settings.toml"));

    const atomic = s.profileErrors?.atomicserver;
    expect(atomic?.profile).toBe("atomicserver");
    expect(atomic?.message).toContain("profiles.atomicserver.endpoint");
    expect(atomic?.message).toContain("TERRAPHIM_PROFILE_ATOMICSERVER is not set and has no default");
    expect(Object.keys(s.profileErrors ?? {}).sort()).toEqual(["atomicserver", "s3"]);
  });

  it("settings_full.toml with credentials: s3 resolves with defaults, atomicserver is returned as written", async () => {
    const folder = await compatFolder("settings_full.toml");
    const s = await loadSettings({
      path: folder,
      env: {
        ...env,
        AWS_ACCESS_KEY_ID: "AKIAEXAMPLE",
        AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
        TERRAPHIM_PROFILE_ATOMICSERVER: "http://localhost:9883",
        TERRAPHIM_PROFILE_ATOMICSERVER_PRIVATE_KEY: "atomic-private-key-value",
        TERRAPHIM_PROFILE_ATOMICSERVER_PUBLIC_KEY: "atomic-public-key-value",
      },
    });
    expect(s.profileErrors).toEqual({});
    expect(s.profiles.s3).toEqual({
      type: "s3",
      bucket: "test",
      region: "us-east-1",
      endpoint: "http://rpi4node3:8333/",
      access_key_id: "AKIAEXAMPLE",
      secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
    });
    // Unsupported schemes are passed through untouched: the storage layer reports them, never substitutes memory.
    expect(s.profiles.atomicserver).toEqual({
      type: "atomicserver",
      endpoint: "http://localhost:9883",
      private_key: "atomic-private-key-value",
      public_key: "atomic-public-key-value",
      parent_resource_id: "http://localhost:9883",
    });
    expect(redactSecrets("key wJalrXUtnFEMI/K7MDENG/bPxRfiCY and atomic-private-key-value")).toBe("key *** and ***");
  });

  it("settings_full.toml: TERRAPHIM_PROFILE_S3_REGION works through the ${...} default and as an override", async () => {
    const folder = await compatFolder("settings_full.toml");
    const s = await loadSettings({
      path: folder,
      env: { ...env, TERRAPHIM_PROFILE_S3_REGION: "eu-west-2", AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b" },
    });
    expect(s.profiles.s3?.region).toBe("eu-west-2");
  });

  it("settings_local.toml and settings_local_dev.toml", async () => {
    const local = await loadSettings({
      path: join(await compatFolder("settings_local.toml"), "settings.toml"),
      env: { ...env, TERRAPHIM_SERVER_HOSTNAME: "0.0.0.0:9000" },
    });
    expect(local.serverHostname).toBe("0.0.0.0:9000");
    expect(local.apiEndpoint).toBe("http://localhost:8000/api");
    expect(local.profiles).toEqual({
      sled: { type: "sled", datadir: "/tmp/opendal/sled" },
      dash: { type: "dashmap", root: "/tmp/dashmaptest" },
    });

    const dev = await loadSettings({ path: await compatFolder("settings_local_dev.toml"), env });
    expect(Object.keys(dev.profiles)).toEqual(["dashmap", "sqlite"]);
    expect(dev.profiles.sqlite).toEqual({
      type: "sqlite",
      datadir: "/tmp/terraphim_sqlite",
      connection_string: "/tmp/terraphim_sqlite/terraphim.db",
      table: "terraphim_kv",
    });
  });
});

describe("expansion", () => {
  const profile = (values: string, extraEnv: Record<string, string | undefined> = {}) =>
    parse(`[profiles.p]\ntype = "fs"\n${values}`, extraEnv);

  it("expands ~ at the start only", () => {
    const s = profile('a = "~"\nb = "~/data"\nc = "x~/y"\nd = "~user/x"');
    expect(s.profiles.p).toMatchObject({ a: home, b: `${home}/data`, c: "x~/y", d: "~user/x" });
  });

  it("expands ${VAR}, ${VAR:-default} and $VAR", () => {
    const s = profile(
      [
        'a = "${ROOT}/x"',
        'b = "${MISSING:-fallback}"',
        'c = "${MISSING:-~/.cache}/t"',
        'd = "${MISSING:-}"',
        'e = "$ROOT/y"',
        'f = "${EMPTY:-used-when-empty}"',
        'g = "${EMPTY}"',
        'h = "${MISSING:-${ROOT}/nested}"',
        'i = "${ROOT:-unused}"',
      ].join("\n"),
      { ROOT: "/r", EMPTY: "" },
    );
    expect(s.profiles.p).toMatchObject({
      a: "/r/x",
      b: "fallback",
      c: `${home}/.cache/t`,
      d: "",
      e: "/r/y",
      f: "used-when-empty",
      g: "",
      h: "/r/nested",
      i: "/r",
    });
  });

  it("keeps text that is not a variable reference", () => {
    const s = profile('a = "cost: 5$"\nb = "a$-b"\nc = "${unclosed"\nd = "${A:?x}"');
    expect(s.profiles.p).toMatchObject({ a: "cost: 5$", b: "a$-b", c: "${unclosed", d: "${A:?x}" });
  });

  it("an unset bare $VAR is a per-profile error too", () => {
    const s = profile('root = "$NOPE/x"');
    expect(s.profiles.p).toBeUndefined();
    expect(s.profileErrors?.p?.message).toBe(
      "profiles.p.root: environment variable NOPE is not set and has no default",
    );
  });

  it("an unset top-level variable throws, naming field and variable", () => {
    expect(() => parse('default_data_path = "${DATA_HOME}/t"')).toThrow(
      "default_data_path: environment variable DATA_HOME is not set and has no default",
    );
  });

  it("uses HOME from the given env", () => {
    const s = parseSettings('default_data_path = "~/d"', { env: { HOME: "/somewhere/else" } });
    expect(s.defaultDataPath).toBe("/somewhere/else/d");
  });
});

describe("environment overrides", () => {
  const toml = `
[profiles.sqlite]
type = "sqlite"
datadir = "/tmp/db"
table = "terraphim_kv"

[profiles.s3]
type = "s3"
bucket = "b"
secret_access_key = "\${AWS_SECRET_ACCESS_KEY}"

[profiles.s3_backup]
type = "s3"
bucket = "backup"
`;

  it("TERRAPHIM_PROFILE_SQLITE_TABLE overrides a profile key", () => {
    const s = parse(toml, { TERRAPHIM_PROFILE_SQLITE_TABLE: "other_kv", AWS_SECRET_ACCESS_KEY: "x" });
    expect(s.profiles.sqlite?.table).toBe("other_kv");
  });

  it("adds keys (lowercased) and matches the longest profile name first", () => {
    const s = parse(toml, {
      AWS_SECRET_ACCESS_KEY: "x",
      TERRAPHIM_PROFILE_S3_BACKUP_REGION: "eu-central-1",
      TERRAPHIM_PROFILE_S3_TIMEOUT_MS: "2500",
      TERRAPHIM_PROFILE_SQLITE_SPEED: "1",
    });
    expect(s.profiles.s3_backup?.region).toBe("eu-central-1");
    expect(s.profiles.s3?.region).toBeUndefined();
    expect(s.profiles.s3?.timeout_ms).toBe("2500");
    expect(s.profiles.sqlite?.speed).toBe("1");
  });

  it("an override replaces an unresolvable ${VAR}, and its value is taken literally", () => {
    const s = parse(toml, { TERRAPHIM_PROFILE_S3_SECRET_ACCESS_KEY: "pa$$w0rd${X}" });
    expect(s.profileErrors).toEqual({});
    expect(s.profiles.s3?.secret_access_key).toBe("pa$$w0rd${X}");
  });

  it("creates a profile only when the override sets TYPE; otherwise warns", () => {
    const s = parse(toml, {
      AWS_SECRET_ACCESS_KEY: "x",
      TERRAPHIM_PROFILE_CACHE_TYPE: "memory",
      TERRAPHIM_PROFILE_CACHE_SPEED: "0",
      TERRAPHIM_PROFILE_REDIS_ENDPOINT: "tcp://127.0.0.1:6379",
      TERRAPHIM_PROFILE_ATOMICSERVER: "http://ignored", // no <KEY>: a plain variable, not an override
    });
    expect(s.profiles.cache).toEqual({ type: "memory", speed: "0" });
    expect(s.profiles.redis).toBeUndefined();
    expect(s.warnings).toHaveLength(1);
    expect(s.warnings?.[0]).toContain("TERRAPHIM_PROFILE_REDIS_ENDPOINT matches no profile");
  });

  it("overrides top-level fields", () => {
    const s = parse(toml, {
      AWS_SECRET_ACCESS_KEY: "x",
      TERRAPHIM_SERVER_HOSTNAME: "0.0.0.0:1",
      TERRAPHIM_API_ENDPOINT: "http://api/",
      TERRAPHIM_INITIALIZED: "TRUE",
      TERRAPHIM_DEFAULT_DATA_PATH: "~/data",
    });
    expect(s).toMatchObject({
      serverHostname: "0.0.0.0:1",
      apiEndpoint: "http://api/",
      initialized: true,
      defaultDataPath: `${home}/data`,
    });
  });

  it("a bad TERRAPHIM_INITIALIZED is a SettingsError naming the variable", () => {
    expect(() => parse("", { TERRAPHIM_INITIALIZED: "yes" })).toThrow(
      'TERRAPHIM_INITIALIZED: expected true or false, got "yes"',
    );
  });
});

describe("validation", () => {
  it("malformed TOML: SettingsError with the file, line and column", async () => {
    const file = join(dir, "settings.toml");
    await writeFile(file, 'server_hostname = "a"\n[profiles.s3\ntype = "s3"\n');
    const err = await loadSettings({ path: file, env }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SettingsError);
    expect((err as SettingsError).code).toBe("E_SETTINGS");
    expect((err as SettingsError).message).toMatch(/^Invalid TOML in .*settings\.toml at line 2, column \d+: /);
    expect((err as SettingsError).message).toContain(file);
  });

  it("a malformed file's excerpt in the cause has its credentials scrubbed", () => {
    let err: unknown;
    try {
      parse('password = "hunter2hunter2"\nbad = \n');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SettingsError);
    const cause = (err as SettingsError).cause as { message: string; codeblock: string };
    expect(cause.message).toContain("bad = "); // smol-toml's excerpt is kept...
    expect(cause.message).not.toContain("hunter2hunter2"); // ...without the credential
    expect(cause.codeblock).not.toContain("hunter2hunter2");
  });

  it("wrong-typed top-level values throw with the field name", () => {
    expect(() => parse("server_hostname = [1, 2]")).toThrow("server_hostname: expected a string, got an array");
    expect(() => parse('initialized = "maybe"')).toThrow('initialized: expected true or false, got "maybe"');
    expect(() => parse('profiles = "none"')).toThrow("profiles: expected a table of profiles, got a string");
  });

  it("wrong-typed profile values fail that profile only, with a path-qualified message", () => {
    const s = parse(`
[profiles.s3]
type = "s3"
bucket = ["a", "b"]
tags = { a = "b" }

[profiles.redis]
type = "redis"
db = 3
tls = false
`);
    expect(s.profileErrors?.s3?.message).toBe(
      "profiles.s3.bucket: expected a string, got an array; profiles.s3.tags: expected a string, got a table",
    );
    expect(s.profiles.redis).toEqual({ type: "redis", db: "3", tls: "false" });
  });

  it("a profile without type, or that is not a table, fails on its own", () => {
    const s = parse('[profiles]\nbad = "x"\n\n[profiles.notype]\nroot = "/x"\n\n[profiles.ok]\ntype = "memory"\n');
    expect(s.profileErrors?.notype?.message).toContain("profiles.notype.type: required");
    expect(s.profileErrors?.bad?.message).toBe("profiles.bad: expected a table, got a string");
    expect(Object.keys(s.profiles)).toEqual(["ok"]);
  });

  it("rejects __proto__ keys instead of touching object prototypes", () => {
    expect(() => parse('[profiles.__proto__]\ntype = "memory"\n')).toThrow(/unsafe property/);
  });

  it("quotes profile names that are not bare TOML keys", () => {
    const s = parse('[profiles."my.store"]\nroot = "/x"\n');
    expect(s.profileErrors?.["my.store"]?.message).toContain('profiles."my.store".type: required');
  });

  it("missing top-level fields take their defaults; initialized accepts a boolean", () => {
    const s = parse("initialized = true\n");
    expect(s).toMatchObject({
      serverHostname: "127.0.0.1:8000",
      apiEndpoint: "http://localhost:8000/api",
      initialized: true,
      defaultDataPath: `${home}/.terraphim`,
      profiles: {},
    });
  });
});

describe("settings file location and first run", () => {
  it("first run writes a default settings.toml (mode 0600) that parses back to the same settings", async () => {
    const s = await loadSettings({ env });
    const file = join(home, ".config", "terraphim", "settings.toml");
    expect(s.source).toBe(file);
    expect(await readFile(file, "utf8")).toBe(DEFAULT_SETTINGS_TOML);
    if (posix) expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(join(home, ".config", "terraphim"))).toEqual(["settings.toml"]); // no temp file left

    expect(parseSettings(await readFile(file, "utf8"), { env, source: file })).toEqual(s);
    expect(await loadSettings({ env })).toEqual(s);
    const { source: _source, ...withoutSource } = s;
    expect(withoutSource).toEqual(defaultSettings(`${home}/.terraphim`));
    expect(Object.keys(s.profiles)).toEqual(["memory", "sqlite"]);
  });

  it("writeDefault: false returns the defaults without writing", async () => {
    const s = await loadSettings({ env, writeDefault: false });
    expect(s.source).toBeUndefined();
    expect(s.profiles.sqlite?.connection_string).toBe(`${home}/.terraphim/sqlite/terraphim.db`);
    await expect(stat(join(home, ".config"))).rejects.toThrow();
  });

  it("TERRAPHIM_SETTINGS_PATH names the settings folder", async () => {
    const folder = await compatFolder("settings_local.toml");
    const s = await loadSettings({ env: { ...env, TERRAPHIM_SETTINGS_PATH: folder } });
    expect(s.source).toBe(join(folder, "settings.toml"));
    expect(Object.keys(s.profiles)).toEqual(["sled", "dash"]);

    // A folder that does not exist yet gets the default file.
    const fresh = join(dir, "fresh", "cfg");
    const d = await loadSettings({ env: { ...env, TERRAPHIM_SETTINGS_PATH: fresh } });
    expect(d.source).toBe(join(fresh, "settings.toml"));
    expect(await readFile(join(fresh, "settings.toml"), "utf8")).toBe(DEFAULT_SETTINGS_TOML);
  });

  it("the path option wins over TERRAPHIM_SETTINGS_PATH and may name a file", async () => {
    const file = join(dir, "custom.toml");
    await writeFile(file, '[profiles.m]\ntype = "memory"\n');
    const s = await loadSettings({ path: file, env: { ...env, TERRAPHIM_SETTINGS_PATH: join(dir, "unused") } });
    expect(s.source).toBe(file);
    expect(s.profiles).toEqual({ m: { type: "memory" } });
    expect(await resolveSettingsFile({ path: join(dir, "new.toml"), env })).toBe(join(dir, "new.toml"));
    expect(await resolveSettingsFile({ path: "~/cfg", env })).toBe(join(home, "cfg", "settings.toml"));
  });

  it("platform folders match the Rust crate's (directories::ProjectDirs)", () => {
    expect(platformSettingsDir({ HOME: "/h" }, "linux")).toBe("/h/.config/terraphim");
    expect(platformSettingsDir({ HOME: "/h", XDG_CONFIG_HOME: "/x" }, "linux")).toBe("/x/terraphim");
    expect(platformSettingsDir({ HOME: "/h", XDG_CONFIG_HOME: "relative" }, "linux")).toBe("/h/.config/terraphim");
    expect(platformSettingsDir({ HOME: "/Users/u" }, "darwin")).toBe(
      "/Users/u/Library/Application Support/com.aks.terraphim",
    );
    expect(platformSettingsDir({ APPDATA: "C:\\Users\\u\\AppData\\Roaming" }, "win32")).toBe(
      "C:\\Users\\u\\AppData\\Roaming\\aks\\terraphim\\config",
    );
  });
});

describe("secrets", () => {
  it("registers secret values and URL passwords so redactSecrets scrubs them", () => {
    const s = parse(
      `
[profiles.s3]
type = "s3"
secret_access_key = "\${S3_SECRET}"
session_token = "tok-3f9a8b7c6d"

[profiles.pg]
type = "postgresql"
connection_string = "postgresql://app:p%40ssW0rd-xyz@db.internal:5432/test"

[profiles.redis]
type = "redis"
endpoint = "redis://:r3disPassw0rd@127.0.0.1:6379"
`,
      { S3_SECRET: "s3-secret-9f8e7d6c" },
    );
    expect(s.profiles.s3?.secret_access_key).toBe("s3-secret-9f8e7d6c");
    const text = "got s3-secret-9f8e7d6c, tok-3f9a8b7c6d, p@ssW0rd-xyz, p%40ssW0rd-xyz and r3disPassw0rd";
    const scrubbed = redactSecrets(text);
    for (const secret of ["s3-secret-9f8e7d6c", "tok-3f9a8b7c6d", "p@ssW0rd-xyz", "p%40ssW0rd-xyz", "r3disPassw0rd"]) {
      expect(scrubbed).not.toContain(secret);
    }
  });

  it.runIf(posix)("warns when a world-readable file holds credentials in clear", async () => {
    const file = join(dir, "settings.toml");
    await writeFile(file, '[profiles.s3]\ntype = "s3"\nsecret_access_key = "in-clear-secret-1"\n');
    await chmod(file, 0o644);
    const loose = await loadSettings({ path: file, env });
    expect(loose.warnings).toHaveLength(1);
    expect(loose.warnings?.[0]).toContain("readable by every user");
    expect(loose.warnings?.[0]).not.toContain("in-clear-secret-1");

    await chmod(file, 0o600);
    expect((await loadSettings({ path: file, env })).warnings).toEqual([]);

    // A ${VAR} reference is not a secret in the file.
    await writeFile(file, '[profiles.s3]\ntype = "s3"\nsecret_access_key = "${AWS_SECRET_ACCESS_KEY}"\n');
    await chmod(file, 0o644);
    expect((await loadSettings({ path: file, env: { ...env, AWS_SECRET_ACCESS_KEY: "k" } })).warnings).toEqual([]);
  });
});

describe("toToml and built-in settings", () => {
  it("writes the Rust field names and reads back to the same settings", () => {
    const s = parse(roundTripToml(), { AWS_SECRET_ACCESS_KEY: "x" });
    const text = toToml(s);
    expect(text).toContain('server_hostname = "127.0.0.1:8000"');
    expect(text).toContain("initialized = false");
    expect(text).toContain('default_data_path = "');
    expect(text).toMatch(/\[profiles\.sqlite\]\ntype = "sqlite"\n/);
    expect(parseSettings(text, { env })).toEqual(s);
  });

  it("defaultSettings and memoryOnlySettings", () => {
    expect(defaultSettings("/data/").profiles.sqlite).toEqual({
      type: "sqlite",
      datadir: "/data/sqlite",
      connection_string: "/data/sqlite/terraphim.db",
      table: "terraphim_kv",
    });
    expect(defaultSettings("/data").profiles.memory).toEqual({ type: "memory" });
    const m = memoryOnlySettings();
    expect(m.profiles).toEqual({ memory: { type: "memory" } });
    expect(m.initialized).toBe(true);
  });
});

function roundTripToml(): string {
  return `
server_hostname = "127.0.0.1:8000"
api_endpoint = "http://localhost:8000/api"
initialized = false
default_data_path = "/var/t"

[profiles.sqlite]
table = "kv"
type = "sqlite"
datadir = "/var/t/sqlite"

[profiles."with.dot"]
type = "memory"
`;
}
