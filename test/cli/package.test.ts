/**
 * The package as users get it: `npm pack`, install the tarball into an empty
 * project with `--ignore-scripts` (the registry is used for the dependencies;
 * nothing is compiled: the embedded default runs on the runtime's own SQLite
 * and zstd), run its `bin`, import it at run time, and type-check a `.ts` file
 * that uses it with `tsc`. Optional peers (OpenDAL, mysql2, ...) are installed
 * only by the test that needs them, as a user would.
 */
import { execFile } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliEnv, cliEnv, ensureBuilt, ROOT } from "./_helpers.js";

const exec = promisify(execFile);
const TSC = join(ROOT, "node_modules", "typescript", "bin", "tsc");

let dir: string;
let project: string;
let tarball: string;
let files: string[];
let t: CliEnv;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tp-pack-"));
  project = join(dir, "project");
  mkdirSync(project);
  t = cliEnv();
  // dist is built (and kept fresh) by ensureBuilt under a lock shared with the other CLI tests;
  // --ignore-scripts keeps `prepare` from rebuilding it underneath them.
  await ensureBuilt();
  const { stdout } = await exec("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
  const packed = (JSON.parse(stdout) as { filename: string; files: { path: string }[] }[])[0];
  if (!packed) throw new Error(`npm pack printed no result: ${stdout}`);
  tarball = join(dir, packed.filename);
  files = packed.files.map((f) => f.path);

  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "tp-consumer", private: true, type: "module" }));
  await exec("npm", ["install", tarball, "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: project,
    maxBuffer: 64 * 1024 * 1024,
    timeout: 580_000,
  });
}, 600_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  t?.cleanup();
});

/** Bytes of every file under `path` (links not followed). */
function treeBytes(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    total += entry.isDirectory() ? treeBytes(p) : lstatSync(p).size;
  }
  return total;
}

/** Runs an ES module snippet in the consumer project; its stdout, or `FAILED <stderr>`. */
const importIn = (code: string) =>
  exec(process.execPath, ["--input-type=module", "-e", code], { cwd: project, env: t.env, maxBuffer: 1 << 24 }).then(
    (r) => r.stdout,
    (e: { stderr: string }) => `FAILED ${e.stderr}`,
  );

