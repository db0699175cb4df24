/**
 * Real servers for backend tests: an s3rver child process per test file, TCP
 * checks for the shared Redis / PostgreSQL / MariaDB the machine runs, and
 * throwaway PostgreSQL tables. See DESIGN.md, "Real servers for tests".
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
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
  /** The s3rver process id (the benchmark reads its CPU time). */
  pid: number | undefined;
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
  return { endpoint: `http://127.0.0.1:${port}`, bucket, port, dir, pid: child.pid, stop };
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

/**
 * A server process a test owns (never the machine's shared Redis / PostgreSQL):
 * it can be killed mid-workload and started again on the same port with the
 * same data directory, for outage tests.
 */
export interface OwnServer {
  readonly name: string;
  readonly port: number;
  /** Its data directory (removed by `stop`). */
  readonly dir: string;
  /** Whether the process is running. */
  readonly running: boolean;
  /** Kills it abruptly (an outage, not a shutdown) and waits until the port is closed. */
  kill(): Promise<void>;
  /**
   * Freezes it with SIGSTOP: the kernel still accepts TCP connections on its
   * port, but nothing answers (a hung server, the worst kind of outage).
   */
  pause(): void;
  /** Thaws it with SIGCONT. */
  resume(): void;
  /** Starts it again on the same port with the same data directory and waits until it answers. */
  start(): Promise<void>;
  /** Kills it (if running) and removes its directory. */
  stop(): Promise<void>;
}

async function waitPort(port: number, open: boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await portAnswers("127.0.0.1", port, 250)) !== open) {
    if (Date.now() > deadline) throw new Error(`${what}: port ${port} still ${open ? "closed" : "open"}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** An {@link OwnServer} run as a child process of this one (`spawn(cmd, args)`). */
function childServer(name: string, port: number, dir: string, cmd: string, args: string[]): OwnServer {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = "";
  const server: OwnServer = {
    name,
    port,
    dir,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async start() {
      if (server.running) return;
      stderr = "";
      const c = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
      child = c;
      c.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
      const deadline = Date.now() + 20_000;
      while (!(await portAnswers("127.0.0.1", port, 250))) {
        if (c.exitCode !== null || Date.now() > deadline) {
          await server.kill();
          throw new Error(`${name} did not start on port ${port}: ${stderr.trim() || "no output"}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async kill() {
      if (child && server.running) {
        child.kill("SIGKILL");
        await exited;
      }
      await waitPort(port, false, `${name} kill`);
    },
    pause() {
      if (child?.pid && server.running) process.kill(child.pid, "SIGSTOP");
    },
    resume() {
      if (child?.pid && server.running) process.kill(child.pid, "SIGCONT"); // Deno: ChildProcess.kill("SIGCONT") is not delivered
    },
    async stop() {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/**
 * Starts a private `redis-server` on a free port (nothing on disk: `--save ""
 * --appendonly no`, so a killed server comes back empty, as a cache would).
 * `args` are added to its command line (e.g. `["--requirepass", "pw"]`).
 */
export async function startRedis(
  options: { port?: number; args?: string[] } = {},
): Promise<OwnServer & { endpoint: string }> {
  const p = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "tp-redis-"));
  const args = ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  const extra = options.args ?? [];
  const server = childServer("redis", p, dir, "redis-server", [...args, "--daemonize", "no", "--dir", dir, ...extra]);
  await server.start();
  return Object.assign(server, { endpoint: `tcp://127.0.0.1:${p}` });
}

/** A restartable s3rver: its data directory survives `kill()` / `start()`, as a real S3 outage would. */
export async function startOwnS3rver(): Promise<OwnServer & { endpoint: string; bucket: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tp-s3rver-own-"));
  const bucket = `test-${randomBytes(4).toString("hex")}`;
  const bin = join(dirname(require.resolve("s3rver/package.json")), "bin", "s3rver.js");
  const args = ["--openssl-legacy-provider", bin, "-d", dir, "-a", "127.0.0.1", "-p", String(port), "--silent"];
  const server = childServer("s3rver", port, dir, process.execPath, [...args, "--configure-bucket", bucket]);
  await server.start();
  return Object.assign(server, { endpoint: `http://127.0.0.1:${port}`, bucket });
}

/** A private PostgreSQL cluster (initdb in a temp dir, trust auth, on a free port). */
export interface OwnPostgres extends OwnServer {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres` */
  connectionString: string;
  /** Runs one SQL statement with `psql` against this instance. */
  psql(sql: string): Promise<string>;
}

/** The newest PostgreSQL server binaries installed (Debian layout, `/usr/lib/postgresql/<major>/bin`), if any. */
export function postgresBinDir(): string | undefined {
  try {
    const majors = readdirSync("/usr/lib/postgresql")
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(a) - Number(b));
    const major = majors.at(-1);
    return major === undefined ? undefined : join("/usr/lib/postgresql", major, "bin");
  } catch {
    return undefined;
  }
}

/**
 * Creates and starts a private PostgreSQL cluster on a free port: `initdb` and
 * `pg_ctl` from {@link postgresBinDir}, run as the `postgres` user when this process is
 * root (PostgreSQL refuses to run as root). `kill()` is `pg_ctl stop -m
 * immediate` (every server process exits at once, without a checkpoint: crash
 * recovery runs on the next start). Takes ~2-4 s.
 */
export async function startPostgres(): Promise<OwnPostgres> {
  const PG_BIN = postgresBinDir();
  if (!PG_BIN) throw new Error("no PostgreSQL server binaries in /usr/lib/postgresql/<major>/bin");
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tp-pg-"));
  const asRoot = process.getuid?.() === 0;
  const as = (cmd: string, args: string[]) =>
    asRoot ? run("runuser", ["-u", "postgres", "--", cmd, ...args]) : run(cmd, args);
  if (asRoot) await run("chown", ["postgres", dir]);
  const data = join(dir, "data");
  await as(join(PG_BIN, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const opts = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off`;
  const postmasterPid = () => Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  let running = false;
  const server: OwnPostgres = {
    name: "postgresql",
    port,
    dir,
    connectionString: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    get running() {
      return running;
    },
    async start() {
      if (running) return;
      await as(join(PG_BIN, "pg_ctl"), ["-D", data, "-o", opts, "-l", join(dir, "log"), "-w", "start"]);
      running = true;
      await waitPort(port, true, "postgresql start");
    },
    pause() {
      if (running) process.kill(postmasterPid(), "SIGSTOP");
    },
    resume() {
      if (running) process.kill(postmasterPid(), "SIGCONT");
    },
    async kill() {
      if (running) {
        server.resume();
        await as(join(PG_BIN, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => {});
        running = false;
      }
      await waitPort(port, false, "postgresql kill");
    },
    async stop() {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
    async psql(sql: string) {
      const { stdout } = await run("psql", [
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-qAtc",
        sql,
      ]);
      return stdout;
    },
  };
  await server.start();
  return server;
}

/** Whether `command` is on the PATH. */
export async function hasCommand(command: string): Promise<boolean> {
  try {
    await run("sh", ["-c", `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

/**
 * For tests that start their own servers: whether the binaries are installed.
 * In CI a missing one is an error; elsewhere a loud warning, for `describe.skipIf`.
 */
export async function requireBinaries(what: string, ok: boolean): Promise<boolean> {
  if (ok) return true;
  const msg = `${what} tests did not run: the server binaries are not installed`;
  if (process.env.CI) throw new Error(`${msg} (CI must run them)`);
  console.warn(`\n!!! SKIPPED: ${msg} !!!\n`);
  return false;
}
