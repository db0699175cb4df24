/**
 * The native `postgresql` driver (node-postgres) on real servers: the
 * machine's shared PostgreSQL (own tables, dropped afterwards), and a private
 * PostgreSQL instance for lifecycle and outage tests.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackendError, ClosedError, NotFoundError, ProfileError } from "../../src/errors.js";
import { opendalOperator } from "../../src/operators/drivers/opendal.js";
import { postgresqlOperator } from "../../src/operators/drivers/postgresql.js";
import { describeOperatorConformance } from "../conformance/index.js";
import { tsEval } from "../helpers/child.js";
import {
  freePort,
  hasCommand,
  type OwnPostgres,
  POSTGRES,
  postgresBinDir,
  requireBinaries,
  requireServer,
  startPostgres,
} from "../helpers/servers.js";
import { compatValues } from "./_compat-values.js";

const SHARED_URL = `postgresql://${POSTGRES.user}@${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`;
const shared = await requireServer("postgresql (native driver)", POSTGRES.host, POSTGRES.port);
const binaries = await requireBinaries(
  "postgresql lifecycle / outage (native driver)",
  postgresBinDir() !== undefined && (await hasCommand("psql")),
);
/** Every table this file creates on the shared server starts with this. */
const stem = `tp_pgnative_${randomBytes(4).toString("hex")}`;
const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");
const quoted = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Opens an operator in a child process, writes, reads and closes it; resolves with its output once it exits. */
async function runInChild(options: Record<string, string>): Promise<string> {
  const script = `const { postgresqlOperator } = await import("./src/operators/drivers/postgresql.ts");
    const op = await postgresqlOperator(${JSON.stringify(options)}, "child");
    await op.write("child.json", "1"); await op.read("child.json"); await op.delete("child.json");
    await op.close(); console.log("closed");`;
  const { stdout } = await promisify(execFile)(...tsEval(script), { timeout: 20_000 });
  return stdout.trim();
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: Error) => e,
  );
}

