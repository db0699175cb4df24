/**
 * Where the zstd frames of a stored value start and end (RFC 8878), read
 * here rather than left to the zstd library: the runtimes' decoders disagree
 * on what follows a frame (Node 22 and Deno stop after the first frame and
 * return a truncated frame's partial output; Node 24 reads every frame), so
 * this walk decides, the same on every runtime, and each library is handed
 * one complete frame at a time.
 *
 * @module
 */

/** One zstd frame inside a value: its byte range and the content size its header declares. */
export interface ZstdFrame {
  /** Offset of its magic number. */
  readonly start: number;
  /** Offset just past its last byte (checksum included). */
  readonly end: number;
  /** Decompressed size from its header, or `null` when not declared (Rust's streaming encoder). */
  readonly contentSize: number | null;
}

/** The bytes are not a complete sequence of zstd frames. */
export class ZstdFormatError extends Error {}

const FRAME_MAGIC = 0xfd2fb528;
/** Skippable frames use 16 magic numbers, 0x184D2A50 to 0x184D2A5F. */
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const FCS_BYTES = [0, 2, 4, 8] as const;
const DID_BYTES = [0, 1, 2, 4] as const;
const BLOCK_HEADER = 3;
const CHECKSUM = 4;
const RLE_BLOCK = 1;
const RESERVED_BLOCK = 3;

const u32 = (b: Uint8Array, at: number): number =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

function littleEndian(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + b[at + i]!;
  return v;
}

/**
 * The zstd frames of `src` in order; skippable frames are passed over.
 * `onHeader` sees each frame's declared content size as soon as its header is
 * read (before its blocks), so a limit can refuse a bomb's header alone.
 * @throws ZstdFormatError when the bytes end inside a frame, or something that
 *   is not a frame follows one (trailing garbage); whatever `onHeader` throws.
 */
export function zstdFrames(src: Uint8Array, onHeader?: (contentSize: number | null) => void): ZstdFrame[] {
  const frames: ZstdFrame[] = [];
  let at = 0;
  const need = (n: number) => {
    if (at + n > src.length) throw new ZstdFormatError("truncated zstd frame (input ended mid-frame)");
  };
  while (at < src.length) {
    const start = at;
    need(4);
    const magic = u32(src, at);
    at += 4;
    if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
      need(4);
      at += 4 + u32(src, at);
      need(0);
      continue;
    }
    if (magic !== FRAME_MAGIC) {
      throw new ZstdFormatError(`not a zstd frame at byte ${start} of ${src.length} (unknown frame descriptor)`);
    }
    need(1);
    const descriptor = src[at++]!;
    const singleSegment = (descriptor & 0x20) !== 0;
    let fcsBytes: number = FCS_BYTES[descriptor >> 6]!;
    if (fcsBytes === 0 && singleSegment) fcsBytes = 1;
    const header = (singleSegment ? 0 : 1) + DID_BYTES[descriptor & 3]! + fcsBytes;
    need(header);
    const fcsAt = at + header - fcsBytes;
    const contentSize = fcsBytes === 0 ? null : littleEndian(src, fcsAt, fcsBytes) + (fcsBytes === 2 ? 256 : 0);
    at += header;
    onHeader?.(contentSize);
    for (let last = false; !last; ) {
      need(BLOCK_HEADER);
      const block = src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16);
      at += BLOCK_HEADER;
      last = (block & 1) === 1;
      const type = (block >> 1) & 3;
      if (type === RESERVED_BLOCK) throw new ZstdFormatError(`corrupt zstd block at byte ${at - BLOCK_HEADER}`);
      at += type === RLE_BLOCK ? 1 : block >>> 3;
      need(0);
    }
    if (descriptor & 0x04) {
      need(CHECKSUM);
      at += CHECKSUM;
    }
    frames.push({ start, end: at, contentSize });
  }
  return frames;
}
