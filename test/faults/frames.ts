/**
 * Protocol framing for the fault proxy (proxy.ts): splits the byte streams of
 * one Redis or PostgreSQL connection into whole protocol frames, so that the
 * proxy can drop server→client data frame by frame (the client's parser never
 * sees a torn frame) and can tell a listening connection (Redis `SUBSCRIBE`,
 * `CLIENT TRACKING` without `REDIRECT`; PostgreSQL `LISTEN`) from a data one.
 *
 * - Redis: RESP2 and RESP3 values (`+ - : _ # , ( $ ! = * ~ > % |`), nested;
 *   client inline commands (a bare line) too. A push is a RESP3 `>` frame or a
 *   RESP2 array whose first element is `message`, `pmessage` or `smessage`
 *   (pub/sub deliveries, server-assisted invalidations redirected to a
 *   subscriber).
 * - PostgreSQL: the untyped start-up messages (SSLRequest, GSSENCRequest,
 *   StartupMessage: int32 length + body), then typed messages (a type byte +
 *   int32 length). The server's one-byte answer to SSLRequest / GSSENCRequest
 *   is its own frame; after `S` or `G` the stream is TLS and framing stops (the
 *   session turns raw: nothing is droppable). Backend frames are droppable only
 *   after the first ReadyForQuery (`Z`), so a drop never breaks the start-up.
 *   A push is a NotificationResponse (`A`).
 *
 * @module
 */

/** One whole frame a client sent. */
export interface ClientFrame {
  bytes: Buffer;
  /** This frame makes the connection a listener (subscribe, LISTEN, tracking pushed to itself). */
  listens: boolean;
}

/** One whole frame a server sent. */
export interface ServerFrame {
  bytes: Buffer;
  /** An unsolicited message: a pub/sub delivery, an invalidation, a NotificationResponse. */
  push: boolean;
  /** Whether a drop may discard it (false during PostgreSQL start-up and once a session is raw). */
  droppable: boolean;
}

/** The framing of one connection: feed each direction's chunks, get whole frames back (a partial tail is kept). */
export interface ProtocolSession {
  client(chunk: Buffer): ClientFrame[];
  server(chunk: Buffer): ServerFrame[];
}

/** The protocols the proxy frames (`raw`: bytes are forwarded as they come, nothing is ever droppable). */
export type Protocol = "redis" | "postgresql" | "raw";

/** Bytes that do not parse as the protocol: the proxy then forwards that connection raw. */
export class FramingError extends Error {}

const CRLF = "\r\n";
const PUSH_KINDS = new Set(["message", "pmessage", "smessage"]);
const SUBSCRIBE_COMMANDS = new Set(["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"]);
/** PostgreSQL start-up codes that the server answers with a single byte. */
const PG_SSL_REQUEST = 80877103;
const PG_GSSENC_REQUEST = 80877104;
/** RESP type bytes. */
const RESP_LINE = new Set(["+", "-", ":", "_", "#", ",", "("]);
const RESP_BULK = new Set(["$", "!", "="]);
const RESP_AGGREGATE = new Set(["*", "~", ">"]);
const RESP_MAP = new Set(["%", "|"]);

/** The session of one connection of `protocol`. */
export function protocolSession(protocol: Protocol): ProtocolSession {
  if (protocol === "redis") return redisSession();
  if (protocol === "postgresql") return postgresSession();
  return {
    client: (chunk) => [{ bytes: chunk, listens: false }],
    server: (chunk) => [{ bytes: chunk, push: false, droppable: false }],
  };
}

/** Keeps the unparsed tail of a stream and cuts whole frames off its front. */
class Splitter {
  #pending: Buffer = Buffer.alloc(0);

  /** Appends `chunk`, then calls `end(buffer, pos)` until it returns -1 (incomplete); returns the whole frames. */
  feed(chunk: Buffer, end: (buf: Buffer, pos: number) => number): Buffer[] {
    const buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: Buffer[] = [];
    let pos = 0;
    while (pos < buf.length) {
      const e = end(buf, pos);
      if (e < 0) break;
      frames.push(buf.subarray(pos, e));
      pos = e;
    }
    this.#pending = buf.subarray(pos);
    return frames;
  }
}