describe.skipIf(!shared)("postgresql native (shared server on 127.0.0.1:5432)", () => {
  let db: pg.Client;
  const tables: string[] = [];
  /** A fresh table name on the shared server (not created), dropped after the file. */
  const tableName = (tag = "t") => {
    const name = `${stem}_${tag}_${tables.length}`;
    tables.push(name);
    return name;
  };
  /** A table in OpenDAL's layout, as DESIGN.md says to create it. */
  const createTable = async (tag?: string) => {
    const name = tableName(tag);
    await db.query(`CREATE TABLE ${name} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
    return name;
  };
  const rows = async (table: string) =>
    (await db.query<{ key: string; value: Buffer }>(`SELECT key, value FROM ${quoted(table)} ORDER BY key COLLATE "C"`))
      .rows;

  beforeAll(async () => {
    db = new pg.Client({ connectionString: SHARED_URL });
    await db.connect();
  });
  afterAll(async () => {
    for (const t of tables) await db.query(`DROP TABLE IF EXISTS ${quoted(t)}`);
    await db.end();
  });

  describe("conformance", () => {
    let table: string;
    beforeAll(async () => {
      table = await createTable("conf");
    });
    describeOperatorConformance({
      name: "postgresql (pg)",
      create: () => postgresqlOperator({ connection_string: SHARED_URL, table }, "postgresql"),
    });
  });

  it("states its capabilities: shared, durable, lists", async () => {
    const op = await postgresqlOperator({ connection_string: SHARED_URL, table: await createTable() }, "pg");
    expect(op.scheme).toBe("postgresql");
    expect(op.capabilities).toMatchObject({ list: true, lastModified: false, durable: true, shared: true });
    expect(op.capabilities.syncRead).toBe(false);
    expect([op.capabilities.batchSize, op.capabilities.digest]).toEqual([1000, { algorithm: "md5", source: "keys" }]);
    await op.close();
  });

  // Roots as OpenDAL 0.49.1 applies them (found with the binding): "/" is none, "ns" = "/ns" = "/ns/" = "ns/",
  // empty segments drop.
  const roots: [root: string, rowPrefix: string][] = [
    ["/", ""],
    ["/ns/", "ns/"],
    ["ns", "ns/"],
    ["/ns/sub", "ns/sub/"],
    ["//x//y//", "x/y/"],
  ];
  for (const [root, rowPrefix] of roots) {
    it(`writes what OpenDAL reads and reads what it writes, same rows (root ${JSON.stringify(root)})`, async () => {
      const options = { connection_string: SHARED_URL, table: await createTable("compat"), root };
      const ours = await postgresqlOperator(options, "ours");
      const theirs = await opendalOperator("postgresql", options, { profile: "theirs" });
      try {
        for (const [name, value] of compatValues()) {
          const bytes = Buffer.from(value);
          await ours.write(`ours/${name}`, value);
          await theirs.write(`theirs/${name}`, value);
          expect(Buffer.from(await theirs.read(`ours/${name}`)).equals(bytes), `OpenDAL reads ours: ${name}`).toBe(
            true,
          );
          expect(Buffer.from(await ours.read(`theirs/${name}`)).equals(bytes), `ours reads OpenDAL's: ${name}`).toBe(
            true,
          );
          expect((await ours.stat(`theirs/${name}`)).contentLength).toBe(bytes.length);
          expect((await theirs.stat(`ours/${name}`)).contentLength).toBe(bytes.length);
        }
        // The rows, seen by a plain client: one key scheme, the same bytes, whoever wrote them.
        const stored = await rows(options.table);
        const names = compatValues().map(([n]) => n);
        expect(stored.map((r) => r.key)).toEqual(
          [...names.map((n) => `${rowPrefix}ours/${n}`), ...names.map((n) => `${rowPrefix}theirs/${n}`)].sort(),
        );
        for (const [name, value] of compatValues()) {
          const pair = stored.filter((r) => r.key.endsWith(`/${name}`));
          expect(pair.map((r) => r.value.equals(Buffer.from(value)))).toEqual([true, true]);
        }
        expect(await ours.list("theirs/")).toEqual(names.map((n) => `theirs/${n}`).sort());
        await ours.delete(`theirs/${names[0]}`);
        expect(await theirs.exists(`theirs/${names[0]}`)).toBe(false);
        await theirs.delete(`ours/${names[0]}`);
        await expect(ours.read(`ours/${names[0]}`)).rejects.toBeInstanceOf(NotFoundError);
      } finally {
        await ours.close();
        await theirs.close();
      }
    });
  }

  it("creates a missing table in OpenDAL's layout, which OpenDAL then reads and writes", async () => {
    const table = tableName("created");
    const options = { connection_string: SHARED_URL, table, key_field: "k", value_field: "v" };
    const ours = await postgresqlOperator(options, "ours");
    expect((await db.query("SELECT to_regclass($1) AS t", [table])).rows[0].t, "nothing before the first call").toBe(
      null,
    );
    await ours.write("a.json", "from ours");
    const columns = await db.query(
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
      [table],
    );
    expect(columns.rows).toEqual([
      { column_name: "k", data_type: "text", is_nullable: "NO" },
      { column_name: "v", data_type: "bytea", is_nullable: "NO" },
    ]);
    const theirs = await opendalOperator("postgresql", options);
    expect(text(await theirs.read("a.json"))).toBe("from ours");
    await theirs.write("b.json", "from opendal");
    expect(text(await ours.read("b.json"))).toBe("from opendal");
    await theirs.close();
    // Dropped underneath: the call fails (transient), the next one creates the table again.
    await db.query(`DROP TABLE ${table}`);
    const err = await rejection(ours.read("a.json"));
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).transient).toBe(true);
    await expect(ours.read("a.json")).rejects.toBeInstanceOf(NotFoundError);
    await ours.write("a.json", "again");
    expect(text(await ours.read("a.json"))).toBe("again");
    await ours.close();
  });

  it("a table whose value column is TEXT is a ProfileError naming the table and the layout", async () => {
    const table = tableName("textvalues");
    await db.query(`CREATE TABLE ${table} (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    const op = await postgresqlOperator({ connection_string: SHARED_URL, table }, "pg");
    const err = await rejection(op.write("a.json", "x"));
    expect(err).toBeInstanceOf(ProfileError);
    expect(err.message).toContain(`table "${table}"`);
    expect(err.message).toContain("as text, not bytea");
    expect(err.message).toContain(
      `CREATE TABLE IF NOT EXISTS "${table}" ("key" TEXT PRIMARY KEY, "value" BYTEA NOT NULL)`,
    );
    // A renamed column that is not there.
    const op2 = await postgresqlOperator({ connection_string: SHARED_URL, table, value_field: "payload" }, "pg");
    await expect(op2.read("a.json")).rejects.toThrow(/has no column "payload" \(value_field\)/);
    await op.close();
    await op2.close();
  });

  it("a table that cannot be created is a ProfileError with the CREATE TABLE to run", async () => {
    // PostgreSQL 15+ lets only the owner create in schema public: a fresh role cannot.
    const role = `${stem}_role`;
    await db.query(`CREATE ROLE ${role} LOGIN`);
    const table = tableName("nocreate");
    try {
      const url = `postgresql://${role}@${POSTGRES.host}:${POSTGRES.port}/${POSTGRES.database}`;
      const op = await postgresqlOperator({ connection_string: url, table }, "limited");
      const err = await rejection(op.write("a.json", "x"));
      expect(err).toBeInstanceOf(ProfileError);
      expect(err.message).toContain(`table "${table}" does not exist`);
      expect(err.message).toContain(`create it with: CREATE TABLE IF NOT EXISTS "${table}" ("key" TEXT PRIMARY KEY`);
      // Once someone with the right creates it (and grants it), the same operator works.
      await db.query(`CREATE TABLE ${table} (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`);
      await db.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO ${role}`);
      await op.write("a.json", "x");
      expect(text(await op.read("a.json"))).toBe("x");
      await op.close();
    } finally {
      await db.query(`DROP TABLE IF EXISTS ${table}`);
      await db.query(`DROP ROLE ${role}`);
    }
  });

  it("refuses table and column names OpenDAL would paste into its SQL as something else", async () => {
    // OpenDAL 0.49.1 (and the Rust crate) sends these names unquoted in places: only plain lower-case names are safe.
    const sentinel = await createTable("sentinel");
    await db.query(`INSERT INTO ${sentinel} VALUES ('still', 'here')`);
    const hostile: Record<string, string>[] = [
      { table: `kv"; drop table ${sentinel}; --` },
      { table: `kv; drop table ${sentinel}` },
      { table: sentinel, key_field: `k"; delete from ${sentinel}; --` },
      { table: sentinel, key_field: "key IS NOT NULL OR key" },
      { table: sentinel, value_field: "v' OR '1'='1" },
      // Quoted in an INSERT, folded in a DELETE: two tables for OpenDAL.
      { table: sentinel.toUpperCase() },
    ];
    for (const names of hostile) {
      const err = await rejection(postgresqlOperator({ connection_string: SHARED_URL, ...names }, "hostile"));
      expect(err, JSON.stringify(names)).toBeInstanceOf(ProfileError);
      expect(err.message).toMatch(
        /^Expected `(table|key_field|value_field)` in profile "hostile" to be a SQL identifier/,
      );
    }
    expect((await rows(sentinel)).map((r) => r.key)).toEqual(["still"]);
  });

  it("quotes names all the same: reserved words work as columns", async () => {
    const table = tableName("reserved");
    const options = { connection_string: SHARED_URL, table, key_field: "order", value_field: "select" };
    const op = await postgresqlOperator(options, "pg");
    try {
      await op.write("a.json", "1");
      await op.write("b/c.json", "2");
      expect(text(await op.read("a.json"))).toBe("1");
      expect(await op.list()).toEqual(["a.json", "b/c.json"]);
      expect((await op.stat("b/c.json")).contentLength).toBe(1);
      await op.delete("a.json");
      expect(await op.exists("a.json")).toBe(false);
      const left = await db.query(`SELECT "order" AS k FROM ${table}`);
      expect(left.rows.map((r) => r.k)).toEqual(["b/c.json"]);
    } finally {
      await op.close();
    }
  });

  it("lists with LIKE, escaping %, _ and \\ in the prefix and the root", async () => {
    const table = await createTable("like");
    const open = (root: string) => postgresqlOperator({ connection_string: SHARED_URL, table, root }, "pg");
    const op = await open("/r%_\\x/");
    // Roots the unescaped pattern `r%_\x/%` would match (or, with `\` as escape, `r%_x/%`).
    const siblings = [await open("/rab\\x/"), await open("/r%_x/"), await open("/r%_\\xy/")];
    try {
      for (const k of ["p%x/a.json", "p_x/b.json", "pax/c.json", "p%xx.json", "pzx/d.json"]) await op.write(k, "1");
      for (const s of siblings) await s.write("p%x/a.json", "1");
      expect(await op.list("p%x/")).toEqual(["p%x/a.json"]);
      expect(await op.list("p%")).toEqual(["p%x/a.json", "p%xx.json"]);
      expect(await op.list("p_")).toEqual(["p_x/b.json"]);
      expect(await op.list("p")).toEqual(["p%x/a.json", "p%xx.json", "p_x/b.json", "pax/c.json", "pzx/d.json"]);
      expect(await op.list()).toEqual(["p%x/a.json", "p%xx.json", "p_x/b.json", "pax/c.json", "pzx/d.json"]);
      for (const s of siblings) expect(await s.list()).toEqual(["p%x/a.json"]);
      expect((await rows(table)).map((r) => r.key)).toContain("r%_\\x/p_x/b.json");
    } finally {
      await op.close();
      for (const s of siblings) await s.close();
    }
  });

  it("refuses an unknown option, naming it and the accepted keys; ignores `type` and empty values", async () => {
    const table = await createTable();
    const open = postgresqlOperator({ connection_string: SHARED_URL, table, endpoint: "x" }, "pg");
    await expect(open).rejects.toBeInstanceOf(ProfileError);
    await expect(open).rejects.toThrow(
      "profiles.pg.endpoint: unknown option for a postgresql profile (accepted: connection_string, table, key_field, value_field, root, pool_size)",
    );
    const op = await postgresqlOperator(
      { type: "postgresql", connection_string: SHARED_URL, table, root: "", key_field: "", pool_size: "" },
      "pg",
    );
    await op.write("a.json", "1");
    expect((await rows(table)).map((r) => r.key)).toEqual(["a.json"]);
    await op.close();
  });

  it("checks its options, naming each with the profile path, never echoing a connection string", async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ table: "kv" }, /^profiles\.pg\.connection_string: required/],
      [{ connection_string: SHARED_URL }, /^profiles\.pg\.table: required/],
      [
        { connection_string: "host=127.0.0.1 password=hunter2secret", table: "kv" },
        /connection_string: expected a URL/,
      ],
      [
        { connection_string: "mysql://root:hunter2secret@127.0.0.1/test", table: "kv" },
        /postgresql:\/\/ or postgres:\/\//,
      ],
      [{ connection_string: SHARED_URL, table: "kv", pool_size: "0" }, /^profiles\.pg\.pool_size: expected an integer/],
      [{ connection_string: SHARED_URL, table: "kv", pool_size: "ten" }, /^profiles\.pg\.pool_size/],
      [{ connection_string: SHARED_URL, table: "k\0v" }, /^Expected `table` in profile "pg" to be a SQL identifier/],
      [
        { connection_string: SHARED_URL, table: "t".repeat(64) },
        /^Expected `table` in profile "pg" to be a SQL identifier/,
      ],
      [{ connection_string: SHARED_URL, table: "kv", root: "a\0b" }, /^profiles\.pg\.root/],
    ];
    for (const [options, message] of cases) {
      const err = await rejection(postgresqlOperator(options, "pg"));
      expect(err, JSON.stringify(options)).toBeInstanceOf(ProfileError);
      expect(err.message, JSON.stringify(options)).toMatch(message);
      expect(err.message).not.toContain("hunter2secret");
    }
  });

  it("a server-side failure is a BackendError without the password, in message, cause or stack", async () => {
    // Trust auth ignores the password; the database does not exist.
    const url = `postgresql://postgres:hunter2secret@${POSTGRES.host}:${POSTGRES.port}/no_such_db`;
    const op = await postgresqlOperator({ connection_string: url, table: "kv" }, "pg");
    const err = await rejection(op.write("k.json", "v"));
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).transient).toBe(false);
    expect(err.message).toMatch(/no_such_db/);
    const cause = err.cause as Error;
    expect(`${err.message} ${err.stack} ${cause.message} ${cause.stack}`).not.toContain("hunter2secret");
    await op.close();
  });

  it("close() lets the process exit; later calls are ClosedErrors", async () => {
    const table = await createTable();
    expect(await runInChild({ connection_string: SHARED_URL, table })).toBe("closed");
    const op = await postgresqlOperator({ connection_string: SHARED_URL, table }, "pg");
    await op.write("a.json", "1");
    await op.close();
    await expect(op.read("a.json")).rejects.toBeInstanceOf(ClosedError);
    await expect(op.list()).rejects.toBeInstanceOf(ClosedError);
    await op.close();
  }, 30_000);
});

