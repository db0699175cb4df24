/**
 * The native `redis` driver (ioredis) on real servers: the machine's shared
 * Redis (random key prefix, removed afterwards), a local 3-master Redis
 * Cluster, and private redis-server processes for outages and passwords.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackendError, ProfileError } from "../../src/errors.js";
import { DeviceStorage, silentLogger } from "../../src/index.js";
import { keySlot } from "../../src/operators/drivers/_redis-slots.js";
import { opendalOperator } from "../../src/operators/drivers/opendal.js";
import { redisOperator } from "../../src/operators/drivers/redis.js";
import type { Operator } from "../../src/operators/types.js";
import { chaosOperator } from "../../src/operators/wrappers/chaos.js";
import { quotaOperator } from "../../src/operators/wrappers/quota.js";
import { describeOperatorConformance } from "../conformance/index.js";
import { tsEval } from "../helpers/child.js";
import { type RedisCluster, startRedisCluster } from "../helpers/redis-cluster.js";
import { freePort, hasCommand, requireBinaries, requireServer, startRedis } from "../helpers/servers.js";
import { compatValues } from "./_compat-values.js";

const SHARED = "tcp://127.0.0.1:6379";
const shared = await requireServer("redis (native driver)", "127.0.0.1", 6379);
const binaries = await requireBinaries(
  "redis cluster / outage (native driver)",
  (await hasCommand("redis-server")) && (await hasCommand("redis-cli")),
);
const openssl = await requireBinaries("redis TLS (native driver)", await hasCommand("openssl"));
/** Every key this file writes on the shared server starts with this. */
const namespace = `tp-redis-native-${randomBytes(4).toString("hex")}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");

/** Deletes every key matching `pattern` (SCAN + DEL), on one server. */
async function purge(client: Redis, pattern: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    if (keys.length) await client.del(...keys);
    cursor = next;
  } while (cursor !== "0");
}

/** Opens an operator in a child process, writes, reads, closes: what it prints if the process then exits. */
async function runAndExit(options: Record<string, string>): Promise<string> {
  const script = `const { redisOperator } = await import("./src/operators/drivers/redis.ts");
    const op = await redisOperator(${JSON.stringify(options)}, "x");
    await op.write("k", "v"); await op.read("k"); await op.close(); console.log("closed");`;
  const { stdout } = await promisify(execFile)(...tsEval(script), { timeout: 20_000 });
  return stdout.trim();
}

const COMPAT_VALUES = compatValues();

describe.skipIf(!shared)("redis native (shared server on 127.0.0.1:6379)", () => {
  let raw: Redis;
  beforeAll(() => {
    raw = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true });
  });
  afterAll(async () => {
    await purge(raw, `${namespace}*`);
    await raw.select(3); // the `db` test's
    await purge(raw, `${namespace}*`);
    raw.disconnect();
  });

  describeOperatorConformance({
    name: "redis (ioredis)",
    create: () => redisOperator({ endpoint: SHARED, root: `/${namespace}/conformance/` }, "redis"),
  });

  // The wrappers a profile's options put around the driver keep every call its capabilities promise
  // (batched reads, digests): the quota's wrapper dropped them, so a resync over it failed for good.
  describeOperatorConformance({
    name: "redis under an lru quota",
    create: async () =>
      quotaOperator(await redisOperator({ endpoint: SHARED, root: `/${namespace}/quota/` }, "redis"), {
        maxItems: 100_000,
        policy: "lru",
      }),
  });
  describeOperatorConformance({
    name: "redis through a chaos operator without faults",
    create: async () => chaosOperator(await redisOperator({ endpoint: SHARED, root: `/${namespace}/chaos/` }, "redis")),
  });

  it("states its capabilities: shared, durable, lists", async () => {
    const op = await redisOperator({ root: `/${namespace}/` }, "redis");
    expect(op.scheme).toBe("redis");
    expect(op.capabilities).toMatchObject({ list: true, lastModified: false, durable: true, shared: true });
    expect(op.capabilities.syncRead).toBe(false);
    expect([op.capabilities.batchSize, op.capabilities.digest]).toEqual([1000, { algorithm: "sha1", source: "keys" }]);
    await op.close();
  });

  // Roots as OpenDAL applies them (found with the binding): "/" none, "ns" = "/ns" = "/ns/", empty segments drop.
  const roots: [root: string, keyPrefix: string][] = [
    ["/", ""],
    [`/${namespace}/slashed/`, `${namespace}/slashed/`],
    [`${namespace}/bare`, `${namespace}/bare/`],
    [`/${namespace}//deep/folder`, `${namespace}/deep/folder/`],
  ];
  for (const [root, keyPrefix] of roots) {
    it(`writes what OpenDAL reads and reads what it writes, same Redis keys (root ${JSON.stringify(root)})`, async () => {
      // Under root "/" the keys themselves carry the namespace.
      const sub = root === "/" ? `${namespace}/top/` : "";
      const options = { endpoint: SHARED, root };
      const ours = await redisOperator(options, "ours");
      const theirs = await opendalOperator("redis", options, { profile: "theirs" });
      try {
        for (const [name, value] of COMPAT_VALUES) {
          const bytes = Buffer.from(value);
          const a = `${sub}ours/${name}`;
          const b = `${sub}theirs/${name}`;
          await ours.write(a, value);
          await theirs.write(b, value);
          expect(Buffer.from(await theirs.read(a)).equals(bytes), `OpenDAL reads ours: ${name}`).toBe(true);
          expect(Buffer.from(await ours.read(b)).equals(bytes), `ours reads OpenDAL's: ${name}`).toBe(true);
          // The stored key and bytes, seen by a plain client: the same for both writers.
          expect((await raw.getBuffer(keyPrefix + a))?.equals(bytes), `Redis key ${keyPrefix + a}`).toBe(true);
          expect((await raw.getBuffer(keyPrefix + b))?.equals(bytes), `Redis key ${keyPrefix + b}`).toBe(true);
          expect((await ours.stat(b)).contentLength).toBe(bytes.length);
          expect((await theirs.stat(a)).contentLength).toBe(bytes.length);
        }
        const first = `${sub}theirs/${COMPAT_VALUES[0]![0]}`;
        await ours.delete(first);
        expect(await theirs.exists(first)).toBe(false);
      } finally {
        await ours.close();
        await theirs.close();
      }
    });
  }

  it("uses `db` as OpenDAL does", async () => {
    const options = { endpoint: SHARED, db: "3", root: `/${namespace}/db/` };
    const ours = await redisOperator(options, "ours");
    const theirs = await opendalOperator("redis", options, { profile: "theirs" });
    const db3 = new Redis({ host: "127.0.0.1", port: 6379, db: 3 });
    try {
      await ours.write("a.json", "from ours");
      await theirs.write("b.json", "from opendal");
      expect(await db3.get(`${namespace}/db/a.json`)).toBe("from ours");
      expect(await db3.get(`${namespace}/db/b.json`)).toBe("from opendal");
      expect(text(await ours.read("b.json"))).toBe("from opendal");
      expect(await raw.exists(`${namespace}/db/a.json`)).toBe(0); // not in db 0
    } finally {
      db3.disconnect();
      await ours.close();
      await theirs.close();
    }
  });

  it("lists with SCAN, escaping glob characters in the root and the prefix", async () => {
    const op = await redisOperator({ root: `/${namespace}/glob/r*t?[x]\\y/` }, "redis");
    // A sibling root that the unescaped pattern `r*t?[x]\y/*` would match.
    const sibling = await redisOperator({ root: `/${namespace}/glob/r-t-xy/` }, "redis");
    try {
      for (const k of ["a[1]/x.json", "a1/x.json", "a*/x.json", "a?/x.json", "b/x.json"]) await op.write(k, "1");
      await sibling.write("a1/x.json", "1");
      expect(await op.list("a[1]/")).toEqual(["a[1]/x.json"]);
      expect(await op.list("a*")).toEqual(["a*/x.json"]);
      expect(await op.list("a?/")).toEqual(["a?/x.json"]);
      expect(await op.list()).toEqual(["a*/x.json", "a1/x.json", "a?/x.json", "a[1]/x.json", "b/x.json"]);
      expect(await sibling.list()).toEqual(["a1/x.json"]);
    } finally {
      await op.close();
      await sibling.close();
    }
  });

  it("applies default_ttl as an expiry on every write, in whole seconds", async () => {
    const cases: [string, number][] = [
      ["90s", 90],
      ["1m 30s", 90],
      ["2 hours", 7200],
      ["PT5M", 300],
      ["1.9s", 1],
    ];
    for (const [ttl, seconds] of cases) {
      const op = await redisOperator({ root: `/${namespace}/ttl/`, default_ttl: ttl }, "redis");
      await op.write("k.json", "v");
      const left = await raw.ttl(`${namespace}/ttl/k.json`);
      expect(left, ttl).toBeLessThanOrEqual(seconds);
      expect(left, ttl).toBeGreaterThanOrEqual(seconds - 2);
      await op.close();
    }
    const plain = await redisOperator({ root: `/${namespace}/ttl/` }, "redis");
    await plain.write("k.json", "v");
    expect(await raw.ttl(`${namespace}/ttl/k.json`)).toBe(-1); // no expiry without default_ttl
    await plain.close();
    for (const bad of ["0.5s", "-5s", "5", "1 fortnight", "P1D"]) {
      await expect(redisOperator({ default_ttl: bad }, "cache"), bad).rejects.toThrow(/profiles\.cache\.default_ttl/);
    }
  });

  it("OpenDAL 0.49.1 cannot open a profile with default_ttl (any value): a canary for the compat note", async () => {
    await expect(opendalOperator("redis", { endpoint: SHARED, default_ttl: "90s" })).rejects.toThrow(
      /expected struct Duration/,
    );
  });

  it("an unknown option is a ProfileError listing the accepted keys; `type` and empty values are ignored", async () => {
    const open = redisOperator({ endpoint: SHARED, enpoint: "tcp://x:1" }, "cache");
    await expect(open).rejects.toBeInstanceOf(ProfileError);
    await expect(open).rejects.toThrow(
      "profiles.cache.enpoint: unknown option for a redis profile (accepted: endpoint, cluster_endpoints, username, password, db, root, default_ttl, tls_ca_file)",
    );
    const op = await redisOperator(
      { type: "redis", endpoint: SHARED, password: "", root: `/${namespace}/`, default_ttl: "" },
      "cache",
    );
    await op.close();
    // Keys match case-insensitively, as OpenDAL lower-cases them.
    await (await redisOperator({ ENDPOINT: SHARED, Root: `/${namespace}/` }, "cache")).close();
  });

  it("close() releases every socket: the process exits", async () => {
    expect(await runAndExit({ root: `/${namespace}/exit/` })).toBe("closed");
  });
});