/** The length on a RESP header line (`$12`, `*3`). */
function respLength(buf: Buffer, pos: number, lineEnd: number): number {
  const text = buf.toString("latin1", pos + 1, lineEnd);
  const n = Number(text);
  if (text === "" || !Number.isInteger(n)) throw new FramingError(`RESP: bad length ${JSON.stringify(text)}`);
  return n;
}

/**
 * The end offset of the RESP value starting at `pos`, or -1 when more bytes are needed.
 * `inline`: a line that is not a RESP value is an inline command (client side only).
 * @throws FramingError on bytes that are not RESP.
 */
export function respFrameEnd(buf: Buffer, pos: number, inline = false): number {
  if (pos >= buf.length) return -1;
  const type = String.fromCharCode(buf[pos]!);
  if (inline && !RESP_AGGREGATE.has(type)) {
    const nl = buf.indexOf("\n", pos);
    return nl < 0 ? -1 : nl + 1;
  }
  const lineEnd = buf.indexOf(CRLF, pos + 1);
  if (lineEnd < 0) return -1;
  if (RESP_LINE.has(type)) return lineEnd + 2;
  if (RESP_BULK.has(type)) {
    const len = respLength(buf, pos, lineEnd);
    if (len < 0) return lineEnd + 2;
    const end = lineEnd + 2 + len + 2;
    return end <= buf.length ? end : -1;
  }
  if (RESP_AGGREGATE.has(type) || RESP_MAP.has(type)) {
    const n = respLength(buf, pos, lineEnd);
    const count = RESP_MAP.has(type) ? 2 * n : n;
    let p = lineEnd + 2;
    for (let i = 0; i < count; i++) {
      p = respFrameEnd(buf, p);
      if (p < 0) return -1;
    }
    return p;
  }
  throw new FramingError(`RESP: unknown type byte 0x${buf[pos]!.toString(16)}`);
}

/** The elements of a RESP array of bulk (or simple) strings, as text; `undefined` for any other shape. */
export function respStrings(frame: Buffer): string[] | undefined {
  const type = String.fromCharCode(frame[0] ?? 0);
  if (!RESP_AGGREGATE.has(type)) return undefined;
  const lineEnd = frame.indexOf(CRLF);
  const n = respLength(frame, 0, lineEnd);
  const out: string[] = [];
  let p = lineEnd + 2;
  for (let i = 0; i < Math.max(n, 0); i++) {
    const t = String.fromCharCode(frame[p] ?? 0);
    const le = frame.indexOf(CRLF, p);
    if (le < 0) return undefined;
    if (t === "$") {
      const len = respLength(frame, p, le);
      if (len < 0) return undefined;
      out.push(frame.toString("utf8", le + 2, le + 2 + len));
      p = le + 2 + len + 2;
    } else if (t === "+") {
      out.push(frame.toString("utf8", p + 1, le));
      p = le + 2;
    } else return out;
  }
  return out;
}

/** Whether a server frame is a push: RESP3 `>`, or a RESP2 pub/sub delivery. */
function respIsPush(frame: Buffer): boolean {
  if (frame[0] === 0x3e) return true; // '>'
  if (frame[0] !== 0x2a) return false; // '*'
  const first = respStrings(frame)?.[0];
  return first !== undefined && PUSH_KINDS.has(first);
}

/** Whether a client command makes its connection receive pushes: a subscribe, or tracking without REDIRECT. */
function respListens(frame: Buffer): boolean {
  const args = frame[0] === 0x2a ? respStrings(frame) : frame.toString("utf8").trim().split(/\s+/);
  const [cmd, sub] = [args?.[0]?.toUpperCase(), args?.[1]?.toUpperCase()];
  if (cmd !== undefined && SUBSCRIBE_COMMANDS.has(cmd)) return true;
  if (cmd !== "CLIENT" || sub !== "TRACKING") return false;
  const rest = (args ?? []).slice(2).map((a) => a.toUpperCase());
  return rest[0] === "ON" && !rest.includes("REDIRECT");
}

