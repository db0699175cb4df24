#!/usr/bin/env node
/**
 * The `terraphim-persistence` executable: runs the program on the process's
 * arguments and exits with its code.
 *
 * @module
 */
import { main } from "./program.js";

const code = await main(process.argv.slice(2));
// Let stdout drain (it may be a pipe), then exit even if a backend left a handle open.
process.stdout.write("", () => process.exit(code));
