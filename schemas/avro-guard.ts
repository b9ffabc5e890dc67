/**
 * Input limits for Avro bodies, checked before avsc touches them.
 *
 * avsc sizes arrays and loops over maps from the count on the wire, so a
 * 20-byte body that declares 2^31 map entries spins the event loop for a
 * minute and an array count of 2^31 exhausts the heap. `guardAvroBody` walks
 * the body once against the writer schema without allocating anything and
 * rejects every declared count or length that the remaining bytes cannot
 * hold (BAD_BODY, limit `bytesRemaining`), or that exceeds a configured cap
 * (LIMIT_EXCEEDED), in time proportional to the bytes
 * actually present (plus at most `maxZeroSizeItems` steps for items that
 * occupy no bytes, such as `null`).
 *
 *   const violation = guardAvroBody(writerType, body, compileDecodeLimits({ maxCollectionItems: 10_000 }));
 *   if (violation) return { ok: false, error: { code: violation.code, limit: violation.limit, ... } };
 *
 * Pure: no I/O, no allocation proportional to a declared size.
 */
import type avro from 'avsc';

/** Caps applied to every decoded record. All counts are per record. */
export interface DecodeLimits {
  /** Bytes of the whole message, header included; more is `TOO_LARGE`. Default 1 048 576 (1 MiB, just under the broker's default `message.max.bytes`). */
  maxRecordBytes: number;
  /** Items of one array or entries of one map, over all its blocks. Default 100 000. */
  maxCollectionItems: number;
  /** Bytes of one string or bytes value. Default 1 048 576. */
  maxStringBytes: number;
  /** Nesting of records, arrays, maps and unions. Default 32. */
  maxDepth: number;
  /** Items, over the whole record, of types that occupy no bytes (null, empty records, fixed of size 0): only this cap bounds them. Default 10 000. */
  maxZeroSizeItems: number;
}

/**
 * Which limit a body broke. `bytesRemaining` means a count or length declared
 * more than the rest of the body can hold: the bytes are provably not a valid
 * encoding (truncated or forged), so it comes with code BAD_BODY; the others
 * are configured caps and come with LIMIT_EXCEEDED.
 */
export type DecodeLimitName = Exclude<keyof DecodeLimits, 'maxRecordBytes'> | 'bytesRemaining';

export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxRecordBytes: 1_048_576,
  maxCollectionItems: 100_000,
  maxStringBytes: 1_048_576,
  maxDepth: 32,
  maxZeroSizeItems: 10_000,
});

/** Merges partial limits over the defaults and validates them; throws RangeError naming the key. */
export function compileDecodeLimits(partial: Partial<DecodeLimits> = {}, base: Readonly<DecodeLimits> = DEFAULT_DECODE_LIMITS): DecodeLimits {
  const out: DecodeLimits = { ...base };
  for (const key of Object.keys(base) as Array<keyof DecodeLimits>) {
    const v = partial[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`decode limit ${key} must be a non-negative integer, got ${String(v)}`);
    out[key] = v;
  }
  return out;
}

export interface LimitViolation {
  code: 'LIMIT_EXCEEDED' | 'BAD_BODY';
  /** Set for LIMIT_EXCEEDED, and for BAD_BODY when a declared size exceeds the bytes remaining. */
  limit?: DecodeLimitName;
  message: string;
  /** Byte offset in the body where the walk stopped. */
  offset: number;
}

/**
 * Walks `body` as encoded by `writer` and returns the first limit it breaks
 * (or a structural fault found on the way: bad union or enum index, negative
 * length, overlong varint, truncation), or null when avsc can decode it with
 * allocations bounded by the body's size.
 */
export function guardAvroBody(writer: avro.Type, body: Buffer, limits: DecodeLimits): LimitViolation | null {
  const walk = new Walk(body, limits);
  try {
    walk.value(nodeOf(writer), 1);
    return null;
  } catch (err) {
    if (err instanceof Stop) return err.violation;
    throw err;
  }
}

/** Thrown inside the walk only, caught by guardAvroBody; not an Error, so rejecting costs no stack trace. */
class Stop {
  constructor(readonly violation: LimitViolation) {}
}

type Kind = 'null' | 'boolean' | 'int' | 'long' | 'float' | 'double' | 'bytes' | 'string' | 'fixed' | 'enum' | 'array' | 'map' | 'record' | 'union';

/** A writer type compiled for the walk: its children, and the sizes that let whole runs of items be checked or skipped at once. */
interface Node {
  kind: Kind;
  /** Least bytes any value encodes to (0 for null, empty records, fixed of size 0). */
  min: number;
  /** Bytes of every value when all values have one size (null, boolean, float, double, fixed, records of those), else null. */
  width: number | null;
  children: Node[];
  /** Enum symbols or union branches. */
  choices: number;
}

