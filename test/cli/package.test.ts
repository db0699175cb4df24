/**
 * The package as users get it: `npm pack`, install the tarball into an empty
 * project (the registry is used for the dependencies; better-sqlite3 and
 * zstd-napi compile from source, a few minutes), run its `bin`, import it
 * at run time, and type-check a `.ts` file that uses it with `tsc`.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
  await exec("npm", ["install", tarball, "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: project,
    maxBuffer: 64 * 1024 * 1024,
    timeout: 580_000,
  });
}, 600_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  t?.cleanup();
});

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
    const importIn = (code: string) =>
      exec(process.execPath, ["--input-type=module", "-e", code], { cwd: project, env: t.env }).then(
        (r) => r.stdout,
        (e: { stderr: string }) => `FAILED ${e.stderr}`,
      );
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