function redisSession(): ProtocolSession {
  const up = new Splitter();
  const down = new Splitter();
  return {
    client: (chunk) =>
      up.feed(chunk, (b, p) => respFrameEnd(b, p, true)).map((bytes) => ({ bytes, listens: respListens(bytes) })),
    server: (chunk) =>
      down
        .feed(chunk, (b, p) => respFrameEnd(b, p))
        .map((bytes) => ({ bytes, push: respIsPush(bytes), droppable: true })),
  };
}

/** End of a PostgreSQL message at `pos`: typed (type byte + int32 length) or untyped (int32 length). */
function pgFrameEnd(buf: Buffer, pos: number, typed: boolean): number {
  const header = typed ? 5 : 4;
  if (buf.length - pos < header) return -1;
  const len = buf.readInt32BE(pos + (typed ? 1 : 0));
  if (len < 4) throw new FramingError(`PostgreSQL: bad message length ${len}`);
  const end = pos + (typed ? 1 : 0) + len;
  return end <= buf.length ? end : -1;
}

/** Whether a frontend Query (`Q`) or Parse (`P`) message carries a LISTEN. */
function pgListens(frame: Buffer): boolean {
  const type = String.fromCharCode(frame[0]!);
  if (type !== "Q" && type !== "P") return false;
  let text = frame.toString("utf8", 5, frame.length - 1);
  // Parse: a statement name (C string), then the query.
  if (type === "P") text = text.slice(text.indexOf("\0") + 1);
  return /(^|;)\s*LISTEN\s/i.test(text);
}

function postgresSession(): ProtocolSession {
  const up = new Splitter();
  const down = new Splitter();
  let clientStartup = true;
  /** One-byte answers the server owes (to SSLRequest / GSSENCRequest). */
  let oneByteAnswers = 0;
  let ready = false;
  let raw = false;
  return {
    client(chunk) {
      if (raw) return [{ bytes: chunk, listens: false }];
      // The state changes frame by frame: a start-up message decides how the next one is framed.
      const startupFrame: boolean[] = [];
      const frames = up.feed(chunk, (buf, pos) => {
        const end = pgFrameEnd(buf, pos, !clientStartup);
        if (end < 0) return end;
        startupFrame.push(clientStartup);
        if (clientStartup) {
          const code = buf.readInt32BE(pos + 4);
          if (code === PG_SSL_REQUEST || code === PG_GSSENC_REQUEST) oneByteAnswers++;
          else clientStartup = false;
        }
        return end;
      });
      return frames.map((bytes, i) => ({ bytes, listens: !startupFrame[i] && pgListens(bytes) }));
    },
    server(chunk) {
      if (raw) return [{ bytes: chunk, push: false, droppable: false }];
      const out: ServerFrame[] = [];
      let rest = chunk;
      while (oneByteAnswers > 0 && rest.length > 0) {
        oneByteAnswers--;
        const answer = rest.subarray(0, 1);
        rest = rest.subarray(1);
        out.push({ bytes: answer, push: false, droppable: false });
        if (answer[0] === 0x53 || answer[0] === 0x47) {
          // 'S' / 'G': TLS or GSS encryption from here on; frames cannot be seen.
          raw = true;
          if (rest.length > 0) out.push({ bytes: rest, push: false, droppable: false });
          return out;
        }
      }
      if (rest.length === 0) return out;
      for (const bytes of down.feed(rest, (buf, pos) => pgFrameEnd(buf, pos, true))) {
        const type = String.fromCharCode(bytes[0]!);
        out.push({ bytes, push: type === "A", droppable: ready });
        if (type === "Z") ready = true;
      }
      return out;
    },
  };
}
