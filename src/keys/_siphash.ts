/**
 * SipHash-1-3, the function behind Rust's `std::collections::hash_map::DefaultHasher`.
 *
 * Only used on the `normalizeKey` fallback path (a key with no ASCII
 * alphanumerics), so it favours obviously-correct BigInt arithmetic over speed.
 *
 * @module
 */

const MASK64 = (1n << 64n) - 1n;

function rotl(x: bigint, b: bigint): bigint {
  return ((x << b) | (x >> (64n - b))) & MASK64;
}

/**
 * SipHash with 1 compression round and 3 finalization rounds over `bytes`,
 * keyed with `k0`/`k1` (Rust's `DefaultHasher::new()` uses 0 and 0).
 *
 * @returns the 64-bit hash as an unsigned bigint.
 */
export function sipHash13(bytes: Uint8Array, k0 = 0n, k1 = 0n): bigint {
  // Initialisation constants: "somepseudorandomlygeneratedbytes".
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;

  const round = (): void => {
    v0 = (v0 + v1) & MASK64;
    v1 = rotl(v1, 13n) ^ v0;
    v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & MASK64;
    v3 = rotl(v3, 16n) ^ v2;
    v0 = (v0 + v3) & MASK64;
    v3 = rotl(v3, 21n) ^ v0;
    v2 = (v2 + v1) & MASK64;
    v1 = rotl(v1, 17n) ^ v2;
    v2 = rotl(v2, 32n);
  };

  const len = bytes.length;
  const whole = len - (len % 8);
  for (let i = 0; i < whole; i += 8) {
    let m = 0n;
    for (let j = 7; j >= 0; j--) m = (m << 8n) | BigInt(bytes[i + j] ?? 0);
    v3 ^= m;
    round();
    v0 ^= m;
  }

  // Last block: the remaining 0..7 bytes little-endian, total length (mod 256) in the top byte.
  let last = BigInt(len & 0xff) << 56n;
  for (let j = len - whole - 1; j >= 0; j--) last |= BigInt(bytes[whole + j] ?? 0) << BigInt(8 * j);
  v3 ^= last;
  round();
  v0 ^= last;

  v2 ^= 0xffn;
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}