const nodes = new WeakMap<avro.Type, Node>();

function kindOf(t: avro.Type): Kind {
  const name = t.typeName;
  if (name.startsWith('union:')) return 'union';
  if (name.startsWith('abstract:')) return 'long'; // avsc's custom long types keep the long encoding
  if (name.startsWith('logical:')) return kindOf((t as unknown as { underlyingType: avro.Type }).underlyingType);
  if (name === 'error') return 'record';
  return name as Kind;
}

function childrenOf(t: avro.Type, kind: Kind): avro.Type[] {
  const c = t as unknown as { fields?: Array<{ type: avro.Type }>; types?: avro.Type[]; itemsType?: avro.Type; valuesType?: avro.Type; underlyingType?: avro.Type };
  if (t.typeName.startsWith('logical:')) return childrenOf(c.underlyingType!, kind);
  if (kind === 'record') return c.fields!.map((f) => f.type);
  if (kind === 'union') return c.types!;
  if (kind === 'array') return [c.itemsType!];
  if (kind === 'map') return [c.valuesType!];
  return [];
}

/** Compiles (once per writer type) the graph the walk follows; recursive schemas become cyclic graphs. */
function nodeOf(type: avro.Type): Node {
  const hit = nodes.get(type);
  if (hit) return hit;
  const built: Node[] = [];
  const build = (t: avro.Type): Node => {
    const known = nodes.get(t);
    if (known) return known;
    const kind = kindOf(t);
    let underlying = t;
    while (underlying.typeName.startsWith('logical:')) underlying = (underlying as unknown as { underlyingType: avro.Type }).underlyingType;
    const node: Node = { kind, min: 0, width: null, children: [], choices: 0 };
    nodes.set(t, node);
    built.push(node);
    if (kind === 'enum') node.choices = (underlying as unknown as { symbols: string[] }).symbols.length;
    if (kind === 'fixed') node.width = (underlying as unknown as { size: number }).size;
    node.children = childrenOf(t, kind).map(build);
    if (kind === 'union') node.choices = node.children.length;
    return node;
  };
  const root = build(type);
  // Sizes by fixpoint from below: start at 0 (an underestimate, so never laxer) and raise until stable. A
  // record that contains itself with no way out ({a: int, b: Self}) would grow forever: bounded rounds keep
  // its underestimate, and the walk meets maxDepth on such a value.
  for (let changed = true, round = 0; changed && round <= built.length; round++) {
    changed = false;
    for (const n of built) {
      const min = minOf(n);
      if (min !== n.min) {
        n.min = min;
        changed = true;
      }
    }
  }
  for (const n of built) n.width = widthOf(n, new Set());
  return root;
}

function minOf(n: Node): number {
  switch (n.kind) {
    case 'null': return 0;
    case 'boolean': case 'int': case 'long': case 'bytes': case 'string': case 'enum': case 'array': case 'map': return 1;
    case 'float': return 4;
    case 'double': return 8;
    case 'fixed': return n.width ?? 0;
    case 'union': return 1 + Math.min(...n.children.map((c) => c.min));
    case 'record': return n.children.reduce((sum, c) => sum + c.min, 0);
  }
}

function widthOf(n: Node, visiting: Set<Node>): number | null {
  switch (n.kind) {
    case 'null': return 0;
    case 'boolean': return 1;
    case 'float': return 4;
    case 'double': return 8;
    case 'fixed': return n.width;
    case 'record': {
      if (visiting.has(n)) return null;
      visiting.add(n);
      let sum = 0;
      for (const c of n.children) {
        const w = widthOf(c, visiting);
        if (w === null) {
          sum = -1;
          break;
        }
        sum += w;
      }
      visiting.delete(n);
      return sum < 0 ? null : sum;
    }
    default: return null;
  }
}

class Walk {
  pos = 0;
  zeroSizeItems = 0;
  constructor(readonly buf: Buffer, readonly limits: DecodeLimits) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  stop(code: LimitViolation['code'], message: string, limit?: DecodeLimitName): never {
    throw new Stop({ code, message, offset: this.pos, ...(limit ? { limit } : {}) });
  }

  exceeded(limit: DecodeLimitName, message: string): never {
    return this.stop(limit === 'bytesRemaining' ? 'BAD_BODY' : 'LIMIT_EXCEEDED', message, limit);
  }

