// The library in ten lines (the full walk-through is `npx terraphim-persistence demo`).
import { DeviceStorage, Persistable } from "../dist/index.js";

class Note extends Persistable {
  text = "";
  constructor(id) {
    super();
    this.id = id;
  }
  getKey() {
    return `note_${this.normalizeKey(this.id)}.json`;
  }
}

const storage = await DeviceStorage.instance(); // settings.toml, or memory + sqlite by default
await Object.assign(new Note("a"), { text: "hi" }).withStorage(storage).save();
const { value, profile } = await new Note("a").withStorage(storage).loadWithSource();
console.log(`loaded "${value.text}" from ${profile}`);
await new Note("a").withStorage(storage).delete();
await storage.close();