describe("npm package", () => {
  it("holds only what users need", () => {
    expect(files).toContain("package.json");
    expect(files).toContain("README.md");
    expect(files).toContain("dist/index.js");
    expect(files).toContain("dist/index.d.ts");
    expect(files).toContain("dist/cli/bin.js");
    const unexpected = files.filter((f) => !/^(package\.json|README\.md|LICENSE(\.\w+)?|dist\/.+)$/.test(f));
    expect(unexpected).toEqual([]);
    // No tests, sources or tooling inside dist either.
    expect(files.filter((f) => /\.test\.|(^|\/)test\/|\.ts$/.test(f) && !f.endsWith(".d.ts"))).toEqual([]);
    // Every module shipped is built from a current source file (dist is not cleaned by the build).
    const stale = files
      .filter((f) => f.startsWith("dist/") && f.endsWith(".js"))
      .filter((f) => !existsSync(join(ROOT, "src", f.slice("dist/".length).replace(/\.js$/, ".ts"))));
    expect(stale, "stale files in dist/: rm -rf dist && npm run build").toEqual([]);
  });

  it("runs the demo bin from the installed package", async () => {
    const bin = join(project, "node_modules", ".bin", "terraphim-persistence");
    const { stdout } = await exec(bin, ["demo", "--json"], { env: t.env, cwd: project });
    const d = JSON.parse(stdout) as { afterRestart: { loadedFrom: string; writeBack: boolean }; nextLoadFrom: string };
    expect(d.afterRestart).toMatchObject({ loadedFrom: "sqlite", writeBack: true });
    expect(d.nextLoadFrom).toBe("memory");
    const help = await exec(bin, ["--help"], { env: t.env });
    expect(help.stdout).toMatch(/Usage: terraphim-persistence/);
  });

  it("installs small: no native build, node_modules under 10 MB, no optional peer pulled in", () => {
    const bytes = treeBytes(join(project, "node_modules"));
    expect(bytes, `node_modules holds ${(bytes / 1e6).toFixed(1)} MB`).toBeLessThan(10 * 1024 * 1024);
    for (const peer of ["opendal", "better-sqlite3", "zstd-napi", "mysql2", join("@opendal", "lib-linux-x64-gnu")]) {
      expect(existsSync(join(project, "node_modules", peer)), peer).toBe(false);
    }
  });

  it("memory + sqlite + zstd work from the installed package (a 2 MiB value through sqlite after a restart)", async () => {
    const out = await importIn(
      `import { DeviceStorage, runtimeSupport, silentLogger } from "terraphim-persistence";
       const settings = { profiles: { memory: { type: "memory" }, sqlite: { type: "sqlite", datadir: ${JSON.stringify(join(dir, "data"))} } } };
       const big = { id: "big", text: "terraphim ".repeat(220_000) };
       let s = await DeviceStorage.fromSettings(settings, { logger: silentLogger });
       await s.saveValue("document_big.json", big);
       const raw = await s.profile("sqlite").op.read("document_big.json");
       await s.close();
       s = await DeviceStorage.fromSettings(settings, { logger: silentLogger });
       const r = await s.loadValue("document_big.json");
       await s.close();
       const rt = runtimeSupport();
       console.log(JSON.stringify({ profile: r.profile, same: r.value.text === big.text, head: Buffer.from(raw.subarray(0, 4)).toString(), rawBytes: raw.length, sqlite: rt.sqlite.module, zstd: rt.zstd.module }));`,
    );
    expect(out).not.toMatch(/^FAILED/);
    const r = JSON.parse(out) as Record<string, unknown>;
    expect(r).toMatchObject({ profile: "sqlite", same: true, head: "ZSTD", zstd: "node:zlib" });
    expect(r.sqlite).toMatch(/^(node|bun):sqlite$/);
    expect(r.rawBytes).toBeLessThan(100_000);
  });

  it("a redb profile without OpenDAL fails naming the install command, and works once it is installed", async () => {
    const redb = `import { createOperator } from "terraphim-persistence";
       try {
         const op = await createOperator("redb", { datadir: ${JSON.stringify(join(dir, "x.redb"))}, table: "t" }, { profile: "local" });
         await op.write("document_a.json", '{"id":"a"}');
         console.log("ok " + Buffer.from(await op.read("document_a.json")).toString());
         await op.close();
       } catch (e) { console.log(e.code + " " + e.message); }`;
    const before = await importIn(redb);
    expect(before).toMatch(/^E_PROFILE profile "local": scheme "redb" needs the optional package "opendal"/);
    expect(before).toContain("`npm install opendal@0.49.1`");
    await exec("npm", ["install", "opendal@0.49.1", "--no-audit", "--no-fund", "--loglevel=error"], {
      cwd: project,
      maxBuffer: 64 * 1024 * 1024,
      timeout: 300_000,
    });
    expect(await importIn(redb)).toBe('ok {"id":"a"}\n');
  }, 320_000);

  it("imports at run time", async () => {
    const { stdout } = await exec(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { DeviceStorage } from "terraphim-persistence";
         const s = await DeviceStorage.fromSettings({ profiles: { memory: { type: "memory" } } });
         await s.saveValue("k.json", { a: 1 });
         console.log(JSON.stringify((await s.loadValue("k.json")).value));
         await s.close();`,
      ],
      { cwd: project, env: t.env },
    );
    expect(stdout.trim()).toBe('{"a":1}');
  });

  it("type-checks a TypeScript file that uses it (module nodenext)", async () => {
    writeFileSync(
      join(project, "index.ts"),
      `import { DeviceStorage, type LoadResult, Persistable, PersistenceError } from "terraphim-persistence";

class Note extends Persistable {
  text = "";
  constructor(public id: string) {
    super();
  }
  getKey(): string {
    return \`note_\${this.normalizeKey(this.id)}.json\`;
  }
}

const storage: DeviceStorage = await DeviceStorage.fromSettings({ profiles: { memory: { type: "memory" } } });
await Object.assign(new Note("a"), { text: "hi" }).withStorage(storage).save();
const r: LoadResult<Note> = await new Note("a").withStorage(storage).loadWithSource();
const text: string = r.value.text;
const code: string = new PersistenceError("x").code;
console.log(text, r.profile, code);
await storage.close();
`,
    );
    // A wrong type must fail: proof that the package's types are really read (not \`any\`).
    writeFileSync(
      join(project, "wrong.ts"),
      `import { DeviceStorage } from "terraphim-persistence";\nexport const n: number = DeviceStorage.instance();\n`,
    );
    const tsconfig = (file: string) =>
      JSON.stringify({
        compilerOptions: {
          target: "es2022",
          module: "nodenext",
          moduleResolution: "nodenext",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          // The package's declarations use Node's types (as any Node library's do); take @types/node from this repo.
          typeRoots: [join(ROOT, "node_modules", "@types")],
          types: ["node"],
        },
        files: [file],
      });
    writeFileSync(join(project, "tsconfig.json"), tsconfig("index.ts"));
    writeFileSync(join(project, "tsconfig.wrong.json"), tsconfig("wrong.ts"));
    await exec(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: project }).catch((e) => {
      throw new Error(`tsc failed on index.ts:\n${e.stdout}`);
    });
    const wrong = await exec(process.execPath, [TSC, "-p", "tsconfig.wrong.json"], { cwd: project }).then(
      () => "",
      (e: { stdout: string }) => e.stdout,
    );
    expect(wrong).toMatch(/TS2322: Type 'Promise<DeviceStorage>' is not assignable to type 'number'/);
  }, 60_000);

  it("ships keyv, unstorage and otel as subpath exports whose peers are optional (installed only by those who use them)", async () => {
    for (const name of ["keyv", "unstorage", "otel"]) {
      expect(files).toContain(`dist/adapters/${name}.js`);
      expect(files).toContain(`dist/adapters/${name}.d.ts`);
    }
    // Optional peers: installing the package installed none of them.
    for (const peer of ["keyv", "unstorage", join("@opentelemetry", "api")]) {
      expect(existsSync(join(project, "node_modules", peer)), peer).toBe(false);
    }
    // The subpaths resolve (the exports map). The Keyv store needs nothing of keyv at run time (types
    // only); the others name the missing peer.
    expect(await importIn('await import("terraphim-persistence/keyv"); console.log("ok")')).toBe("ok\n");
    expect(await importIn('await import("terraphim-persistence/unstorage")')).toMatch(/FAILED[\s\S]*'unstorage'/);
    expect(await importIn('await import("terraphim-persistence/otel")')).toMatch(/FAILED[\s\S]*'@opentelemetry\/api'/);
    await exec(
      "npm",
      [
        "install",
        "keyv@5.6.0",
        "unstorage@1.17.6",
        "@opentelemetry/api@1.9.1",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
      ],
      { cwd: project, maxBuffer: 64 * 1024 * 1024, timeout: 300_000 },
    );
    const out = await importIn(
      `const { KeyvTerraphim } = await import("terraphim-persistence/keyv");
       const { terraphimDriver } = await import("terraphim-persistence/unstorage");
       const { instrument } = await import("terraphim-persistence/otel");
       console.log([typeof KeyvTerraphim, typeof terraphimDriver, typeof instrument].join(","));`,
    );
    expect(out.trim()).toBe("function,function,function");
  }, 320_000);
});
