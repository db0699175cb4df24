/**
 * The native `mysql` driver (mysql2) on the machine's shared MariaDB
 * (127.0.0.1:3306, root, database `test`): every table this file uses has a
 * random `tp_mysql_` name and is dropped afterwards. Outages go through a TCP
 * proxy the test owns (the shared server is never stopped).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { promisify } from "node:util";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackendError, ClosedError, InvalidKeyError, NotFoundError, ProfileError } from "../../src/errors.js";
import { mysqlOperator } from "../../src/operators/drivers/mysql.js";
import { opendalOperator } from "../../src/operators/drivers/opendal.js";
import { describeOperatorConformance } from "../conformance/index.js";
import { tsEval } from "../helpers/child.js";
import { freePort, requireServer } from "../helpers/servers.js";
import { compatValues } from "./_compat-values.js";

const HOST = "127.0.0.1";
const PORT = 3306;
const URL_ = `mysql://root@${HOST}:${PORT}/test`;
const ok = await requireServer("mysql (MariaDB)", HOST, PORT);
const has = ok && (await opendalHasMysql());
const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A fresh table name (created by whoever opens it first; dropped in afterAll). */
const tables: string[] = [];
const tableName = (tag = "") => {
  const name = `tp_mysql_${tag}${randomBytes(5).toString("hex")}`;
  tables.push(name);
  return name;
};
const quote = (name: string) => `\`${name.replaceAll("`", "``")}\``;

/** Whether the binding has a `mysql` service (0.49.1's Linux and macOS builds do; Windows builds may not). */
async function opendalHasMysql(): Promise<boolean> {
  try {
    const { Operator } = await import("opendal");
    new Operator("mysql", { connection_string: URL_, table: "t" });
    return true;
  } catch (err) {
    const msg = `OpenDAL compat NOT checked: the opendal binding here has no mysql service (${(err as Error).message}); the layout and keys follow OpenDAL's source (services/mysql, v0.54.1 core) instead`;
    // The pinned binding (0.49.1) has it on Linux: under CI a missing service is a failure, not a skip.
    if (process.env.CI) throw new Error(msg);
    console.warn(`\n!!! ${msg} !!!\n`);
    return false;
  }
}

/**
 * A TCP proxy to the shared server that a test can break: `kill()` closes the
 * port and every connection through it (a dead server), `start()` opens the
 * same port again, `freeze()` keeps the connections but stops passing bytes on
 * them (a hung server; new connections still pass).
 */
async function startProxy() {
  const port = await freePort();
  const pairs = new Set<[Socket, Socket]>();
  let server: Server | undefined;
  const proxy = {
    port,
    /** Client connections currently open through the proxy. */
    get connections() {
      return pairs.size;
    },
    async start() {
      const s = createServer((client) => {
        const upstream = connect(PORT, HOST);
        const pair: [Socket, Socket] = [client, upstream];
        pairs.add(pair);
        client.pipe(upstream);
        upstream.pipe(client);
        const drop = () => {
          pairs.delete(pair);
          client.destroy();
          upstream.destroy();
        };
        client.on("error", drop).on("close", drop);
        upstream.on("error", drop).on("close", drop);
      });
      server = s;
      await new Promise<void>((resolve) => s.listen(port, HOST, resolve));
    },
    async kill() {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      server = undefined;
    },
    freeze() {
      // Bytes are read and dropped (not paused), so that a peer closing its end is still seen.
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.on("data", () => {}).resume();
        upstream.on("data", () => {}).resume();
      }
    },
  };
  await proxy.start();
  return proxy;
}

