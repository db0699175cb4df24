/**
 * Reaching a server before a client is built: the address a profile's options
 * name, and a TCP connect with a short time limit (a dead server must be a
 * quick, clear error, not a client waiting ~30 s).
 *
 * @module
 */
import { connect } from "node:net";
import { BackendError, ProfileError } from "../../errors.js";

/** Default ports of the network schemes. */
export const DEFAULT_PORTS: Readonly<Record<string, number>> = { redis: 6379, postgresql: 5432, mysql: 3306 };
/** How long {@link probeTcp} waits for a connection. */
export const PROBE_TIMEOUT_MS = 1500;

/** The first `host:port` a redis, postgresql or mysql profile names, or undefined (unix socket, no option). */
export function networkAddress(
  scheme: string,
  config: Record<string, string>,
): { host: string; port: number } | undefined {
  const defaultPort = DEFAULT_PORTS[scheme];
  if (defaultPort === undefined) return undefined;
  const raw =
    scheme === "redis"
      ? config.cluster_endpoints?.split(",")[0]?.trim() || config.endpoint || "tcp://127.0.0.1:6379"
      : config.connection_string;
  if (!raw) return undefined; // OpenDAL reports the missing option
  try {
    const url = new URL(raw.includes("://") ? raw : `tcp://${raw}`);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    // Unix sockets, multi-host strings and the like: leave them to OpenDAL.
    if (!host || url.protocol.includes("unix")) return undefined;
    return { host, port: url.port ? Number(url.port) : defaultPort };
  } catch {
    return undefined;
  }
}

/** Resolves `undefined` when `host:port` accepts a TCP connection, else a short reason. */
export function probeTcp(host: string, port: number): Promise<string | undefined> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    const finish = (reason: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      done(reason);
    };
    const timer = setTimeout(() => finish(`no answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
    socket.once("connect", () => finish(undefined));
    socket.once("error", (err: NodeJS.ErrnoException) =>
      finish(
        err.code === "ECONNREFUSED"
          ? "connection refused"
          : err.code === "ENOTFOUND"
            ? "unknown host"
            : (err.code ?? err.message),
      ),
    );
  });
}

/**
 * Throws a {@link ProfileError} unless `host:port` accepts a TCP connection
 * within {@link PROBE_TIMEOUT_MS}: `profile "p": cannot reach <scheme> at host:port: <reason>`.
 */
export async function assertReachable(scheme: string, host: string, port: number, profile: string): Promise<void> {
  const problem = await probeTcp(host, port);
  if (problem) throw unreachable(profile, `${scheme} at ${host}:${port}`, problem);
}

/**
 * The error of a server that does not answer: a `ProfileError` whose cause is
 * a transient `BackendError`, so storage keeps the profile (down, retried)
 * instead of treating it as misconfigured.
 */
export function unreachable(profile: string, where: string, problem: string): ProfileError {
  const cause = new BackendError(problem, { profile, transient: true });
  return new ProfileError(`profile "${profile}": cannot reach ${where}: ${problem}`, { profile, cause });
}
