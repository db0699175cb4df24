/**
 * The fault proxy's framing (frames.ts) on byte streams built here: every
 * stream is fed whole, byte by byte and in random cuts, and must come back as
 * the same whole frames, classified the same way (push or not, listening or
 * not, droppable or not). Our own logic, so synthetic input is the point; the
 * proxy tests (proxy.test.ts) run it against the real servers.
 */
import { describe, expect, it } from "vitest";
import { type ClientFrame, FramingError, protocolSession, respFrameEnd, type ServerFrame } from "./frames.js";

const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const arr = (...items: string[]) => `*${items.length}\r\n${items.join("")}`;
const cmd = (...args: string[]) => arr(...args.map(bulk));

/** Cuts `bytes` into pieces: whole, every byte, and random sizes. */
function cuts(bytes: Buffer): Buffer[][] {
  const out: Buffer[][] = [[bytes], [...bytes].map((b) => Buffer.from([b]))];
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  for (let t = 0; t < 5; t++) {
    const pieces: Buffer[] = [];
    for (let p = 0; p < bytes.length; ) {
      const n = 1 + Math.floor(rnd() * 17);
      pieces.push(bytes.subarray(p, p + n));
      p += n;
    }
    out.push(pieces);
  }
  return out;
}

function serverFrames(protocol: "redis" | "postgresql", frames: string[] | Buffer[], prelude?: Buffer[]) {
  const stream = Buffer.concat(frames.map((f) => (typeof f === "string" ? Buffer.from(f) : f)));
  const results: ServerFrame[][] = [];
  for (const pieces of cuts(stream)) {
    const s = protocolSession(protocol);
    for (const p of prelude ?? []) s.client(p);
    results.push(pieces.flatMap((p) => s.server(p)));
  }
  return results;
}

function clientFrames(protocol: "redis" | "postgresql", frames: (string | Buffer)[]) {
  const stream = Buffer.concat(frames.map((f) => (typeof f === "string" ? Buffer.from(f) : f)));
  const results: ClientFrame[][] = [];
  for (const pieces of cuts(stream)) {
    const s = protocolSession(protocol);
    results.push(pieces.flatMap((p) => s.client(p)));
  }
  return results;
}

describe("RESP framing", () => {
  const frames = [
    "+OK\r\n",
    "-ERR nope\r\n",
    ":42\r\n",
    "$-1\r\n",
    bulk("hello\r\nworld"),
    arr(bulk("subscribe"), bulk("ch"), ":1\r\n"),
    arr(bulk("message"), bulk("ch"), bulk('{"v":1,"k":["a"]}')),
    arr(bulk("pmessage"), bulk("c*"), bulk("ch"), bulk("x")),
    arr(bulk("pong"), bulk("")),
    `>3\r\n${bulk("message")}${bulk("ch")}${bulk("p")}`,
    `>2\r\n${bulk("invalidate")}${arr(bulk("k1"), bulk("k2"))}`,
    `%2\r\n+a\r\n:1\r\n+b\r\n*2\r\n_\r\n#t\r\n`,
    `|1\r\n+ttl\r\n:3\r\n`,
    "*-1\r\n",
    `~2\r\n,1.5\r\n(123456789012345678901234567890\r\n`,
    `=${"txt:abc".length}\r\ntxt:abc\r\n`,
    arr(arr(arr(bulk("deep"))), bulk("x".repeat(3000))),
  ];
  const pushes = [6, 7, 9, 10];

  it("cuts a server stream into the same whole frames however it arrives, and marks pushes", () => {
    for (const got of serverFrames("redis", frames)) {
      expect(got.map((f) => f.bytes.toString())).toEqual(frames);
      expect(got.flatMap((f, i) => (f.push ? [i] : []))).toEqual(pushes);
      expect(got.every((f) => f.droppable)).toBe(true);
    }
  });

  it("tells a listening command (subscribe, tracking without REDIRECT) from the others, inline commands too", () => {
    const sent = [
      cmd("HELLO", "3"),
      cmd("GET", "subscribe"),
      cmd("subscribe", "ch"),
      cmd("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p", "REDIRECT", "7"),
      cmd("client", "tracking", "on", "bcast"),
      "PING\r\n",
      "psubscribe x*\r\n",
      cmd("SSUBSCRIBE", "s"),
    ];
    for (const got of clientFrames("redis", sent)) {
      expect(got.map((f) => f.bytes.toString())).toEqual(sent);
      expect(got.map((f) => f.listens)).toEqual([false, false, true, false, true, false, true, true]);
    }
  });

  it("says when bytes are not RESP", () => {
    expect(() => respFrameEnd(Buffer.from("?what\r\n"), 0)).toThrow(FramingError);
    expect(() => respFrameEnd(Buffer.from("$x\r\n"), 0)).toThrow(FramingError);
    expect(respFrameEnd(Buffer.from("$5\r\nab"), 0)).toBe(-1);
  });
});

