/**
 * Redis Cluster's key slot: CRC16 (XMODEM: polynomial 0x1021, initial 0) of the key's hash tag,
 * modulo 16384. The hash tag is what lies between the first `{` and the next `}` when that is not
 * empty; otherwise the whole key. Every key of ours carries the tag `{s<N>}` (keys.ts), so one
 * virtual shard is one slot.
 */

export const SLOT_COUNT = 16384;

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]) & 0xff];
  return crc;
}

/** The slot of a key, as `CLUSTER KEYSLOT` answers it. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key, 'utf8')) % SLOT_COUNT;
}
