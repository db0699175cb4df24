/**
 * The victim of the crash-consistency test (crash.test.ts): opens sqlite, redb
 * and fs profiles under `<dir>`, then saves and deletes values from several
 * concurrent workers until it is killed. Every operation is announced on
 * stdout before it starts (`ISSUE`) and after its promise resolved (`ACK`),
 * with a blocking write straight into the pipe: a line printed is a line the
 * parent reads even after a SIGKILL (process.stdout would buffer it in this
 * process when the pipe is full, and the kill would lose it).
 *
 * Usage: node --import tsx test/reliability/_crash-child.ts <dir> <seed> [durable|sled]
 */
import { writeSync } from "node:fs";
import { join } from "node:path";
import { silentLogger } from "../../src/logger.js";
import { seededRandom } from "../../src/operators/wrappers/chaos.js";
import { DeviceStorage } from "../../src/storage/device-storage.js";
import { CRASH_KEYS, crashSettings, crashValue } from "./_crash-shared.js";

const [dir, seedArg, kindArg] = process.argv.slice(2);
const kind = kindArg === "sled" ? "sled" : "durable";
if (!dir) throw new Error("usage: _crash-child.ts <dir> <seed>");
const random = seededRandom(Number(seedArg ?? 1));
const pause = new Int32Array(new SharedArrayBuffer(4));
/** Writes the whole line into the pipe (fd 1 is non-blocking: wait while the parent drains it). */
function say(line: string): void {
  let bytes = Buffer.from(`${line}\n`);
  while (bytes.length > 0) {
    try {
      bytes = bytes.subarray(writeSync(1, bytes));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

const storage = await DeviceStorage.fromSettings(crashSettings(dir, kind), { logger: silentLogger, probeReads: 1 });
if (storage.profileErrors.size > 0 || storage.ops.size !== (kind === "sled" ? 1 : 3)) {
  say(`FAIL ${[...storage.profileErrors].map(([n, e]) => `${n}: ${e.message}`).join("; ")}`);
  process.exit(2);
}
say(`READY ${process.pid} ${join(dir)}`);

let next = 0;
async function worker(): Promise<never> {
  for (;;) {
    const i = next++;
    const key = `k${Math.floor(random() * CRASH_KEYS)}.json`;
    const del = random() < 0.1;
    say(`ISSUE ${del ? "delete" : "save"} ${key} ${i}`);
    if (del) await storage.deleteValue(key);
    else await storage.saveValue(key, crashValue(key, i));
    say(`ACK ${del ? "delete" : "save"} ${key} ${i} ${Date.now()}`);
  }
}
await Promise.all([worker(), worker(), worker(), worker()]);
