/**
 * Redis Cluster hash slots: which keys a multi-key command (`MGET`, a script) may carry
 * together. A Cluster refuses keys of different slots in one command (`CROSSSLOT`).
 *
 * @module
 */

/** Hash slots of a Redis Cluster. */
export const CLUSTER_SLOTS = 16384;

/** CRC16-CCITT (XMODEM) table, the checksum Redis Cluster hashes keys with. */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/**
 * The hash slot of `key` (its UTF-8 bytes), with the hash-tag rule: when the key holds a `{`
 * followed later by a `}` with something between, only that something is hashed.
 */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key, "utf8");
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xff]!;
  return crc % CLUSTER_SLOTS;
}

/** The indexes of `keys` grouped by hash slot, each group in the order of `keys`. */
export function bySlot(keys: readonly string[]): number[][] {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < keys.length; i++) {
    const slot = keySlot(keys[i]!);
    const group = groups.get(slot);
    if (group) group.push(i);
    else groups.set(slot, [i]);
  }
  return [...groups.values()];
}