describe("redis native: bad options, servers that fail", () => {
  it("bad values are ProfileErrors naming the option", async () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ db: "one" }, /profiles\.p\.db: expected a database number/],
      [{ db: "-1" }, /profiles\.p\.db/],
      [{ endpoint: "http://127.0.0.1:6379" }, /profiles\.p\.endpoint: unsupported scheme "http:\/\/"/],
      [{ endpoint: SHARED, cluster_endpoints: SHARED }, /profiles\.p\.cluster_endpoints: set either/],
      [{ cluster_endpoints: " , " }, /profiles\.p\.cluster_endpoints: no endpoint/],
      [{ cluster_endpoints: SHARED, db: "2" }, /profiles\.p\.db: a Redis Cluster has only database 0/],
    ];
    for (const [options, message] of bad) {
      await expect(redisOperator(options, "p"), JSON.stringify(options)).rejects.toThrow(message);
    }
  });

  it("a dead port is a quick ProfileError without credentials", async () => {
    const port = await freePort();
    const started = Date.now();
    const open = redisOperator(
      { endpoint: `redis://:hunter2secret@127.0.0.1:${port}`, password: "hunter2secret" },
      "cache",
    );
    await expect(open).rejects.toBeInstanceOf(ProfileError);
    await expect(open).rejects.toThrow(`profile "cache": cannot reach redis at 127.0.0.1:${port}: connection refused`);
    await expect(open).rejects.not.toThrow(/hunter2secret/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it.skipIf(!binaries)("a password, in an option or in the endpoint URL, never appears in an error", async () => {
    const secret = `Url-Secret-${randomBytes(6).toString("hex")}`;
    const server = await startRedis({ args: ["--requirepass", secret] });
    const seen: string[] = [];
    const record = (e: unknown) => {
      const err = e as Error & { cause?: Error };
      seen.push(`${err.message}\n${err.stack}\n${err.cause?.message}\n${err.cause?.stack}\n${JSON.stringify(err)}`);
      return err;
    };
    /** Opening succeeds (nothing waits for the handshake); the first call fails, for good, with the reason. */
    const refused = async (options: Record<string, string>, reason: RegExp) => {
      const op = await redisOperator(options, "p");
      try {
        const err = await op.write("k.json", "v").catch(record);
        expect(err).toBeInstanceOf(BackendError);
        expect((err as BackendError).transient).toBe(false);
        expect((err as Error).message).toMatch(reason);
      } finally {
        await op.close();
      }
    };
    try {
      // As in OpenDAL, credentials in the URL are not used: the server refuses, and the error says why.
      await refused(
        { endpoint: `redis://:${secret}@127.0.0.1:${server.port}` },
        /NOAUTH.*credentials in the endpoint URL are not used/,
      );
      await refused({ endpoint: server.endpoint, password: `Wrong-${secret}` }, /WRONGPASS|invalid password/);
      // The right password in both places opens; a later outage's errors do not show it either.
      const op = await redisOperator(
        { endpoint: `redis://:${secret}@127.0.0.1:${server.port}`, password: secret },
        "ok",
      );
      await op.write("k.json", "v");
      await server.kill();
      await op.read("k.json").catch(record);
      await op.write("k.json", "v").catch(record);
      await op.close();
      expect(seen.length).toBe(4);
      for (const s of seen) {
        expect(s).not.toContain(secret);
      }
    } finally {
      await server.stop();
    }
  });

  it.skipIf(!binaries || !openssl)("rediss:// speaks TLS and checks the server's certificate", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tp-redis-tls-"));
    const run = promisify(execFile);
    const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
    await run("openssl", [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
      ...["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
    ]);
    const tlsPort = await freePort();
    const server = await startRedis({
      args: [
        ...["--tls-port", String(tlsPort), "--tls-cert-file", cert, "--tls-key-file", key],
        ...["--tls-ca-cert-file", cert, "--tls-auth-clients", "no"],
      ],
    });
    try {
      // Not trusted by this process: the handshake is refused, as OpenDAL does (insecure: false).
      const untrusted = await redisOperator({ endpoint: `rediss://localhost:${tlsPort}` }, "tls");
      await expect(untrusted.write("k.json", "v")).rejects.toThrow(/self[- ]signed certificate/);
      await untrusted.close();
      // A private CA, trusted through the profile's `tls_ca_file` (the same on Node, Bun and Deno).
      const trusted = await redisOperator({ endpoint: `rediss://localhost:${tlsPort}`, tls_ca_file: cert }, "tls");
      await trusted.write("k.json", "over tls");
      expect(text(await trusted.read("k.json"))).toBe("over tls");
      await trusted.close();
      // The coherence bus over the same TLS server: B hears A's save through its tracked listener.
      const profiles = {
        mem: { type: "memory" },
        r: { type: "redis", endpoint: `rediss://localhost:${tlsPort}`, tls_ca_file: cert, root: "/tls/" },
      };
      const coherence = { type: "redis", endpoint: `rediss://localhost:${tlsPort}`, tls_ca_file: cert };
      const [a, b] = [
        await DeviceStorage.fromSettings({ profiles, coherence }, { logger: silentLogger }),
        await DeviceStorage.fromSettings({ profiles, coherence }, { logger: silentLogger }),
      ];
      try {
        // B's memory tier serves once B hears the server over TLS (listening, resynced, lease proven).
        await b.saveValue("doc.json", { v: 1 });
        const until = async (what: () => Promise<boolean>) => {
          const deadline = Date.now() + 10_000;
          while (!(await what()) && Date.now() < deadline) await sleep(20);
        };
        await until(async () => (await b.loadValue("doc.json")).profile === "mem");
        expect(await b.loadValue("doc.json")).toMatchObject({ value: { v: 1 }, profile: "mem" });
        await a.saveValue("doc.json", { v: 2 });
        await until(async () => ((await b.loadValue("doc.json")).value as { v: number }).v === 2);
        expect(await b.loadValue("doc.json")).toMatchObject({ value: { v: 2 } });
        expect(b.coherenceStats()?.serverReports).toBeGreaterThan(0);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
      // Bad values name the option.
      const bad = (o: Record<string, string>) => redisOperator(o, "tls").catch((e: unknown) => e);
      const missing = await bad({ endpoint: `rediss://localhost:${tlsPort}`, tls_ca_file: join(dir, "none.pem") });
      expect(missing).toBeInstanceOf(ProfileError);
      expect((missing as Error).message).toMatch(/profiles\.tls\.tls_ca_file: cannot read .*none\.pem/);
      const notPem = await bad({ endpoint: `rediss://localhost:${tlsPort}`, tls_ca_file: key });
      expect((notPem as Error).message).toMatch(/tls_ca_file: .*key\.pem" holds no PEM certificate/);
      const plain = await bad({ endpoint: `tcp://localhost:${tlsPort}`, tls_ca_file: cert });
      expect((plain as Error).message).toMatch(/tls_ca_file: applies to rediss:\/\/ endpoints only/);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!binaries)(
    "a call while the server is down fails within seconds (transient); calls work again after it comes back",
    async () => {
      const server = await startRedis();
      const op = await redisOperator({ endpoint: server.endpoint }, "own");
      try {
        await op.write("k.json", "before");
        await server.kill();
        for (const call of [() => op.read("k.json"), () => op.write("k.json", "during"), () => op.exists("k.json")]) {
          const started = Date.now();
          const err = await call().catch((e: unknown) => e);
          expect(err).toBeInstanceOf(BackendError);
          expect((err as BackendError).transient).toBe(true);
          expect(Date.now() - started).toBeLessThan(3000);
        }
        await server.start(); // same port; nothing on disk, so it comes back empty
        const started = Date.now();
        let answered = false;
        while (!answered && Date.now() - started < 10_000) {
          answered = await op.write("k.json", "after").then(
            () => true,
            () => sleep(50).then(() => false),
          );
        }
        expect(answered).toBe(true);
        expect(Date.now() - started).toBeLessThan(3000);
        expect(text(await op.read("k.json"))).toBe("after");
      } finally {
        await op.close();
        await server.stop();
      }
    },
  );

  it.skipIf(!binaries)("a db the server does not have fails every call, and nothing lands in db 0", async () => {
    const server = await startRedis({ args: ["--databases", "2"] });
    const op = await redisOperator({ endpoint: server.endpoint, db: "5" }, "own");
    const db0 = new Redis({ host: "127.0.0.1", port: server.port });
    try {
      for (const call of [() => op.write("k.json", "v"), () => op.read("k.json"), () => op.write("k.json", "v")]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BackendError);
        expect((err as BackendError).transient).toBe(false);
        expect((err as Error).message).toMatch(/DB index is out of range/);
      }
      expect(await db0.dbsize()).toBe(0);
    } finally {
      db0.disconnect();
      await op.close();
      await server.stop();
    }
  });

  it.skipIf(!binaries)(
    "a hung server at open: opening returns at once, the first call waits for it (the tier's time limit)",
    async () => {
      const server = await startRedis();
      server.pause();
      try {
        const started = Date.now();
        const op = await redisOperator({ endpoint: server.endpoint }, "own");
        expect(Date.now() - started).toBeLessThan(1000);
        const write = op.write("k.json", "v");
        write.catch(() => {});
        expect(await Promise.race([write.then(() => "answered"), sleep(500).then(() => "waiting")])).toBe("waiting");
        server.resume();
        await write;
        expect(text(await op.read("k.json"))).toBe("v");
        await op.close();
      } finally {
        server.resume();
        await server.stop();
      }
    },
  );

  it.skipIf(!binaries)(
    "reset() on a hung server: calls fail fast instead of hanging, and work once it answers",
    async () => {
      const server = await startRedis();
      const op = await redisOperator({ endpoint: server.endpoint }, "own");
      try {
        await op.write("k.json", "v");
        server.pause();
        const hung = op.read("k.json");
        hung.catch(() => {});
        expect(await Promise.race([hung.then(() => "answered"), sleep(300).then(() => "hung")])).toBe("hung");
        op.reset!();
        const started = Date.now();
        const err = await op.read("k.json").catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BackendError);
        expect((err as BackendError).transient).toBe(true);
        expect(Date.now() - started).toBeLessThan(1000);
        server.resume();
        const deadline = Date.now() + 5000;
        let value: string | undefined;
        while (value === undefined && Date.now() < deadline) {
          value = await op.read("k.json").then(text, () => sleep(50).then(() => undefined));
        }
        expect(value).toBe("v");
      } finally {
        server.resume();
        await op.close();
        await server.stop();
      }
    },
  );
});

describe.skipIf(!binaries)("redis native on a local 3-master Redis Cluster", () => {
  let cluster: RedisCluster | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  const running = (): RedisCluster => {
    if (!cluster) throw new Error("the local Redis Cluster did not start");
    return cluster;
  };
  const create = (root: string): Promise<Operator> =>
    redisOperator({ cluster_endpoints: running().endpoints, root }, "cluster");

  describeOperatorConformance({ name: "redis cluster (ioredis)", create: () => create("/conformance/") });

  it("computes hash slots as the Cluster does (hash tags, UTF-8)", async () => {
    const keys = ["a.json", "document_x.json", "{user1}.a", "x{user1}y", "{}a", "a{}b{c}", "日本語/キー.json", "{"];
    for (const key of keys) {
      expect(keySlot(key), key).toBe(Number((await running().cli("cluster", "keyslot", key)).trim()));
    }
  });

  it("lists keys from every master", async () => {
    const op = await create("/spread/");
    const c = running();
    try {
      const keys = Array.from({ length: 60 }, (_, i) => `k${String(i).padStart(2, "0")}.json`);
      for (const k of keys) await op.write(k, "1");
      const counts = await Promise.all(
        c.ports.map(async (port) => {
          const node = new Redis({ host: "127.0.0.1", port });
          try {
            return Number(await node.dbsize());
          } finally {
            node.disconnect();
          }
        }),
      );
      expect(counts.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
      expect(await op.list()).toEqual(keys);
    } finally {
      await op.close();
    }
  });

  it("writes what OpenDAL (cluster_endpoints) reads and reads what it writes", async () => {
    const options = { cluster_endpoints: running().endpoints, root: "/compat/folder/" };
    const ours = await redisOperator(options, "ours");
    const theirs = await opendalOperator("redis", options, { profile: "theirs" });
    const c = running();
    try {
      for (const [name, value] of COMPAT_VALUES) {
        const bytes = Buffer.from(value);
        await ours.write(`ours/${name}`, value);
        await theirs.write(`theirs/${name}`, value);
        expect(Buffer.from(await theirs.read(`ours/${name}`)).equals(bytes), name).toBe(true);
        expect(Buffer.from(await ours.read(`theirs/${name}`)).equals(bytes), name).toBe(true);
      }
      // The same Redis key for both writers.
      expect((await c.cli("strlen", "compat/folder/ours/bytes/every-byte.bin")).trim()).toBe("256");
      expect((await c.cli("strlen", "compat/folder/theirs/bytes/every-byte.bin")).trim()).toBe("256");
    } finally {
      await ours.close();
      await theirs.close();
    }
  });

  it("close() releases every node's socket: the process exits", async () => {
    expect(await runAndExit({ cluster_endpoints: running().endpoints, root: "/exit/" })).toBe("closed");
  });

  it("a dead seed node is skipped when another answers", async () => {
    const c = running();
    const dead = await freePort();
    const op = await redisOperator(
      { cluster_endpoints: `tcp://127.0.0.1:${dead},tcp://127.0.0.1:${c.ports[1]}`, root: "/seed/" },
      "cluster",
    );
    try {
      await op.write("a.json", "1");
      expect(text(await op.read("a.json"))).toBe("1");
    } finally {
      await op.close();
    }
  });
  it("nodes that refuse the login fail every call at once (not transient)", async () => {
    const c = running();
    const secret = `Cluster-Secret-${randomBytes(6).toString("hex")}`;
    const cli = (port: number, ...args: string[]) =>
      promisify(execFile)("redis-cli", ["-p", String(port), "--no-auth-warning", ...args]);
    for (const port of c.ports) await cli(port, "config", "set", "requirepass", secret);
    try {
      for (const options of [{ password: `Wrong-${secret}` }, {}] as Record<string, string>[]) {
        const op = await redisOperator({ cluster_endpoints: c.endpoints, ...options }, "cluster");
        try {
          const started = Date.now();
          const err = await op.write("k.json", "v").catch((e: unknown) => e);
          expect(err).toBeInstanceOf(BackendError);
          expect((err as BackendError).transient).toBe(false);
          expect((err as Error).message).toMatch(/WRONGPASS|NOAUTH/);
          expect((err as Error).message).not.toContain(secret);
          expect(Date.now() - started).toBeLessThan(3000);
        } finally {
          await op.close();
        }
      }
      const op = await redisOperator({ cluster_endpoints: c.endpoints, password: secret }, "cluster");
      await op.write("k.json", "v");
      await op.close();
    } finally {
      for (const port of c.ports) await cli(port, "-a", secret, "config", "set", "requirepass", "");
    }
  });

  // Last in this block: it stops one master of the shared local cluster.
  it("with a master down, list fails (transient) instead of returning part of the keys; other slots still work", async () => {
    const c = running();
    const op = await create("/outage/");
    try {
      const keys = Array.from({ length: 30 }, (_, i) => `k${String(i).padStart(2, "0")}.json`);
      for (const k of keys) await op.write(k, "1");
      expect(await op.list()).toEqual(keys);
      await promisify(execFile)("redis-cli", ["-p", String(c.ports[2]), "shutdown", "nosave"]).catch(() => {});
      const err = await op.list().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BackendError);
      expect((err as BackendError).transient).toBe(true);
      const started = Date.now();
      const reads = await Promise.all(keys.map((k) => op.read(k).then(text, (e: unknown) => e)));
      expect(Date.now() - started).toBeLessThan(5000);
      const failed = reads.filter((r) => r instanceof BackendError) as BackendError[];
      expect(failed.length).toBeGreaterThan(0); // the keys of the stopped master
      expect(failed.every((e) => e.transient)).toBe(true);
      expect(reads.filter((r) => r === "1").length).toBeGreaterThan(0); // the other masters' keys
    } finally {
      await op.close();
    }
  });
});
