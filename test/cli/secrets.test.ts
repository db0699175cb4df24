/**
 * No command prints a secret: every command (text and --json, success and
 * failure, debug logging on) runs on settings holding an S3 secret, a
 * PostgreSQL password in a connection string and a Redis password, and no
 * stdout or stderr may contain any of them.
 */
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
import { type CliEnv, type CliResult, cli, cliEnv, ensureBuilt } from "./_helpers.js";

const S3_SECRET = "s3SecretValue-Qm9vYmFyYmF6-2026";
const S3_BAD_SECRET = "s3OtherSecret-ZmFrZWtleQ-9876";
const PG_PASSWORD = "pgPassw0rd-Sup3rHidden";
const REDIS_PASSWORD = "redisPassw0rd-N0tShown";
const SECRETS = [S3_SECRET, S3_BAD_SECRET, PG_PASSWORD, REDIS_PASSWORD];

let s3: S3rverInstance;
let t: CliEnv;
let table: PgTable | undefined;

beforeAll(async () => {
  [s3] = await Promise.all([startS3rver(), ensureBuilt()]);
  if (await portAnswers(POSTGRES.host, POSTGRES.port)) table = await createPgTable();
  else console.warn("\n!!! secrets test: PostgreSQL is not running: the pg profile is only a failing one !!!\n");
  const deadPort = await freePort();
  t = cliEnv();
  // Trust auth ignores the password, so with a server the pg profile works; without one it fails. Either way it must not show.
  const pgUrl = `postgresql://postgres:${PG_PASSWORD}@${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`;
  t.writeSettings(`
[profiles.memory]
type = "memory"

[profiles.s3]
type = "s3"
bucket = "${s3.bucket}"
endpoint = "${s3.endpoint}"
region = "us-east-1"
access_key_id = "S3RVER"
secret_access_key = "${S3_SECRET}"
delete_max_size = "1"

[profiles.s3bad]
type = "s3"
bucket = "${s3.bucket}"
endpoint = "${s3.endpoint}"
region = "us-east-1"
access_key_id = "WRONG-KEY"
secret_access_key = "${S3_BAD_SECRET}"

[profiles.pg]
type = "postgresql"
connection_string = "${pgUrl}"
table = "${table?.table ?? "tp_missing_table"}"

[profiles.pgmissing]
type = "postgresql"
connection_string = "${pgUrl}"
table = "tp_no_such_table_here"

[profiles.redis]
type = "redis"
endpoint = "tcp://127.0.0.1:${deadPort}"
password = "${REDIS_PASSWORD}"
`);
  void s3Options;
}, 120_000);

afterAll(async () => {
  await table?.drop();
  // The native postgresql driver creates a missing table in OpenDAL's layout: drop the one pgmissing made.
  if (table) await psql("DROP TABLE IF EXISTS tp_no_such_table_here").catch(() => {});
  await s3?.stop();
  t?.cleanup();
});

const COMMANDS: { args: string[]; input?: string }[] = [
  { args: ["profiles"] },
  { args: ["put", "secret_test.json"], input: '{"hello":"world"}' },
  { args: ["put", "secret_test.json", "--profile", "s3bad"], input: '{"hello":"world"}' },
  { args: ["put", "secret_test.json", "--profile", "redis"], input: "{}" },
  { args: ["get", "secret_test.json"] },
  { args: ["get", "secret_test.json", "--profile", "s3"] },
  { args: ["get", "secret_test.json", "--profile", "pg"] },
  { args: ["get", "secret_test.json", "--profile", "pgmissing"] },
  { args: ["get", "no_such_key.json"] },
  { args: ["stat", "secret_test.json"] },
  { args: ["ls"] },
  { args: ["ls", "--profile", "pg"] },
  { args: ["migrate", "--from", "s3", "--to", "pg"] },
  { args: ["migrate", "--from", "s3", "--to", "pgmissing"] },
  { args: ["verify"] },
  { args: ["verify", "--profiles", "s3,pg,s3bad"] },
  { args: ["repair", "--from", "s3"] },
  { args: ["bench", "--ops", "3", "--sizes", "1k"] },
  { args: ["doctor"] },
  { args: ["demo"] },
  { args: ["rm", "secret_test.json"] },
  { args: ["rm", "secret_test.json", "--profile", "s3bad"] },
];

function leaks(r: CliResult): string[] {
  const out = r.stdout + r.stderr;
  return SECRETS.filter((s) => out.includes(s) || out.includes(encodeURIComponent(s)));
}

describe("no output contains a secret", () => {
  for (const c of COMMANDS) {
    for (const mode of ["text", "json", "debug"] as const) {
      it(`${c.args.join(" ")} (${mode})`, async () => {
        const args = mode === "json" ? [...c.args, "--json"] : c.args;
        const env = mode === "debug" ? { ...t.env, TERRAPHIM_LOG: "debug" } : t.env;
        const r = await cli(args, { env, input: c.input, timeoutMs: 60_000 });
        expect(r.code, r.stderr).not.toBeNull();
        expect(leaks(r), `${r.stdout}\n${r.stderr}`).toEqual([]);
        if (mode === "json") expect(() => JSON.parse(r.stdout)).not.toThrow();
      });
    }
  }

  it("the settings do hold the secrets (the test would be empty otherwise)", async () => {
    const { readFileSync } = await import("node:fs");
    const text = readFileSync(`${t.settingsDir}/settings.toml`, "utf8");
    for (const s of SECRETS) expect(text).toContain(s);
    // And the profiles that use them work where their server runs.
    const r = await cli(["profiles", "--json"], { env: t.env });
    const rows = (JSON.parse(r.stdout) as { profiles: { name: string; status: string }[] }).profiles;
    expect(rows.find((p) => p.name === "s3")?.status).toBe("ok");
    if (table) expect(rows.find((p) => p.name === "pg")?.status).toBe("ok");
  });
});