describe("postgresql native: unreachable server", () => {
  it("a dead port is a quick ProfileError without the password", async () => {
    const port = await freePort();
    const started = Date.now();
    const open = postgresqlOperator(
      { connection_string: `postgresql://postgres:hunter2secret@127.0.0.1:${port}/test`, table: "kv" },
      "pg",
    );
    await expect(open).rejects.toBeInstanceOf(ProfileError);
    await expect(open).rejects.toThrow(
      `profile "pg": cannot reach postgresql at 127.0.0.1:${port}: connection refused`,
    );
    await expect(open).rejects.not.toThrow(/hunter2secret/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe.skipIf(!binaries)("postgresql native: lifecycle on a private instance", () => {
  let server: OwnPostgres;
  const open = (extra: Record<string, string> = {}) =>
    postgresqlOperator({ connection_string: server.connectionString, table: "kv", ...extra }, "own");
  /** Backend pids of client connections to the instance, other than psql's own. */
  const backends = async () =>
    (
      await server.psql(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
      )
    )
      .split("\n")
      .filter(Boolean);
  /** Waits until the server has no client connection left (a backend exits shortly after its client leaves). */
  const drained = async () => {
    for (let i = 0; i < 60 && (await backends()).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    return (await backends()).length;
  };

  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("connects lazily, grows the pool up to pool_size, and close() ends it", async () => {
    await drained();
    const op = await open({ pool_size: "4" });
    expect(await backends()).toEqual([]);
    await op.write("a.json", "1");
    expect(await backends()).toHaveLength(1);
    await Promise.all(Array.from({ length: 32 }, (_, i) => op.write(`n${i}.json`, "x")));
    const n = (await backends()).length;
    expect(n).toBeGreaterThan(1);
    expect(n).toBeLessThanOrEqual(4);
    await op.close();
    expect(await drained()).toBe(0);
  });

  it("fails fast as a transient BackendError while the server is down, and works again when it is back", async () => {
    const op = await open();
    try {
      await op.write("before.json", "1");
      await server.kill();
      for (const call of [() => op.read("before.json"), () => op.write("during.json", "1"), () => op.list()]) {
        const started = Date.now();
        const err = await rejection(call());
        expect(err).toBeInstanceOf(BackendError);
        expect((err as BackendError).transient).toBe(true);
        expect(err.message).toContain('profile "own": postgresql');
        expect(Date.now() - started).toBeLessThan(1000);
      }
      await server.start();
      // The same operator, not reopened.
      expect(text(await op.read("before.json"))).toBe("1");
      await op.write("after.json", "2");
      expect(await op.list("after")).toEqual(["after.json"]);
    } finally {
      await op.close();
    }
  }, 60_000);

  it("a call that needs a new connection to a hung server fails after the connect timeout, transient", async () => {
    const op = await open();
    server.pause(); // the kernel still accepts the TCP connection; PostgreSQL never answers it
    try {
      const started = Date.now();
      const err = await rejection(op.read("a.json"));
      const ms = Date.now() - started;
      expect(err).toBeInstanceOf(BackendError);
      expect((err as BackendError).transient).toBe(true);
      expect(ms).toBeGreaterThan(2000);
      expect(ms).toBeLessThan(5000);
    } finally {
      server.resume();
      await op.close();
    }
    const again = await open();
    expect(text(await again.read("a.json"))).toBe("1");
    await again.close();
  }, 30_000);

  it("close() while a connection to a hung server is being made returns at once", async () => {
    const op = await open();
    server.pause();
    try {
      const pending = op.read("a.json");
      pending.catch(() => {});
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      await op.close();
      expect(Date.now() - started).toBeLessThan(500);
      await expect(pending).rejects.toBeInstanceOf(ClosedError);
    } finally {
      server.resume();
    }
  }, 30_000);

  it("reset() drops the connections; calls go on over new ones", async () => {
    await drained();
    const op = await open();
    try {
      await op.read("a.json");
      const before = await backends();
      expect(before).toHaveLength(1);
      op.reset?.();
      expect(text(await op.read("a.json"))).toBe("1");
      let after = await backends();
      for (let i = 0; i < 60 && after.includes(before[0]!); i++) {
        await new Promise((r) => setTimeout(r, 50));
        after = await backends();
      }
      expect(after).toHaveLength(1);
      expect(after).not.toContain(before[0]);
    } finally {
      await op.close();
    }
  });

  it("close() with a call stuck on a lock returns within about a second; that call is a ClosedError", async () => {
    const op = await open();
    const locker = new pg.Client({ connectionString: server.connectionString });
    await locker.connect();
    try {
      await op.write("stuck.json", "1");
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE kv IN ACCESS EXCLUSIVE MODE");
      const pending = op.read("stuck.json");
      pending.catch(() => {});
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      await op.close();
      expect(Date.now() - started).toBeLessThan(2500);
      await expect(pending).rejects.toBeInstanceOf(ClosedError);
    } finally {
      await locker.query("ROLLBACK");
      await locker.end();
    }
  }, 30_000);
});
