/**
 * Real servers for backend tests: an s3rver child process per test file, TCP
 * checks for the shared Redis / PostgreSQL / MariaDB the machine runs, and
 * throwaway PostgreSQL tables. See DESIGN.md, "Real servers for tests".
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const require = createRequire(import.meta.url);

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `host:port` accepts a TCP connection within `timeoutMs`. */
export function portAnswers(host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Checks that a shared server answers. In CI (`process.env.CI` set) a missing
 * server is an error: every backend test must run there. Elsewhere it prints a
 * loud warning and returns `false`, for `describe.skipIf(!ok)`.
 */
export async function requireServer(name: string, host: string, port: number): Promise<boolean> {
  if (await portAnswers(host, port)) return true;
  const what = `${name} backend tests did not run: nothing answers on ${host}:${port}`;
  if (process.env.CI) throw new Error(`${what} (CI must run every backend test)`);
  console.warn(`\n!!! SKIPPED: ${what} !!!\n`);
  return false;
}

/** A running s3rver child process with one bucket. */
export interface S3rverInstance {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  bucket: string;
  port: number;
  /** Its data directory (removed by `stop`). */
  dir: string;
  /** Kills the process and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Starts s3rver as its own process (in-process it crashes on concurrent
 * PUT + DELETE) on a free port, with a temp dir and one bucket, and waits
 * until it answers.
 */
export async function startS3rver(): Promise<S3rverInstance> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tp-s3rver-"));
  const bucket = `test-${randomBytes(4).toString("hex")}`;
  const bin = join(dirname(require.resolve("s3rver/package.json")), "bin", "s3rver.js");
  const args = ["--openssl-legacy-provider", bin, "-d", dir, "-a", "127.0.0.1", "-p", String(port), "--silent"];
  const child: ChildProcess = spawn(process.execPath, [...args, "--configure-bucket", bucket], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 15_000;
  while (!(await portAnswers("127.0.0.1", port, 250))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`s3rver did not start on port ${port}: ${stderr.trim() || "no output"}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { endpoint: `http://127.0.0.1:${port}`, bucket, port, dir, stop };
}

/**
 * OpenDAL options for an s3rver instance. s3rver checks the access key id
 * (`S3RVER`) but not signatures, so any secret works.
 */
export function s3Options(s3: S3rverInstance, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    region: "us-east-1",
    access_key_id: "S3RVER",
    secret_access_key: "S3RVER",
    disable_config_load: "true",
    disable_ec2_metadata: "true",
    // s3rver's batch delete answers 500.
    delete_max_size: "1",
    ...overrides,
  };
}

/** The shared PostgreSQL of the test machines (trust auth). */
export const POSTGRES = { host: "127.0.0.1", port: 5432, user: "postgres", database: "test" } as const;

/** A throwaway table in the shared PostgreSQL. */
export interface PgTable {
  table: string;
  /** `postgresql://postgres@127.0.0.1:5432/test` */
  connectionString: string;
  /** Drops the table. */
  drop(): Promise<void>;
}

/** Runs one SQL statement on the shared PostgreSQL with `psql`. */
export async function psql(sql: string): Promise<string> {
  const { stdout } = await run("psql", [
    "-h",
    POSTGRES.host,
    "-p",
    String(POSTGRES.port),
    "-U",
    POSTGRES.user,
    "-d",
    POSTGRES.database,
    "-v",
    "ON_ERROR_STOP=1",
    "-qAtc",
    sql,
  ]);
  return stdout;
}

/** Creates `(key TEXT PRIMARY KEY, value BYTEA NOT NULL)` under a random name (TEXT values break OpenDAL reads). */
export async function createPgTable(): Promise<PgTable> {
  const table = `tp_test_${randomBytes(6).toString("hex")}`;
  await psql(`CREATE TABLE ${table} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
  return {
    table,
    connectionString: `postgresql://${POSTGRES.user}@${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`,
    drop: async () => {
      await psql(`DROP TABLE IF EXISTS ${table}`);
    },
  };
}
