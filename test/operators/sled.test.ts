import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { LockedError } from "../../src/errors.js";
import { opendalOperator } from "../../src/operators/drivers/opendal.js";
import { describeOperatorConformance } from "../conformance/index.js";
import { tsEval } from "../helpers/child.js";

const root = mkdtempSync(join(tmpdir(), "tp-sled-"));
let n = 0;
/** A fresh sled directory (not created yet). */
const freshDir = () => join(root, `db${n++}`, "sled");
afterAll(() => rmSync(root, { recursive: true, force: true }));

describeOperatorConformance({ name: "sled", create: () => opendalOperator("sled", { datadir: freshDir() }) });

describe("sled", () => {
  it("states its capabilities: durable, lists, not shared", async () => {
    const op = await opendalOperator("sled", { datadir: freshDir() });
    expect(op.capabilities).toEqual({ list: true, lastModified: false, durable: true, shared: false, syncRead: false });
    await op.close();
  });

  it("one open operator per directory; data survives close and reopen", async () => {
    const dir = freshDir();
    const op = await opendalOperator("sled", { datadir: dir });
    await op.write("conversations/index.json", "[1]");
    await expect(opendalOperator("sled", { datadir: dir })).rejects.toBeInstanceOf(LockedError);
    await op.close();
    const again = await opendalOperator("sled", { datadir: dir });
    expect(Buffer.from(await again.read("conversations/index.json")).toString()).toBe("[1]");
    expect(await again.list("conversations/")).toEqual(["conversations/index.json"]);
    await again.close();
  });

  it("close() waits for sled's delayed flush: writes survive a process.exit() right after it", async () => {
    const dir = freshDir();
    const module = fileURLToPath(new URL("../../src/operators/drivers/opendal.ts", import.meta.url));
    // Evaluated from the repository (Deno resolves the optional peer `opendal` only from there).
    const script = `import { opendalOperator } from ${JSON.stringify(module)};
      const op = await opendalOperator("sled", { datadir: ${JSON.stringify(dir)} });
      for (let i = 0; i < 50; i++) await op.write("k" + i, "v" + i);
      await op.close();
      process.exit(0);`;
    await promisify(execFile)(...tsEval(script), { cwd: fileURLToPath(new URL("../..", import.meta.url)) });
    const op = await opendalOperator("sled", { datadir: dir });
    expect(await op.list()).toHaveLength(50);
    expect(Buffer.from(await op.read("k49")).toString()).toBe("v49");
    await op.close();
  });
});
