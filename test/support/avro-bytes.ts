/** Hand-made Avro bytes for bomb tests: any 64-bit zigzag varint, length-prefixed strings. */

/** Zigzag varint of any 64-bit value (2^62, -2^31, 2^63-1 ...). */
export function zigzag(n: bigint): Buffer {
  let u = n >= 0n ? n << 1n : ((-n) << 1n) - 1n;
  const out: number[] = [];
  do {
    let b = Number(u & 0x7fn);
    u >>= 7n;
    if (u) b |= 0x80;
    out.push(b);
  } while (u);
  return Buffer.from(out);
}

/** An Avro string: zigzag length, then UTF-8 bytes. */
export function avroString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  return Buffer.concat([zigzag(BigInt(bytes.length)), bytes]);
}
