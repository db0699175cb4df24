// One process of the two-process check in runtime.test.ts, run by the same runtime as the test
// (node, bun or deno) on the built package: `save DIR KEY` or `load DIR KEY`. Prints one line of JSON.
import { createHash } from "node:crypto";
import { DeviceStorage, runtimeSupport, silentLogger } from "../../dist/index.js";

const [mode, dir, key] = process.argv.slice(2);
const settings = {
  profiles: { memory: { type: "memory" }, sqlite: { type: "sqlite", datadir: dir } },
};
/** 2 MiB of JSON (over the 1 MiB threshold, so zstd runs), the same in both processes. */
function value() {
  const words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];
  const items = [];
  for (let i = 0, n = 0; n < 2 * 1024 * 1024; i++) {
    const item = { i, text: `${words[i % 8]} ${words[(i * 7) % 8]} ${i % 1000}` };
    items.push(item);
    n += JSON.stringify(item).length + 1;
  }
  return { id: "two-process", items };
}
const sha = (v) => createHash("sha256").update(JSON.stringify(v)).digest("hex");

const storage = await DeviceStorage.fromSettings(settings, { logger: silentLogger });
const r = runtimeSupport();
const out = { runtime: r.runtime, version: r.version, sqlite: r.sqlite.module, zstd: r.zstd.module };
if (mode === "save") {
  const v = value();
  await storage.saveValue(key, v);
  Object.assign(out, { saved: sha(v), bytes: JSON.stringify(v).length });
} else {
  const { value: v, profile } = await storage.loadValue(key);
  Object.assign(out, { loaded: sha(v), profile, expected: sha(value()) });
}
await storage.close();
console.log(JSON.stringify(out));
