import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative as relativePath } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  BackendError,
  LockedError,
  NotFoundError,
  PersistenceError,
  ProfileError,
  UnsupportedError,
} from "../../src/errors.js";
import { opendalOperator, translateOpendalError } from "../../src/operators/drivers/opendal.js";
import { describeOperatorConformance } from "../conformance/index.js";
import { tsEval, tsFile } from "../helpers/child.js";

const root = mkdtempSync(join(tmpdir(), "tp-redb-"));
let n = 0;
/** A fresh database file in a directory that does not exist yet. */
const freshFile = () => join(root, `db${n++}`, "nested", "terraphim.redb");
afterAll(() => rmSync(root, { recursive: true, force: true }));

describeOperatorConformance({
  name: "redb",
  create: () => opendalOperator("redb", { datadir: freshFile(), table: "terraphim" }),
});

describe("redb", () => {
  it("states its capabilities: durable, not shared, cannot list", async () => {
    const op = await opendalOperator("redb", { datadir: freshFile(), table: "t" });
    expect(op.capabilities).toEqual({
      list: false,
      lastModified: false,
      durable: true,
      shared: false,
      syncRead: false,
    });
    await op.close();
  });

  it("list throws UnsupportedError instead of OpenDAL's silent []", async () => {
    const op = await opendalOperator("redb", { datadir: freshFile(), table: "t" });
    await op.write("a/b.json", "1");
    await expect(op.list()).rejects.toBeInstanceOf(UnsupportedError);
    await expect(op.list("a/")).rejects.toMatchObject({ code: "E_UNSUPPORTED" });
    await op.close();
  });

  it("a second open of the same file is a LockedError; close releases it and a reopen sees the data", async () => {
    const file = freshFile();
    const first = await opendalOperator("redb", { datadir: file, table: "t" }, { profile: "fast" });
    await first.write("document_a.json", '{"id":"a"}');

    const second = opendalOperator("redb", { datadir: file, table: "t" }, { profile: "again" });
    await expect(second).rejects.toBeInstanceOf(LockedError);
    await expect(second).rejects.toMatchObject({ code: "E_LOCKED", profile: "again" });
    await expect(second).rejects.toThrow(/already open in this process/);
    await expect(second).rejects.toThrow(file);

    await first.close();
    const reopened = await opendalOperator("redb", { datadir: file, table: "t" });
    expect(Buffer.from(await reopened.read("document_a.json")).toString()).toBe('{"id":"a"}');
    // The same file spelled relatively, or through a symlinked folder, is the same lock and the same handle.
    const relative = relativePath(process.cwd(), file);
    await expect(opendalOperator("redb", { datadir: relative, table: "t" })).rejects.toBeInstanceOf(LockedError);
    await reopened.close();
    const link = join(root, `link${n++}`);
    symlinkSync(dirname(file), link);
    const viaLink = await opendalOperator("redb", { datadir: join(link, "terraphim.redb"), table: "t" });
    expect(await viaLink.exists("document_a.json")).toBe(true);
    await viaLink.close();
  });

  it("reopening a file with other options is a clear ProfileError", async () => {
    const file = freshFile();
    await (await opendalOperator("redb", { datadir: file, table: "t" })).close();
    await expect(opendalOperator("redb", { datadir: file, table: "other" })).rejects.toThrow(/other options/);
  });

  it("a file locked by another process is a LockedError that says so", async () => {
    const file = freshFile();
    mkdirSync(join(file, ".."), { recursive: true });
    const script = `import { Operator } from "opendal";
      new Operator("redb", { datadir: ${JSON.stringify(file)}, table: "t" });
      console.log("ready");
      setTimeout(() => {}, 60000);`;
    const child = spawn(...tsEval(script), {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout?.once("data", () => resolve());
        child.once("exit", (code) => reject(new Error(`holder exited with ${code}`)));
      });
      const open = opendalOperator("redb", { datadir: file, table: "t" }, { profile: "redb" });
      await expect(open).rejects.toBeInstanceOf(LockedError);
      await expect(open).rejects.toThrow(/locked by another process/);
    } finally {
      child.kill();
    }
    // Our failed native open did not poison the registry: once the other process is gone, it opens.
    await new Promise((r) => child.once("exit", r));
    const op = await opendalOperator("redb", { datadir: file, table: "t" });
    await op.write("k", "v");
    await op.close();
  });

  it("a process killed while it creates databases leaves each one whole or absent, never a file redb refuses", async () => {
    const child = join(dirname(fileURLToPath(import.meta.url)), "_redb-create-child.ts");
    let opened = 0;
    const refused: string[] = [];
    for (let round = 0; round < 6; round++) {
      const dir = join(root, `kill-create-${round}`);
      mkdirSync(dir, { recursive: true });
      const proc = spawn(...tsFile(child, dir), { stdio: ["ignore", "pipe", "inherit"] });
      const exited = new Promise<void>((done) => proc.once("exit", () => done()));
      await new Promise<void>((ready) => proc.stdout.on("data", (c: Buffer) => c.includes("READY") && ready()));
      // Creation is most of the child's time: a kill lands inside one almost every round.
      await new Promise((r) => setTimeout(r, 20 + round * 15));
      proc.kill("SIGKILL");
      await exited;
      // Each database named in the directory, complete or only begun (a temporary file of its creation).
      const names = new Set(readdirSync(dir).map((f) => f.replace(/\.tp-creating-.*$/, "")));
      for (const name of names) {
        try {
          await (await opendalOperator("redb", { datadir: join(dir, name), table: "t" })).close();
          opened++;
        } catch (err) {
          refused.push(`${name}: ${(err as Error).message}`);
        }
      }
      // The next open of a database whose creation was cut short removed its temporary file.
      expect(readdirSync(dir).filter((f) => !f.endsWith(".redb"))).toEqual([]);
    }
    expect(refused).toEqual([]);
    expect(opened).toBeGreaterThan(6);
  }, 60_000);

  it("a file that is not a redb database is a ProfileError naming it, and is left as it was", async () => {
    const file = join(root, "not-redb", "zeros.redb");
    mkdirSync(dirname(file), { recursive: true });
    // What redb leaves when killed mid-creation in place: the file sized and zero-filled, no magic yet.
    writeFileSync(file, Buffer.alloc(64 * 1024));
    const err = await opendalOperator("redb", { datadir: file, table: "t" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProfileError);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(/not a redb database/);
    expect(readFileSync(file)).toEqual(Buffer.alloc(64 * 1024));
  });

  it("rejects a directory as datadir and a missing table, naming the option", async () => {
    const dir = join(root, `dir${n++}`);
    mkdirSync(dir, { recursive: true });
    await expect(opendalOperator("redb", { datadir: dir, table: "t" }, { profile: "r" })).rejects.toThrow(
      /profiles\.r\.datadir: expected the redb database file, got the directory/,
    );
    const noTable = opendalOperator("redb", { datadir: freshFile() });
    await expect(noTable).rejects.toBeInstanceOf(ProfileError);
    await expect(noTable).rejects.toThrow(/table is required/);
  });

  it("an unknown scheme is a typed error, never a silent substitute", async () => {
    await expect(opendalOperator("nosuchscheme", {})).rejects.toBeInstanceOf(UnsupportedError);
  });
});