  /** A zigzag varint of at most 10 bytes, as a float (exact up to 2^53, which is far beyond every limit). */
  long(): number {
    const buf = this.buf;
    const first = this.pos;
    let u = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (this.pos >= buf.length) this.stop('BAD_BODY', `body is truncated inside a varint at byte ${first}`);
      if (i === 10) this.stop('BAD_BODY', `varint at byte ${first} is longer than 10 bytes`);
      const b = buf[this.pos++]!;
      u += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) break;
    }
    // The sign is the low bit of the first byte; the float `u` may have lost it above 2^53.
    return buf[first]! & 1 ? -Math.floor(u / 2) - 1 : Math.floor(u / 2);
  }

  skip(n: number, what: string): void {
    if (n > this.remaining) this.stop('BAD_BODY', `body is truncated: ${what} need ${n} bytes at byte ${this.pos}, ${this.remaining} remain`);
    this.pos += n;
  }

  /** The length prefix of a string or bytes value, checked and skipped over. */
  lengthPrefixed(what: string): void {
    const at = this.pos;
    const len = this.long();
    if (len < 0) this.stop('BAD_BODY', `${what} at byte ${at} has negative length ${len}`);
    if (len > this.limits.maxStringBytes) this.exceeded('maxStringBytes', `${what} at byte ${at} declares ${len} bytes; the limit is ${this.limits.maxStringBytes}`);
    if (len > this.remaining) this.exceeded('bytesRemaining', `${what} at byte ${at} declares ${len} bytes but only ${this.remaining} remain`);
    this.pos += len;
  }

  value(n: Node, depth: number): void {
    if (n.width !== null) return this.skip(n.width, n.kind);
    switch (n.kind) {
      case 'int': case 'long': this.long(); return;
      case 'string': case 'bytes': return this.lengthPrefixed(n.kind);
      case 'enum': {
        const at = this.pos;
        const i = this.long();
        if (i < 0 || i >= n.choices) this.stop('BAD_BODY', `enum index ${i} at byte ${at} is outside 0..${n.choices - 1}`);
        return;
      }
      case 'union': {
        this.enter(depth);
        const at = this.pos;
        const i = this.long();
        if (i < 0 || i >= n.choices) this.stop('BAD_BODY', `union branch ${i} at byte ${at} is outside 0..${n.choices - 1}`);
        return this.value(n.children[i]!, depth + 1);
      }
      case 'record': {
        this.enter(depth);
        for (const c of n.children) this.value(c, depth + 1);
        return;
      }
      case 'array': return this.blocks('array', n.children[0]!, false, depth);
      case 'map': return this.blocks('map', n.children[0]!, true, depth);
      default: return this.stop('BAD_BODY', `unsupported writer type ${n.kind}`);
    }
  }

  enter(depth: number): void {
    if (depth > this.limits.maxDepth) this.exceeded('maxDepth', `values nest deeper than ${this.limits.maxDepth} at byte ${this.pos}`);
  }

  /** Array or map blocks: `count items...`, or `-count byteSize items...`, ending with a 0 count. */
  blocks(what: 'array' | 'map', item: Node, keyed: boolean, depth: number): void {
    this.enter(depth);
    const minItem = (keyed ? 1 : 0) + item.min; // a map key is a string: at least its length byte
    let total = 0;
    for (;;) {
      const at = this.pos;
      let n = this.long();
      if (n === 0) return;
      let blockStart = -1;
      let blockEnd = -1;
      if (n < 0) {
        n = -n;
        const size = this.long();
        if (size < 0) this.stop('BAD_BODY', `${what} block at byte ${at} has negative byte size ${size}`);
        if (size > this.remaining) this.exceeded('bytesRemaining', `${what} block at byte ${at} declares ${size} bytes but only ${this.remaining} remain`);
        blockStart = this.pos;
        blockEnd = this.pos + size;
      }
      total += n;
      if (total > this.limits.maxCollectionItems) {
        this.exceeded('maxCollectionItems', `${what} at byte ${at} declares ${total} items; the limit is ${this.limits.maxCollectionItems}`);
      }
      if (minItem > 0) {
        if (n * minItem > this.remaining) {
          this.exceeded('bytesRemaining', `${what} block at byte ${at} declares ${n} items of at least ${minItem} bytes but only ${this.remaining} bytes remain`);
        }
      } else {
        this.zeroSizeItems += n;
        if (this.zeroSizeItems > this.limits.maxZeroSizeItems) {
          this.exceeded('maxZeroSizeItems', `${what} at byte ${at} declares ${n} items that occupy no bytes; the limit is ${this.limits.maxZeroSizeItems} per record`);
        }
      }
      if (!keyed && item.width !== null) {
        this.skip(n * item.width, 'array items');
      } else {
        for (let i = 0; i < n; i++) {
          if (keyed) this.lengthPrefixed('map key');
          this.value(item, depth + 1);
        }
      }
      if (blockEnd >= 0 && this.pos !== blockEnd) {
        this.stop('BAD_BODY', `${what} block at byte ${at} declares ${blockEnd - blockStart} bytes but its items take ${this.pos - blockStart}`);
      }
    }
  }
}