/** A typed PostgreSQL message. */
const pg = (type: string, body: Buffer | string = "") => {
  const b = typeof body === "string" ? Buffer.from(body) : body;
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(4 + b.length, 1);
  return Buffer.concat([head, b]);
};
const untyped = (code: number, body = "") => {
  const b = Buffer.from(body);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + b.length, 0);
  head.writeInt32BE(code, 4);
  return Buffer.concat([head, b]);
};
const cstr = (s: string) => `${s}\0`;

describe("PostgreSQL framing", () => {
  const startup = untyped(196608, `${cstr("user")}${cstr("postgres")}\0`);
  const ssl = untyped(80877103);

  it("client: start-up untyped, then typed; LISTEN in a Query or a Parse marks a listener", () => {
    const sent = [
      ssl,
      startup,
      pg("Q", cstr("SELECT 1")),
      pg("Q", cstr('  listen "tp_x"')),
      pg("P", `${cstr("s1")}${cstr("LISTEN chan")}\0\0`),
      pg("Q", cstr("SELECT 'LISTEN x'")),
      pg("X"),
    ];
    for (const got of clientFrames("postgresql", sent)) {
      expect(got.map((f) => f.bytes)).toEqual(sent);
      expect(got.map((f) => f.listens)).toEqual([false, false, false, true, true, false, false]);
    }
  });

  it("server: the one-byte SSL answer, start-up frames never droppable, NotificationResponse is a push", () => {
    const notify = pg("A", Buffer.concat([Buffer.from([0, 0, 0, 9]), Buffer.from(`${cstr("ch")}${cstr("{}")}`)]));
    const sent = [
      Buffer.from("N"),
      pg("R", Buffer.from([0, 0, 0, 0])),
      pg("S", `${cstr("server_version")}${cstr("15")}`),
      pg("K", Buffer.alloc(8)),
      pg("Z", "I"),
      pg("C", cstr("LISTEN")),
      pg("Z", "I"),
      notify,
      pg("D", Buffer.alloc(300, 1)),
    ];
    for (const got of serverFrames("postgresql", sent, [ssl, startup])) {
      expect(got.map((f) => f.bytes)).toEqual(sent);
      expect(got.map((f) => f.droppable)).toEqual([false, false, false, false, false, true, true, true, true]);
      expect(got.map((f) => f.push)).toEqual([false, false, false, false, false, false, false, true, false]);
    }
  });

  it("after a TLS answer ('S') the session is raw: nothing is droppable", () => {
    const s = protocolSession("postgresql");
    s.client(ssl);
    const got = s.server(Buffer.from("S\x16\x03\x01rest-of-handshake"));
    expect(got.map((f) => f.bytes.toString("latin1"))).toEqual(["S", "\x16\x03\x01rest-of-handshake"]);
    expect(s.server(pg("A", "x")).every((f) => !f.droppable && !f.push)).toBe(true);
  });

  it("says when a length is impossible", () => {
    const s = protocolSession("postgresql");
    s.client(startup);
    expect(() => s.server(Buffer.from([0x52, 0, 0, 0, 1]))).toThrow(FramingError);
  });
});