describe("translateOpendalError", () => {
  const t = (message: string, key = "k.json") =>
    translateOpendalError(Object.assign(new Error(message), { code: "GenericFailure" }), {
      profile: "p",
      key,
      op: "read",
    });

  it("maps each OpenDAL kind to a typed error", () => {
    const notFound = t(
      "NotFound (permanent) at read, context: { service: redb, path: k.json } => kv not found in redb",
    );
    expect(notFound).toBeInstanceOf(NotFoundError);
    expect(notFound).toMatchObject({ code: "E_NOT_FOUND", profile: "p", key: "k.json" });
    expect(notFound.message).toMatch(/^profile "p": read "k.json" failed: NotFound/);

    expect(t("Unsupported (permanent) at , context: { scheme: x } => scheme is not enabled")).toBeInstanceOf(
      UnsupportedError,
    );
    const config = t("ConfigInvalid (permanent) at , context: { service: redb } => table is required but not set");
    expect(config).toBeInstanceOf(ProfileError);
    expect(config).not.toBeInstanceOf(LockedError);

    const rate = t("RateLimited (permanent) at write => slow down");
    expect(rate).toBeInstanceOf(BackendError);
    expect((rate as BackendError).transient).toBe(true);

    const temporary = t(
      "Unexpected (temporary) at write, context: { service: redis } => get connection from pool failed",
    );
    expect(temporary).toMatchObject({ code: "E_BACKEND", transient: true });
    const permanent = t("PermissionDenied (permanent) at write => 403");
    expect(permanent).toMatchObject({ code: "E_BACKEND", transient: false });
    expect(t("Unexpected (persistent) at read => boom")).toMatchObject({ code: "E_BACKEND", transient: false });
  });

  it("recognises redb and sled file locks", () => {
    expect(
      t("Unexpected (permanent) at  => error from redb, source: Database already open. Cannot acquire lock."),
    ).toBeInstanceOf(LockedError);
    const sled = t(
      'ConfigInvalid (permanent) at , context: { service: sled, datadir: d } => open db, source: IO error: could not acquire lock on "d/db"',
    );
    expect(sled).toBeInstanceOf(LockedError);
    expect(sled.code).toBe("E_LOCKED");
  });

  it("handles non-Error values and passes our own errors through", () => {
    const odd = translateOpendalError("boom", { op: "stat" });
    expect(odd).toBeInstanceOf(BackendError);
    expect(odd.message).toContain("boom");
    const ours = new NotFoundError("gone");
    expect(translateOpendalError(ours, { op: "read" })).toBe(ours);
    expect(odd).toBeInstanceOf(PersistenceError);
  });

  it("keeps secrets out of the message and the cause", () => {
    const raw = new Error(
      "Unexpected (permanent) at write => connect postgresql://postgres:hunter2secret@db:5432/x failed, secret_access_key=AKsecretValue123",
    );
    const err = translateOpendalError(raw, { profile: "pg", op: "write" });
    for (const text of [err.message, (err.cause as Error).message, (err.cause as Error).stack ?? ""]) {
      expect(text).not.toContain("hunter2secret");
      expect(text).not.toContain("AKsecretValue123");
    }
    expect(err.message).toContain("postgresql://postgres:***@db:5432/x");
  });
});
