// The main job on the embedded default settings (an in-memory cache over a
// durable SQLite store under ~/.terraphim; no servers needed):
// rank the profiles, save a document to all of them, load it back, then
// start again as a fresh process would and watch the write-back refill the cache.
import { DeviceStorage, Document, loadSettings } from "../dist/index.js";

const settings = await loadSettings(); // writes a default settings.toml on first run
console.log(`settings: ${settings.source ?? "(built-in defaults)"}`);

const show = (storage) => {
  for (const e of storage.ranked) {
    console.log(
      `  ${e.name.padEnd(10)} ${e.scheme.padEnd(8)} ${e.speed.toFixed(1).padStart(8)} µs  durable=${e.op.capabilities.durable}`,
    );
  }
  for (const [name, err] of storage.profileErrors) console.log(`  ${name.padEnd(10)} left out: ${err.message}`);
};

let storage = await DeviceStorage.fromSettings(settings);
console.log(`profiles, fastest first (fastest: ${storage.fastestProfile}):`);
show(storage);

const id = `demo-${Date.now()}`;
const doc = Object.assign(new Document(id), {
  title: "Hello from terraphim-persistence",
  body: "Saved to every profile in parallel.",
  tags: ["demo"],
});
await doc.withStorage(storage).save();
console.log(`saved ${doc.getKey()} to: ${[...storage.ops.keys()].join(", ")}`);

let r = await new Document(id).withStorage(storage).loadWithSource();
console.log(`loaded "${r.value.title}" from ${r.profile}`);
await storage.close();

// A new process: the memory cache is empty, the durable profile still has the document.
storage = await DeviceStorage.fromSettings(settings);
r = await new Document(id).withStorage(storage).loadWithSource();
console.log(`after restart: loaded from ${r.profile}, write-back to ${storage.fastestProfile}: ${r.writeBack}`);
await storage.flush();
r = await new Document(id).withStorage(storage).loadWithSource();
console.log(`next load served by ${r.profile}`);
await new Document(id).withStorage(storage).delete();
await storage.close();
