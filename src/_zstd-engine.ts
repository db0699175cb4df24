/**
 * The zstd library of this runtime: `node:zlib` (Node 22.15+, Bun, Deno),
 * else the optional peer zstd-napi (Node 20). Both write frames the Rust crate
 * and the `zstd` CLI read (level 3, content checksum); each decompresses one
 * complete frame at a time into at most a given number of bytes.
 *
 * Bun's own `Bun.zstdCompressSync` is not used: it cannot add the checksum
 * and has no output limit (a zstd bomb would exhaust memory).
 *
 * @module
 */
import { requirePeer } from "./optional-peers.js";
import { builtinModule, RUNTIME } from "./runtime.js";

/** Which zstd library the codec uses in this process. */
export type ZstdDriverName = "node:zlib" | "zstd-napi";

/** Thrown when a frame's output would pass the limit; distinct from a corrupt frame. */
export class InflateLimitError extends Error {}

/** One zstd library. */
export interface ZstdEngine {
  readonly name: ZstdDriverName;
  /** One frame of `src` at `level`, with a content checksum (as Rust's `zstd::Encoder` writes). */
  compress(src: Uint8Array, level: number): Uint8Array;
  /**
   * The content of one complete frame, at most `max` bytes; `contentSize` is
   * what its header declares (`null`: not declared), a hint for the output size.
   * @throws InflateLimitError past `max`; the library's error for a corrupt frame.
   */
  decompressFrame(frame: Uint8Array, max: number, contentSize: number | null): Uint8Array;
}

interface Zlib {
  zstdCompressSync?(src: Uint8Array, options: object): Buffer;
  zstdDecompressSync(src: Uint8Array, options: object): Buffer;
  constants: Record<string, number>;
}

/** The part of zstd-napi's `binding` used here (zstd-napi is an optional peer: not installed to build this). */
interface ZstdNapi {
  CCtx: new () => {
    setParameter(param: number, value: number): void;
    compress2(dst: Uint8Array, src: Uint8Array): number;
  };
  DCtx: new () => {
    reset(directive: number): void;
    decompressStream(dst: Uint8Array, src: Uint8Array): [remaining: number, produced: number, consumed: number];
  };
  CParameter: { compressionLevel: number; checksumFlag: number };
  ResetDirective: { sessionOnly: number };
  compressBound(size: number): number;
  dStreamOutSize(): number;
  getFrameContentSize(frame: Uint8Array): number | null;
}

let engine: ZstdEngine | undefined;

/** The name of the zstd library this runtime uses, without loading zstd-napi. */
export function zstdDriverName(): ZstdDriverName {
  return typeof builtinModule<Zlib>("node:zlib")?.zstdCompressSync === "function" ? "node:zlib" : "zstd-napi";
}

/**
 * The zstd library, loaded on first use (small values never need it).
 * @throws PersistenceError naming the install command when this runtime has
 *   no zstd and zstd-napi is not installed.
 */
export function zstdEngine(): ZstdEngine {
  if (engine) return engine;
  const zlib = builtinModule<Zlib>("node:zlib");
  engine =
    zlib && typeof zlib.zstdCompressSync === "function"
      ? zlibEngine(zlib)
      : napiEngine(
          requirePeer<ZstdNapi>(
            "zstd-napi",
            { what: `a value of 1 MiB or more on ${RUNTIME.name} ${RUNTIME.version} (no zstd in node:zlib)` },
            "/binding",
          ),
        );
  return engine;
}

/** Output chunk sizes of node:zlib: its default (16 KiB) makes a 50 MB value 2.5x slower to decompress here. */
const MIN_CHUNK = 64 * 1024;
const MAX_ZLIB_CHUNK = 64 * 1024 * 1024;
const clampChunk = (n: number) => Math.min(Math.max(Math.ceil(n), MIN_CHUNK), MAX_ZLIB_CHUNK);

/** A fresh copy when `b` holds much less than its buffer, so a kept value pins no slack. */
const tight = (b: Uint8Array): Uint8Array => (b.byteLength * 2 < b.buffer.byteLength ? new Uint8Array(b) : b);

function zlibEngine(zlib: Zlib): ZstdEngine {
  const { ZSTD_c_compressionLevel, ZSTD_c_checksumFlag } = zlib.constants;
  return {
    name: "node:zlib",
    compress(src, level) {
      return zlib.zstdCompressSync!(src, {
        params: { [ZSTD_c_compressionLevel!]: level, [ZSTD_c_checksumFlag!]: 1 },
        // Declares the size in the frame header, so a reader allocates the output once.
        pledgedSrcSize: src.length,
        // JSON compresses 5:1 or better at level 3: one or two output chunks.
        chunkSize: clampChunk(src.length / 4),
      });
    },
    decompressFrame(frame, max, contentSize) {
      let out: Buffer;
      try {
        // Room past the declared size: a chunk filled exactly costs a second chunk and a copy of the whole.
        const chunkSize = clampChunk(
          Math.min(contentSize === null ? frame.length * 8 : contentSize + MIN_CHUNK, max + 1),
        );
        out = zlib.zstdDecompressSync(frame, { maxOutputLength: Math.max(1, max), chunkSize });
      } catch (err) {
        if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
          throw new InflateLimitError(`it inflates past ${max} bytes`);
        }
        throw err;
      }
      if (out.length > max) throw new InflateLimitError(`it inflates past ${max} bytes`);
      return tight(out);
    },
  };
}

/** Output chunks grow up to this size when a frame does not declare its content size. */
const MAX_CHUNK = 256 * 1024 * 1024;

function napiEngine(z: ZstdNapi): ZstdEngine {
  let cctx: InstanceType<ZstdNapi["CCtx"]> | undefined;
  let dctx: InstanceType<ZstdNapi["DCtx"]> | undefined;
  return {
    name: "zstd-napi",
    compress(src, level) {
      if (cctx === undefined) {
        cctx = new z.CCtx();
        cctx.setParameter(z.CParameter.checksumFlag, 1);
      }
      cctx.setParameter(z.CParameter.compressionLevel, level);
      const out = Buffer.allocUnsafe(z.compressBound(src.length));
      return out.subarray(0, cctx.compress2(out, src));
    },
    decompressFrame(frame, max) {
      dctx ??= new z.DCtx();
      // A previous call may have thrown mid-frame.
      dctx.reset(z.ResetDirective.sessionOnly);
      const declared = z.getFrameContentSize(frame);
      const chunks: Uint8Array[] = [];
      let total = 0;
      let input = frame;
      let next = declared !== null && declared > 0 ? declared : Math.max(z.dStreamOutSize(), frame.length * 4);
      for (;;) {
        // One byte of room past the limit is how an over-long output is noticed.
        const out = Buffer.allocUnsafe(Math.min(next, max - total + 1));
        const [remaining, produced, consumed] = dctx.decompressStream(out, input);
        input = input.subarray(consumed);
        total += produced;
        if (produced > 0) chunks.push(produced === out.length ? out : out.subarray(0, produced));
        if (total > max) throw new InflateLimitError(`it inflates past ${max} bytes`);
        if (remaining === 0 && input.length === 0) break;
        if (produced === 0 && consumed === 0) throw new Error("zstd decoder made no progress");
        next = Math.min(Math.max(z.dStreamOutSize(), total), MAX_CHUNK);
      }
      if (chunks.length === 0) return new Uint8Array(0);
      return chunks.length === 1 ? tight(chunks[0]!) : Buffer.concat(chunks, total);
    },
  };
}
