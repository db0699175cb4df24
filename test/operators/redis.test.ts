import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { ProfileError, UnsupportedError } from "../../src/errors.js";
import { opendalOperator } from "../../src/operators/drivers/opendal.js";
import { describeOperatorConformance } from "../conformance/index.js";
import { freePort, requireServer } from "../helpers/servers.js";

const ok = await requireServer("redis", "127.0.0.1", 6379);
/** Every key of this file lives under its own root, removed afterwards. */
const namespace = `tp-test-${randomBytes(4).toString("hex")}`;
const options = { endpoint: "tcp://127.0.0.1:6379", root: `/${namespace}/` };

describe.skipIf(!ok)("redis (shared server on 127.0.0.1:6379)", () => {
  afterAll(async () => {
    const cli = (...args: string[]) => promisify(execFile)("redis-cli", ["-h", "127.0.0.1", "-p", "6379", ...args]);
    const { stdout } = await cli("--scan", "--pattern", `${namespace}/*`);
    const keys = stdout.split("\n").filter(Boolean);
    for (let i = 0; i < keys.length; i += 500) await cli("del", ...keys.slice(i, i + 500));
  });

  describeOperatorConformance({ name: "redis", create: () => opendalOperator("redis", options) });

  it("states its capabilities: shared, durable, cannot list", async () => {
    const op = await opendalOperator("redis", options);
    expect(op.capabilities).toEqual({ list: false, lastModified: false, durable: true, shared: true, syncRead: false });
    await expect(op.list()).rejects.toBeInstanceOf(UnsupportedError);
    await op.close();
  });
});

describe("redis outage", () => {
  it("a dead port is a quick ProfileError without credentials", async () => {
    const port = await freePort();
    const started = Date.now();
    const open = opendalOperator(
      "redis",
      { endpoint: `redis://:hunter2secret@127.0.0.1:${port}`, password: "hunter2secret" },
      { profile: "cache" },
    );
    await expect(open).rejects.toBeInstanceOf(ProfileError);
    await expect(open).rejects.toThrow(`cannot reach redis at 127.0.0.1:${port}: connection refused`);
    await expect(open).rejects.not.toThrow(/hunter2secret/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
