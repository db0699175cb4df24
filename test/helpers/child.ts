/**
 * Child processes that run this repository's TypeScript under the runtime running the tests:
 * Node through tsx, Bun natively, Deno with sloppy imports (the sources import `.js` paths that are
 * `.ts` files). Tests that check what a process does (exits after `close()`, survives a kill) then
 * check it on every runtime of the matrix, not only on Node.
 */
import { RUNTIME } from "../../src/index.js";

/** The command and arguments that run the TypeScript file `file` with `args`. */
export function tsFile(file: string, ...args: string[]): [string, string[]] {
  if (RUNTIME.name === "deno") return [process.execPath, ["run", "-A", "--sloppy-imports", file, ...args]];
  if (RUNTIME.name === "bun") return [process.execPath, [file, ...args]];
  return [process.execPath, ["--import", "tsx", file, ...args]];
}

/** The command and arguments that run `script` (an ES module; relative imports from the working directory). */
export function tsEval(script: string): [string, string[]] {
  if (RUNTIME.name === "deno") return [process.execPath, ["eval", "--sloppy-imports", script]];
  if (RUNTIME.name === "bun") return [process.execPath, ["-e", script]];
  return [process.execPath, ["--import", "tsx", "--input-type=module", "-e", script]];
}
