/**
 * Runs `bench/_child` in a fresh Node process and returns its JSON line:
 * through tsx from the TypeScript sources, or plain node when the suite was
 * compiled to JavaScript (for profiling a build).
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const compiled = import.meta.url.endsWith(".js");
const CHILD = fileURLToPath(new URL(compiled ? "./_child.js" : "./_child.ts", import.meta.url));

export async function child<T>(mode: string, dir: string, n = 0): Promise<T> {
  const loader = compiled ? [] : ["--import", "tsx"];
  // A child that hangs must not hang the suite: it is killed and the scenario fails.
  const { stdout } = await run(process.execPath, ["--expose-gc", ...loader, CHILD, mode, dir, String(n)], {
    maxBuffer: 1 << 20,
    timeout: 120_000,
    killSignal: "SIGKILL",
  });
  const line = stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(line) as T;
}
