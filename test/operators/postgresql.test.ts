import { afterAll, describe, expect, it } from "vitest";
import { BackendError, ProfileError, UnsupportedError } from "../../src/errors.js";
import { opendalOperator } from "../../src/operators/drivers/opendal.js";
import { describeOperatorConformance } from "../conformance/index.js";
import { createPgTable, freePort, POSTGRES, requireServer } from "../helpers/servers.js";

const ok = await requireServer("postgresql", POSTGRES.host, POSTGRES.port);
const pg = ok ? await createPgTable() : undefined;

describe.skipIf(!pg)("postgresql (shared server on 127.0.0.1:5432)", () => {
  const options = () => ({
    connection_string: pg!.connectionString,
    table: pg!.table,
    key_field: "key",
    value_field: "value",
  });
  afterAll(() => pg?.drop());

  describeOperatorConformance({ name: "postgresql", create: () => opendalOperator("postgresql", options()) });

  it("states its capabilities: shared, durable, cannot list", async () => {
    const op = await opendalOperator("postgresql", options());
    expect(op.capabilities).toEqual({ list: false, lastModified: false, durable: true, shared: true, syncRead: false });
    await expect(op.list("")).rejects.toBeInstanceOf(UnsupportedError);
    await op.close();
  });

  it("writes rows another client can read", async () => {
    const op = await opendalOperator("postgresql", options());
    await op.write("document_pg.json", '{"id":"pg"}');
    const { psql } = await import("../helpers/servers.js");
    const text = await psql(`SELECT convert_from(value, 'UTF8') FROM ${pg!.table} WHERE key = 'document_pg.json'`);
    expect(text.trim()).toBe('{"id":"pg"}');
    await op.close();
  });

  it("a server-side failure is a BackendError without the password", async () => {
    // Trust auth ignores the password; the database does not exist.
    const op = await opendalOperator("postgresql", {
      ...options(),
      connection_string: `postgresql://postgres:hunter2secret@${POSTGRES.host}:${POSTGRES.port}/no_such_db`,
    });
    const err = await op.write("k", "v").then(
      () => new Error("expected the write to fail"),
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(BackendError);
    expect(err.message).toMatch(/no_such_db/);
    expect(`${err.message} ${(err.cause as Error).message} ${err.stack}`).not.toContain("hunter2secret");
    await op.close();
  });
});

describe("postgresql outage and options", () => {
  it("a dead port is a quick ProfileError without the password", async () => {
    const port = await freePort();
    const started = Date.now();
    const open = opendalOperator(
      "postgresql",
      { connection_string: `postgresql://postgres:hunter2secret@127.0.0.1:${port}/test`, table: "kv" },
      { profile: "pg" },
    );
    await expect(open).rejects.toBeInstanceOf(ProfileError);
    await expect(open).rejects.toThrow(`cannot reach postgresql at 127.0.0.1:${port}: connection refused`);
    await expect(open).rejects.not.toThrow(/hunter2secret/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("a connection string that is not a URL is a ProfileError", async () => {
    const open = opendalOperator("postgresql", {
      connection_string: "host=127.0.0.1 password=hunter2secret",
      table: "kv",
    });
    await expect(open).rejects.toBeInstanceOf(ProfileError);
    await expect(open).rejects.not.toThrow(/hunter2secret/);
  });
});
