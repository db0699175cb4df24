/**
 * `doctor` on broken settings: malformed TOML (exit 1, with the line), and a
 * file whose profiles fail in every way doctor knows, each explained with its fix.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createPgTable,
  freePort,
  type PgTable,
  POSTGRES,
  portAnswers,
  psql,
  type S3rverInstance,
  s3Options,
  startS3rver,
} from "../helpers/servers.js";
import { type CliEnv, cli, cliEnv, ensureBuilt, json, ROOT, s3Profile } from "./_helpers.js";

interface Finding {
  subject: string;
  ok: boolean;
  summary: string;
  fix?: string;
  detail?: string;
  needs?: { module: string; source: string; installed: boolean; install?: string }[];
}

let s3: S3rverInstance;
let t: CliEnv;
const run = (...args: string[]) => cli(args, { env: t.env });

beforeAll(async () => {
  [s3] = await Promise.all([startS3rver(), ensureBuilt()]);
  t = cliEnv();
}, 120_000);

afterAll(async () => {
  await s3?.stop();
  t?.cleanup();
});

describe("doctor", () => {
  it("passes on working settings", async () => {
    t.writeSettings(`
[profiles.memory]
type = "memory"

[profiles.sqlite]
type = "sqlite"
datadir = "${t.dataDir}/ok-sqlite"

${s3Profile("s3", s3Options(s3))}
`);
    const r = await run("doctor");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/everything works/);
    expect(r.stdout).toMatch(/ok {4}s3 \(s3\): write, read, list and delete work/);
  });

  it("lists what each profile needs on this runtime, and the runtime's own SQLite and zstd", async () => {
    t.writeSettings(`
[profiles.memory]
type = "memory"

[profiles.sqlite]
type = "sqlite"
datadir = "${t.dataDir}/needs-sqlite"

[profiles.redb]
type = "redb"
datadir = "${t.dataDir}/needs.redb"
table = "t"
`);
    const r = await run("doctor", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const findings = json<{ findings: Finding[] }>(r).findings;
    const of = (subject: string) => findings.find((f) => f.subject === subject);
    expect(of("memory")?.needs).toEqual([]);
    expect(of("sqlite")?.needs).toEqual([
      { module: expect.stringMatching(/^(node|bun):sqlite$/), source: "runtime", installed: true },
    ]);
    // opendal is a dev dependency here, so installed; the command is what a user without it runs.
    expect(of("redb")?.needs).toEqual([
      {
        module: "opendal",
        source: "optional peer",
        installed: true,
        version: "0.49.1",
        install: "npm install opendal@0.49.1",
      },
    ]);
    expect(of("runtime")).toMatchObject({ ok: true });
    expect(of("runtime")?.summary).toMatch(/: sqlite on (node|bun):sqlite \(runtime\), zstd on node:zlib \(runtime\)$/);
    const text = await run("doctor");
    expect(text.stdout).toMatch(/needs: opendal@0\.49\.1 \(optional peer\)/);
  });

  it("reads a profile's storage options as storage does: quota, retries and ttl_ms work, a bad one is named", async () => {
    t.writeSettings(`
[profiles.limited]
type = "sqlite"
datadir = "${t.dataDir}/limited-sqlite"
max_size = "1MiB"
max_items = "100"
quota_policy = "lru"
retries = "2"
ttl_ms = "60000"
timeout_ms = "5000"

[profiles.badpolicy]
type = "memory"
quota_policy = "fifo"

[profiles.badsize]
type = "fs"
root = "${t.dataDir}/badsize-fs"
max_size = "lots"
`);
    const r = await run("doctor", "--json");
    expect(r.code, r.stderr).toBe(1);
    const findings = json<{ findings: Finding[] }>(r).findings;
    const f = (subject: string) => findings.find((x) => x.subject === subject);
    expect(f("limited"), JSON.stringify(findings)).toMatchObject({ ok: true });
    expect(f("badpolicy")).toMatchObject({
      ok: false,
      summary: 'profiles.badpolicy.quota_policy: expected "lru" or "reject", got "fifo"',
    });
    expect(f("badpolicy")?.fix).toMatch(/profiles\.badpolicy\.quota_policy/);
    expect(f("badsize")).toMatchObject({ ok: false, summary: expect.stringMatching(/^profiles\.badsize\.max_size: /) });
  });

  it("reports malformed TOML with its line and exits 1", async () => {
    t.writeSettings(`[profiles.memory]\ntype = "memory"\n\n[profiles.sqlite\ntype = "sqlite"\n`);
    const r = await run("doctor");
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/not valid TOML: line 4/);
    expect(r.stdout).toMatch(/fix: correct line 4/);
    const j = json<{ ok: boolean; findings: Finding[] }>(await run("doctor", "--json"));
    expect(j.ok).toBe(false);
    expect(j.findings[0]).toMatchObject({ subject: "settings", ok: false });
    // Other commands fail on it too, with the line.
    const p = await run("profiles");
    expect(p.code).toBe(1);
    expect(p.stderr).toMatch(/line 4/);
  });

  it("explains each broken profile and the fix", async () => {
    const deadPort = await freePort();
    const notADir = join(t.dataDir, "a-file");
    writeFileSync(notADir, "");
    const lockedFile = join(t.dataDir, "locked.redb");
    const pgUp = await portAnswers(POSTGRES.host, POSTGRES.port);
    if (!pgUp) console.warn("\n!!! doctor test: PostgreSQL is not running: the missing-table case did not run !!!\n");
    let table: PgTable | undefined;
    let holder: ChildProcess | undefined;
    try {
      if (pgUp) {
        table = await createPgTable();
        // A table OpenDAL (and so the Rust crate) cannot read: values as TEXT.
        await psql(`CREATE TABLE ${table.table}_text (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      }
      // Another process holds the redb file.
      holder = spawn(
        process.execPath,
        [
          "-e",
          `const { Operator } = require("opendal");
           const op = new Operator("redb", { datadir: ${JSON.stringify(lockedFile)}, table: "t" });
           op.write("k", "v").then(() => console.log("held"));
           setInterval(() => {}, 1000);`,
        ],
        { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
      );
      await new Promise((resolve, reject) => {
        holder?.stdout?.once("data", resolve);
        holder?.once("exit", () => reject(new Error("the redb holder process exited")));
      });

      t.writeSettings(`
[profiles.memory]
type = "memory"

[profiles.typo]
type = "reddis"

[profiles.deadredis]
type = "redis"
endpoint = "tcp://127.0.0.1:${deadPort}"

[profiles.badcreds]
type = "s3"
bucket = "${s3.bucket}"
endpoint = "${s3.endpoint}"
region = "us-east-1"
access_key_id = "NOT-THE-KEY"
secret_access_key = "whatever-secret"
delete_max_size = "1"

[profiles.nobucket]
type = "s3"
bucket = "no-such-bucket"
endpoint = "${s3.endpoint}"
region = "us-east-1"
access_key_id = "S3RVER"
secret_access_key = "S3RVER"

[profiles.s3down]
type = "s3"
bucket = "b"
endpoint = "http://127.0.0.1:${deadPort}"
region = "us-east-1"
access_key_id = "S3RVER"
secret_access_key = "S3RVER"
timeout_ms = "1500"

[profiles.unwritable]
type = "sqlite"
datadir = "${notADir}/sqlite"

[profiles.locked]
type = "redb"
datadir = "${lockedFile}"
table = "t"

[profiles.unset]
type = "s3"
bucket = "\${TP_DOCTOR_UNSET_BUCKET}"

${
  table
    ? `[profiles.pgmissing]
type = "postgresql"
connection_string = "${table.connectionString}"
table = "${table.table}_missing"

[profiles.pgtext]
type = "postgresql"
connection_string = "${table.connectionString}"
table = "${table.table}_text"
`
    : ""
}`);
      const r = await run("doctor", "--json");
      expect(r.code, r.stderr).toBe(1);
      const findings = json<{ findings: Finding[] }>(r).findings;
      const f = (subject: string) => {
        const found = findings.find((x) => x.subject === subject);
        if (!found) throw new Error(`no finding for ${subject}: ${JSON.stringify(findings)}`);
        return found;
      };
      expect(f("memory").ok).toBe(true);
      expect(f("typo")).toMatchObject({ ok: false, summary: 'unknown storage scheme "reddis"' });
      expect(f("typo").fix).toMatch(/did you mean "redis"/);
      expect(f("deadredis").summary).toMatch(
        new RegExp(`connection refused: nothing is listening at 127.0.0.1:${deadPort}`),
      );
      expect(f("deadredis").fix).toMatch(/start the redis server/);
      expect(f("badcreds").summary).toMatch(/refused the credentials.*403/);
      expect(f("badcreds").fix).toMatch(/access_key_id/);
      expect(f("s3down").summary).toBe(`connection refused: nothing is listening at 127.0.0.1:${deadPort}`);
      expect(f("nobucket").summary).toMatch(/bucket "no-such-bucket" does not exist/);
      expect(f("unwritable").summary).toMatch(/not writable/);
      expect(f("unwritable").fix).toMatch(/datadir/);
      expect(f("locked").summary).toMatch(/locked by another process/);
      expect(f("locked").fix).toMatch(/stop the other process/);
      expect(f("unset").summary).toMatch(/TP_DOCTOR_UNSET_BUCKET, which is not set/);
      expect(f("unset").fix).toMatch(/\$\{TP_DOCTOR_UNSET_BUCKET:-<value>\}/);
      if (table) {
        // The native postgresql driver creates a missing table in OpenDAL's layout (README): it works.
        expect(f("pgmissing").ok).toBe(true);
        expect(f("pgtext").ok).toBe(false);
        expect(`${f("pgtext").summary} ${f("pgtext").detail ?? ""}`).toMatch(/_text.*bytea|bytea.*_text/i);
      }

      const text = await run("doctor");
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(/FAIL {2}typo \(reddis\): unknown storage scheme/);
      expect(text.stdout).toMatch(/problems found/);
    } finally {
      holder?.kill("SIGKILL");
      if (table) await psql(`DROP TABLE IF EXISTS ${table.table}_missing, ${table.table}_text`);
      await table?.drop();
    }
  }, 60_000);
});
