/**
 * A throwaway Redis Cluster for tests: three masters, no replicas, on free
 * ports in a temp dir (nothing on disk: `--save "" --appendonly no`). Never
 * the machine's shared Redis.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, portAnswers } from "./servers.js";

const run = promisify(execFile);
/** How long the cluster may take to start and agree on its slots. */
const START_TIMEOUT_MS = 20_000;

/** A running local Redis Cluster. */
export interface RedisCluster {
  /** The masters' ports. */
  readonly ports: readonly number[];
  /** `tcp://127.0.0.1:P1,tcp://127.0.0.1:P2,tcp://127.0.0.1:P3`, the `cluster_endpoints` option. */
  readonly endpoints: string;
  /** Its data directory (removed by `stop`). */
  readonly dir: string;
  /** Runs `redis-cli -c -p <first port> ...args` (follows redirections) and returns its output. */
  cli(...args: string[]): Promise<string>;
  /** Shuts the three servers down and removes the directory. */
  stop(): Promise<void>;
}

const cliOn = async (port: number, args: string[]) =>
  (await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args])).stdout;

async function until(what: string, check: () => Promise<boolean>, deadline: number): Promise<void> {
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} within ${START_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts three `redis-server --cluster-enabled yes` (daemonized) on free
 * ports, joins them with `redis-cli --cluster create ... --cluster-replicas 0`
 * and waits until every node reports `cluster_state:ok`.
 *
 * Each node's cluster bus port is chosen free as well (`--cluster-port`):
 * the default, port + 10000, may be taken or above 65535 for an OS-chosen port.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), "tp-redis-cluster-"));
  const ports: number[] = [];
  const pidFiles: string[] = [];
  const stop = async () => {
    await Promise.all(
      ports.map(async (port, i) => {
        await cliOn(port, ["shutdown", "nosave"]).catch(() => {});
        // A node that did not answer SHUTDOWN is killed by the pid it wrote.
        if (await portAnswers("127.0.0.1", port, 250)) {
          try {
            process.kill(Number(readFileSync(pidFiles[i]!, "utf8").trim()), "SIGKILL");
          } catch {
            // Already gone.
          }
        }
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  try {
    // Six distinct free ports: three clients' and three cluster buses'.
    const taken = new Set<number>();
    const pick = async () => {
      for (;;) {
        const p = await freePort();
        if (!taken.has(p)) {
          taken.add(p);
          return p;
        }
      }
    };
    for (let i = 0; i < 3; i++) {
      const port = await pick();
      const bus = await pick();
      const pidFile = join(dir, `redis-${port}.pid`);
      ports.push(port);
      pidFiles.push(pidFile);
      await run("redis-server", [
        "--port",
        String(port),
        "--cluster-port",
        String(bus),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dir, `nodes-${port}.conf`),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "yes",
        "--pidfile",
        pidFile,
        "--logfile",
        join(dir, `redis-${port}.log`),
        "--dir",
        dir,
      ]);
    }
    for (const port of ports)
      await until(`port ${port} did not open`, () => portAnswers("127.0.0.1", port, 250), deadline);
    await run("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    for (const port of ports) {
      await until(
        `node ${port} did not report cluster_state:ok`,
        async () => (await cliOn(port, ["cluster", "info"]).catch(() => "")).includes("cluster_state:ok"),
        deadline,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    ports,
    endpoints: ports.map((p) => `tcp://127.0.0.1:${p}`).join(","),
    dir,
    cli: (...args: string[]) => cliOn(ports[0]!, ["-c", ...args]),
    stop,
  };
}