describe.skipIf(!ok)("mysql native (shared MariaDB on 127.0.0.1:3306)", () => {
  let raw: mysql.Pool;
  const options = (table: string, extra: Record<string, string> = {}) => ({ connection_string: URL_, table, ...extra });
  /** Row keys of `table` as the server holds them (bytes decoded as UTF-8), sorted by bytes. */
  const rowKeys = async (table: string, keyField = "key") => {
    const [rows] = await raw.query(`SELECT ${quote(keyField)} AS k FROM ${quote(table)} ORDER BY ${quote(keyField)}`);
    return (rows as { k: Buffer | string }[]).map((r) => r.k.toString());
  };

  beforeAll(() => {
    raw = mysql.createPool({ host: HOST, port: PORT, user: "root", database: "test", connectionLimit: 2 });
  });
  afterAll(async () => {
    for (const t of tables) await raw.query(`DROP TABLE IF EXISTS ${quote(t)}`);
    await raw.end();
  });

  const conformanceTable = tableName("conf_");
  describeOperatorConformance({
    name: "mysql (mysql2)",
    create: () => mysqlOperator(options(conformanceTable), "mysql"),
  });

  it("states its capabilities: shared, durable, lists", async () => {
    const op = await mysqlOperator(options(tableName()), "mysql");
    expect(op.scheme).toBe("mysql");
    expect(op.capabilities).toMatchObject({ list: true, lastModified: false, durable: true, shared: true });
    expect(op.capabilities.digest).toEqual({ algorithm: "md5", source: "keys" });
    await op.close();
  });

  it("creates a missing table with OpenDAL's columns, binary, and reuses it", async () => {
    const table = tableName();
    const op = await mysqlOperator(options(table), "m");
    const [cols] = await raw.query(`SHOW FULL COLUMNS FROM ${quote(table)}`);
    expect((cols as { Field: string; Type: string; Key: string }[]).map((c) => [c.Field, c.Type, c.Key])).toEqual([
      ["key", "varbinary(2048)", "PRI"],
      ["value", "longblob", ""],
    ]);
    await op.write("document_a.json", '{"id":"a"}');
    await op.close();
    const again = await mysqlOperator(options(table), "m");
    expect(text(await again.read("document_a.json"))).toBe('{"id":"a"}');
    await again.close();
  });

  it("keys are case-sensitive and trailing spaces count (A.json, a.json, a.json )", async () => {
    const op = await mysqlOperator(options(tableName()), "m");
    await op.write("A.json", "upper");
    await op.write("a.json", "lower");
    await op.write("a.json ", "space");
    expect(text(await op.read("A.json"))).toBe("upper");
    expect(text(await op.read("a.json"))).toBe("lower");
    expect(text(await op.read("a.json "))).toBe("space");
    expect(await op.list()).toEqual(["A.json", "a.json", "a.json "]);
    await op.delete("A.json");
    expect(await op.exists("a.json")).toBe(true);
    await op.close();
  });

  it("a key longer than the key column holds (with the root) is an InvalidKeyError, never truncated", async () => {
    const table = tableName();
    const longest = "k".repeat(1024); // MAX_KEY_BYTES
    const plain = await mysqlOperator(options(table), "m");
    await plain.write(longest, "fits");
    expect(text(await plain.read(longest))).toBe("fits");
    await plain.close();
    // VARBINARY(2048): a 1100-byte root leaves 948 bytes (474 two-byte characters) for the key.
    const rooted = await mysqlOperator(options(table, { root: `/${"r".repeat(1099)}/` }), "m");
    await rooted.write("é".repeat(474), "fits");
    await expect(rooted.write("é".repeat(475), "x")).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(rooted.read(longest)).rejects.toBeInstanceOf(InvalidKeyError);
    await rooted.close();
  });

  it("a case-insensitive key column (the plain VARCHAR recipe) is a ProfileError with the ALTER that fixes it", async () => {
    const table = tableName("ci_");
    // The recipe DESIGN.md gave for OpenDAL: the database's default collation, utf8mb4_general_ci here.
    await raw.query(`CREATE TABLE ${quote(table)} (k VARCHAR(255) PRIMARY KEY, v LONGBLOB)`);
    const opts = options(table, { key_field: "k", value_field: "v" });
    const open = mysqlOperator(opts, "m");
    await expect(open).rejects.toBeInstanceOf(ProfileError);
    const message = String(await open.catch((e: Error) => e.message));
    expect(message).toContain(`profiles.m.table: mysql table \`${table}\``);
    expect(message).toMatch(/utf8mb4_general_ci/);
    const fix = /run: (ALTER TABLE .*)$/.exec(message)?.[1];
    expect(fix).toBe(
      `ALTER TABLE \`${table}\` MODIFY \`k\` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL`,
    );
    await raw.query(fix!);
    const op = await mysqlOperator(opts, "m");
    await op.write("A.json", "upper");
    await op.write("a.json", "lower");
    expect(text(await op.read("A.json"))).toBe("upper");
    // utf8mb4_bin pads with spaces: `a.json ` would be `a.json`, so such keys are refused before any I/O.
    await expect(op.write("a.json ", "x")).rejects.toBeInstanceOf(InvalidKeyError);
    expect(text(await op.read("a.json"))).toBe("lower");
    // VARCHAR(255) holds 255 characters: a longer key is refused, not truncated into another key.
    await expect(op.write(`${"x".repeat(256)}.json`, "x")).rejects.toBeInstanceOf(InvalidKeyError);
    await op.write(`${"é".repeat(255)}`, "255 characters fit");
    await op.close();
  });

  it("other unusable tables are ProfileErrors saying what to change", async () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      [
        "(`key` VARCHAR(64) COLLATE utf8mb4_bin PRIMARY KEY, `value` LONGTEXT)",
        {},
        /value column `value` is longtext, not binary.*MODIFY `value` LONGBLOB NOT NULL/,
      ],
      ["(`key` VARBINARY(64), `value` LONGBLOB)", {}, /key column `key` is not unique.*ADD PRIMARY KEY \(`key`\)/],
      [
        "(`key` VARBINARY(64) PRIMARY KEY, `data` LONGBLOB)",
        {},
        /has no value column `value` \(it has `key`, `data`\)/,
      ],
      ["(`key` BINARY(64) PRIMARY KEY, `value` LONGBLOB)", {}, /key column `key` is binary\(64\)/],
    ];
    for (const [layout, extra, message] of cases) {
      const table = tableName("bad_");
      await raw.query(`CREATE TABLE ${quote(table)} ${layout}`);
      const open = mysqlOperator(options(table, extra), "m");
      await expect(open, layout).rejects.toBeInstanceOf(ProfileError);
      await expect(open, layout).rejects.toThrow(message);
    }
  });

  it("refuses table and column names OpenDAL would paste into its SQL as something else", async () => {
    // OpenDAL 0.49.1 (and the Rust crate) sends these names unquoted in places: only plain identifiers are safe.
    const victim = tableName("v_");
    await raw.query(`CREATE TABLE ${quote(victim)} (id INT)`);
    await raw.query(`INSERT INTO ${quote(victim)} VALUES (1)`);
    const hostile: [string, Record<string, string>][] = [
      [`tp_x\`; DROP TABLE ${victim}; --x`, {}],
      [`tp_x; DROP TABLE ${victim}`, {}],
      [tableName(), { key_field: "k`ey) OR 1=1; --" }],
      [tableName(), { key_field: "key IS NOT NULL OR key" }],
      [tableName(), { value_field: "va lue`" }],
      ["x".repeat(65), {}],
      ["nul\0name", {}],
      ["emoji😀", {}],
    ];
    for (const [table, extra] of hostile) {
      const open = mysqlOperator(options(table, extra), "m");
      await expect(open, table).rejects.toBeInstanceOf(ProfileError);
      await expect(open, table).rejects.toThrow(
        /^Expected `(table|key_field|value_field)` in profile "m" to be a SQL identifier/,
      );
    }
    const [victimRows] = await raw.query(`SELECT COUNT(*) AS n FROM ${quote(victim)}`);
    expect((victimRows as { n: number }[])[0]!.n).toBe(1);
  });

  it("quotes names all the same: reserved words work as table and columns", async () => {
    const table = tableName();
    const op = await mysqlOperator(options(table, { key_field: "order", value_field: "select" }), "m");
    await op.write("a.json", "1");
    await op.write("b/c.json", "2");
    expect(text(await op.read("a.json"))).toBe("1");
    expect(await op.list()).toEqual(["a.json", "b/c.json"]);
    await op.delete("a.json");
    expect(await op.list()).toEqual(["b/c.json"]);
    expect(await rowKeys(table, "order")).toEqual(["b/c.json"]);
    await op.close();
  });

  it("list escapes %, _ and \\ in the prefix and in the root", async () => {
    const table = tableName();
    const op = await mysqlOperator(options(table), "m");
    for (const k of ["p/a%b/x", "p/aXb/x", "p/a_b/y", "p/aZb/y", "p/a", "p/ab"]) await op.write(k, "1");
    expect(await op.list("p/a%b/")).toEqual(["p/a%b/x"]);
    expect(await op.list("p/a_")).toEqual(["p/a_b/y"]);
    expect(await op.list("p/a%")).toEqual(["p/a%b/x"]);
    expect(await op.list("p/")).toEqual(["p/a", "p/a%b/x", "p/aXb/x", "p/aZb/y", "p/a_b/y", "p/ab"]);
    await op.close();
    // The root is a LIKE prefix too: rows of a root differing only where the pattern would have a wildcard stay out.
    const rooted = await mysqlOperator(options(table, { root: "/r%_\\/" }), "m");
    const neighbour = await mysqlOperator(options(table, { root: "/rX_\\/" }), "m");
    const neighbour2 = await mysqlOperator(options(table, { root: "/r%Y\\/" }), "m");
    await rooted.write("in.json", "1");
    await neighbour.write("out.json", "1");
    await neighbour2.write("out2.json", "1");
    expect(await rooted.list()).toEqual(["in.json"]);
    expect(await rowKeys(table)).toContain("r%_\\/in.json");
    for (const o of [rooted, neighbour, neighbour2]) await o.close();
  });

  it("a missing key is NotFoundError; a dropped table is a BackendError naming it", async () => {
    const table = tableName();
    const op = await mysqlOperator(options(table), "m");
    await expect(op.read("nope.json")).rejects.toBeInstanceOf(NotFoundError);
    await raw.query(`DROP TABLE ${quote(table)}`);
    const err = await op.read("a.json").catch((e: Error) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).transient).toBe(false);
    expect((err as Error).message).toContain(`\`${table}\``);
    await op.close();
  });

  it("OpenDAL's own statements (its source: core 0.54.1 services/mysql, in binding 0.49.1) see the same rows", async () => {
    // Runs with or without the binding: the SQL OpenDAL sends, with the root in the key as its build_abs_path puts it.
    const table = tableName("sql_");
    const op = await mysqlOperator(options(table, { root: "/ns/sub" }), "m");
    const [t, k, v] = [quote(table), quote("key"), quote("value")];
    const opendalSet = (key: string, value: Buffer) =>
      raw.execute(`INSERT INTO ${t} (${k}, ${v}) VALUES (?, ?)\n ON DUPLICATE KEY UPDATE ${v} = VALUES(value)`, [
        key,
        value,
      ]);
    const opendalGet = async (key: string) => {
      const [rows] = await raw.execute(`SELECT ${v} FROM ${t} WHERE ${k} = ? LIMIT 1`, [key]);
      return (rows as { value: Buffer }[])[0]?.value;
    };
    for (const [key, value, bytes] of compatValues()) {
      await opendalSet(`ns/sub/theirs/${key}`, bytes);
      expect(Buffer.from(await op.read(`theirs/${key}`)).equals(bytes), key).toBe(true);
      await op.write(`ours/${key}`, value);
      expect((await opendalGet(`ns/sub/ours/${key}`))?.equals(bytes), key).toBe(true);
    }
    await op.close();
  });

  describe("compat with the OpenDAL binding (0.49.1)", () => {
    it.skipIf(!has)("root maps to row keys exactly as OpenDAL maps it", async () => {
      const table = tableName("root_");
      const ours = await mysqlOperator(options(table), "m");
      await ours.close();
      const roots = [undefined, "/", "ns", "/ns", "/ns/", "ns//sub/", "/a/b", "//deep///x//"];
      for (const [i, root] of roots.entries()) {
        const extra: Record<string, string> = root === undefined ? {} : { root };
        const theirs = await opendalOperator("mysql", options(table, extra));
        const mine = await mysqlOperator(options(table, extra), "m");
        await theirs.write(`opendal/${i}.json`, "o");
        await mine.write(`native/${i}.json`, "n");
        const keys = (await rowKeys(table)).filter((k) => k.endsWith(`/${i}.json`));
        const prefixes = new Set(keys.map((k) => k.replace(/(opendal|native)\/\d+\.json$/, "")));
        expect(prefixes.size, `root ${JSON.stringify(root)}: ${keys.join(", ")}`).toBe(1);
        await theirs.close();
        await mine.close();
      }
      // What that is: "" for none and "/", else the segments and a slash.
      const keys = await rowKeys(table);
      for (const expected of ["native/0.json", "native/1.json", "ns/native/2.json", "ns/native/4.json"]) {
        expect(keys).toContain(expected);
      }
      expect(keys).toContain("ns/sub/native/5.json");
      expect(keys).toContain("a/b/native/6.json");
      expect(keys).toContain("deep/x/native/7.json");
    });

    for (const layout of ["created by the driver", "an OpenDAL-style VARCHAR(255) utf8mb4_bin table"]) {
      it.skipIf(!has)(`both ways, under a root with a folder (${layout})`, async () => {
        const table = tableName("compat_");
        if (layout.startsWith("an OpenDAL")) {
          await raw.query(
            `CREATE TABLE ${quote(table)} (k VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, v LONGBLOB)`,
          );
        }
        const extra: Record<string, string> = layout.startsWith("an OpenDAL")
          ? { key_field: "k", value_field: "v" }
          : {};
        const opts = options(table, { ...extra, root: "/terraphim/store/" });
        const ours = await mysqlOperator(opts, "m");
        const theirs = await opendalOperator("mysql", opts);
        for (const [key, value, bytes] of compatValues()) {
          await theirs.write(`from-opendal/${key}`, value);
          expect(Buffer.from(await ours.read(`from-opendal/${key}`)).equals(bytes), `ours reads ${key}`).toBe(true);
          expect((await ours.stat(`from-opendal/${key}`)).contentLength).toBe(bytes.length);
          await ours.write(`from-native/${key}`, value);
          expect(Buffer.from(await theirs.read(`from-native/${key}`)).equals(bytes), `OpenDAL reads ${key}`).toBe(true);
        }
        // Same rows: the root is part of the stored key, the bytes are the same.
        const keys = await rowKeys(table, layout.startsWith("an OpenDAL") ? "k" : "key");
        expect(keys).toContain("terraphim/store/from-opendal/bytes/every-byte.bin");
        expect(keys).toContain("terraphim/store/from-native/bytes/every-byte.bin");
        expect(await ours.list("from-opendal/")).toEqual(
          compatValues()
            .map(([k]) => `from-opendal/${k}`)
            .sort(),
        );
        // Overwrites and deletes are seen both ways.
        await ours.write("from-opendal/document_cafe.json", "replaced");
        expect(text(await theirs.read("from-opendal/document_cafe.json"))).toBe("replaced");
        await theirs.delete("from-native/bytes/every-byte.bin");
        expect(await ours.exists("from-native/bytes/every-byte.bin")).toBe(false);
        await ours.close();
        await theirs.close();
      });
    }
  });

  describe("options", () => {
    it("an unknown option is a ProfileError listing the accepted keys; `type` and empty values are ignored", async () => {
      await expect(mysqlOperator({ ...options("t"), tabel: "x" }, "p")).rejects.toThrow(
        "profiles.p.tabel: unknown option for a mysql profile (accepted: connection_string, table, key_field, value_field, root, pool_size)",
      );
      const op = await mysqlOperator({ ...options(tableName()), type: "mysql", key_field: "", pool_size: "" }, "p");
      await op.write("k", "v");
      await op.close();
    });

    it("bad values are ProfileErrors naming the option", async () => {
      const bad: [Record<string, string>, RegExp][] = [
        [{ table: "t" }, /profiles\.p\.connection_string: required/],
        [{ connection_string: URL_ }, /profiles\.p\.table: required/],
        [{ connection_string: "not a url", table: "t" }, /profiles\.p\.connection_string: expected a URL/],
        [{ connection_string: "postgresql://root@127.0.0.1/test", table: "t" }, /expected a mysql:\/\/ URL/],
        [
          { connection_string: "mysql://root@127.0.0.1:3306", table: "t" },
          /profiles\.p\.connection_string: no database/,
        ],
        [{ connection_string: `${URL_}?charset=latin1`, table: "t" }, /unknown parameter "charset"/],
        [{ connection_string: `${URL_}?ssl-mode=sometimes`, table: "t" }, /ssl-mode must be one of/],
        [{ connection_string: `${URL_}?ssl-ca=/nonexistent.pem`, table: "t" }, /cannot read ssl-ca/],
        [{ ...options("t"), pool_size: "0" }, /profiles\.p\.pool_size: expected an integer from 1 to 1000/],
        [{ ...options("t"), pool_size: "ten" }, /profiles\.p\.pool_size/],
        [{ ...options("t"), key_field: "k".repeat(65) }, /^Expected `key_field` in profile "p" to be a SQL identifier/],
      ];
      for (const [opts, message] of bad) {
        const open = mysqlOperator(opts, "p");
        await expect(open, JSON.stringify(opts)).rejects.toBeInstanceOf(ProfileError);
        await expect(open, JSON.stringify(opts)).rejects.toThrow(message);
      }
    });

    it("ssl-mode=required against a server without TLS is a ProfileError at open", async () => {
      const open = mysqlOperator(options(tableName(), { connection_string: `${URL_}?ssl-mode=required` }), "p");
      await expect(open).rejects.toBeInstanceOf(ProfileError);
      await expect(open).rejects.toThrow(/profile "p": cannot open mysql table/);
    });

    it("pool_size bounds the connections; 64 calls in flight all land", async () => {
      const proxy = await startProxy();
      const url = `mysql://root@${HOST}:${proxy.port}/test`;
      const op = await mysqlOperator(options(tableName(), { connection_string: url, pool_size: "3" }), "p");
      let most = 0;
      await Promise.all(
        Array.from({ length: 64 }, async (_, i) => {
          await op.write(`k${i}`, String(i));
          most = Math.max(most, proxy.connections);
        }),
      );
      expect(most).toBe(3);
      expect((await op.list()).length).toBe(64);
      await op.close();
      await proxy.kill();
    });
  });

  describe("secrets", () => {
    it("a refused login is a ProfileError without the password (message, cause, stack)", async () => {
      const open = mysqlOperator(
        options(tableName(), { connection_string: `mysql://root:hunter2secret@${HOST}:${PORT}/test` }),
        "p",
      );
      const err = await open.catch((e: Error) => e);
      expect(err).toBeInstanceOf(ProfileError);
      expect((err as Error).message).toMatch(/Access denied/);
      const all = `${(err as Error).message} ${((err as Error).cause as Error)?.message} ${(err as Error).stack} ${((err as Error).cause as Error)?.stack}`;
      expect(all).not.toContain("hunter2secret");
    });

    it("a percent-encoded password is decoded, and never shown either", async () => {
      const open = mysqlOperator(
        options(tableName(), { connection_string: `mysql://nobody:p%40ss%3Aw0rd!@${HOST}:${PORT}/test` }),
        "p",
      );
      const err = (await open.catch((e: Error) => e)) as Error;
      expect(err).toBeInstanceOf(ProfileError);
      expect(`${err.message} ${(err.cause as Error)?.message}`).not.toMatch(/p@ss:w0rd!|p%40ss/);
    });
  });

  describe("outages (through a proxy the test owns)", () => {
    it("a dead server after open: calls fail fast as transient BackendErrors, and work again once it is back", async () => {
      const proxy = await startProxy();
      const op = await mysqlOperator(
        options(tableName(), { connection_string: `mysql://root@${HOST}:${proxy.port}/test` }),
        "p",
      );
      await op.write("k.json", "1");
      await proxy.kill();
      for (const call of [() => op.read("k.json"), () => op.write("k.json", "2")]) {
        const started = Date.now();
        const err = await call().catch((e: Error) => e);
        expect(err).toBeInstanceOf(BackendError);
        expect((err as BackendError).transient).toBe(true);
        expect(Date.now() - started).toBeLessThan(4000);
      }
      await proxy.start();
      expect(text(await op.read("k.json"))).toBe("1");
      await op.close();
      await proxy.kill();
    });

    it("a hung server: reset() drops the stuck connections and calls work on fresh ones", async () => {
      const proxy = await startProxy();
      const op = await mysqlOperator(
        options(tableName(), { connection_string: `mysql://root@${HOST}:${proxy.port}/test` }),
        "p",
      );
      await op.write("k.json", "1");
      proxy.freeze(); // the one open connection hangs; new connections still pass
      const stuck = op.read("k.json").catch((e: Error) => e);
      await sleep(200);
      op.reset!();
      expect(text(await op.read("k.json"))).toBe("1");
      // The stuck call fails once reset() gave up on its connection (after the 1 s grace).
      const err = await stuck;
      expect(err).toBeInstanceOf(BackendError);
      expect((err as BackendError).transient).toBe(true);
      await op.close();
      await sleep(100);
      expect(proxy.connections).toBe(0);
      await proxy.kill();
    });

    it("a hung server: close() returns within ~1 s, ends the stuck call and drops every socket", async () => {
      const proxy = await startProxy();
      const op = await mysqlOperator(
        options(tableName(), { connection_string: `mysql://root@${HOST}:${proxy.port}/test` }),
        "p",
      );
      await Promise.all([op.write("a.json", "1"), op.write("b.json", "2")]);
      proxy.freeze();
      const stuck = op.read("a.json").catch((e: Error) => e);
      await sleep(100);
      const started = Date.now();
      await op.close();
      expect(Date.now() - started).toBeLessThan(2000);
      // The operator was closed under it: a ClosedError (the caller's doing), not a backend failure.
      expect(await stuck).toBeInstanceOf(ClosedError);
      await sleep(100);
      expect(proxy.connections).toBe(0);
      await proxy.kill();
    });

    it("a port that accepts but never answers is a ProfileError within the connect timeout", async () => {
      const held: Socket[] = [];
      const silent = createServer((s) => held.push(s));
      await new Promise<void>((resolve) => silent.listen(0, HOST, resolve));
      const port = (silent.address() as { port: number }).port;
      const started = Date.now();
      const open = mysqlOperator(options("t", { connection_string: `mysql://root@${HOST}:${port}/test` }), "p");
      await expect(open).rejects.toBeInstanceOf(ProfileError);
      await expect(open).rejects.toThrow(
        /profile "p": cannot open mysql table `t` at 127\.0\.0\.1:\d+\/test: .*ETIMEDOUT/,
      );
      expect(Date.now() - started).toBeLessThan(6000);
      for (const s of held) s.destroy();
      silent.close();
    });

    it("close() releases every socket: the process exits", async () => {
      const table = tableName();
      const script = `const { mysqlOperator } = await import("./src/operators/drivers/mysql.ts");
        const op = await mysqlOperator({ connection_string: "${URL_}", table: "${table}" }, "x");
        await Promise.all(Array.from({ length: 20 }, (_, i) => op.write("k" + i, "v")));
        await op.read("k1"); await op.close(); console.log("closed");`;
      const { stdout } = await promisify(execFile)(...tsEval(script), { timeout: 20_000 });
      expect(stdout.trim()).toBe("closed");
    });
  });
});

describe("mysql native: servers that fail", () => {
  it("a dead port is a quick ProfileError without credentials", async () => {
    const port = await freePort();
    const started = Date.now();
    const open = mysqlOperator(
      { connection_string: `mysql://root:hunter2secret@127.0.0.1:${port}/test`, table: "kv" },
      "db",
    );
    await expect(open).rejects.toBeInstanceOf(ProfileError);
    await expect(open).rejects.toThrow(`profile "db": cannot reach mysql at 127.0.0.1:${port}: connection refused`);
    await expect(open).rejects.not.toThrow(/hunter2secret/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
