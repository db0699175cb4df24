/**
 * Instance B of the cross-process write-back race (race-process.test.ts): a
 * memory tier over the shared redis tier, whose reads the chaos wrapper can
 * slow down, on the coherence bus. Driven over IPC by the test (instance A).
 *
 * Usage (forked with `--import tsx`): _race-child.ts <root> <channel>
 */
import {
  chaosOperator,
  createOperator,
  DeviceStorage,
  memoryOperator,
  type Operator,
  silentLogger,
} from "../../src/index.js";

const [root, channel] = process.argv.slice(2) as [string, string];
const send = (m: Record<string, unknown>) => process.send?.(m);
const inner = await createOperator("redis", { endpoint: "tcp://127.0.0.1:6379", root });
let readsAnswered = 0;
// Says when redis answered a read (the chaos wrapper then holds the reply back).
const spy: Operator = Object.create(inner, {
  read: {
    value: async (key: string) => {
      const data = await inner.read(key);
      readsAnswered++;
      send({ ev: "read-answered", n: readsAnswered });
      return data;
    },
  },
});
const chaos = chaosOperator(spy);
const b = await DeviceStorage.fromOperators(
  [
    { name: "mem", op: memoryOperator(), speed: 1 },
    { name: "r", op: chaos, speed: 1000, shared: true },
  ],
  { logger: silentLogger, coherence: { bus: { type: "redis", endpoint: "tcp://127.0.0.1:6379", channel } } },
);
const memCopy = async (key: string) => {
  const e = await b.profile("mem").readEntry(key);
  return e === undefined ? null : JSON.parse(Buffer.from(e.data).toString("utf8"));
};
let remoteChangesOfKey = 0;
b.onRemoteChange((c) => {
  remoteChangesOfKey += c.keys.length;
});
while (!(b.coherenceStats()?.connected && b.coherenceStats()?.distrusted.length === 0)) {
  await new Promise((r) => setTimeout(r, 10));
}
send({ ev: "ready" });

process.on("message", async (m: { cmd: string; key: string }) => {
  if (m.cmd === "slow-load") {
    chaos.faults = { methods: ["read"], replyDelayMs: 1000 };
    const before = remoteChangesOfKey;
    const r = await b.loadValue(m.key);
    const messagesDuringLoad = remoteChangesOfKey - before;
    await b.flush();
    send({
      ev: "slow-loaded",
      value: r.value,
      messagesDuringLoad,
      memCopy: await memCopy(m.key),
      writeBacksSkipped: b.stats().mem?.writeBacksSkipped,
    });
  } else if (m.cmd === "load") {
    chaos.faults = {};
    const r = await b.loadValue(m.key);
    await b.flush();
    send({ ev: "loaded", value: r.value, profile: r.profile, memCopy: await memCopy(m.key) });
  } else if (m.cmd === "exit") {
    await b.close();
    await inner.close();
    process.exit(0);
  }
});
