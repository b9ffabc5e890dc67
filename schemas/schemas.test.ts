import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allRecordSchemas, RECORD_NAMES, recordSchema } from './catalogue.js';
import { frame, readHeader } from './codec.js';
import { generateTypes, typesFile } from './generate-types.js';

describe('schema catalogue', () => {
  it('loads every record as a self-contained Avro schema', () => {
    for (const rs of allRecordSchemas()) {
      expect(rs.fullName).toBe(`dev.loopline.${rs.name}`);
      expect(rs.type.name).toBe(rs.fullName);
      expect(rs.text).not.toMatch(/"type":"Prediction"/); // references are inlined
    }
    expect(RECORD_NAMES).toHaveLength(12);
  });

  it('keeps schemas/types.ts in step with the .avsc files (run npm run gen:types)', () => {
    expect(fs.readFileSync(typesFile, 'utf8')).toBe(generateTypes());
  });

  it('every record carries an idempotency id and event time', () => {
    for (const rs of allRecordSchemas()) {
      const fields = (rs.schema.fields as Array<{ name: string }>).map((f) => f.name);
      const hasId = fields.some((f) => /(_id|^prediction|^topic)$/.test(f));
      expect(hasId, rs.name).toBe(true);
    }
    const lp = recordSchema('LabeledPrediction').type;
    expect(lp.isValid({})).toBe(false);
  });
});

describe('Confluent framing header', () => {
  it.each([
    ['null', null, 'TOO_SHORT'],
    ['5 bytes', Buffer.from([0, 0, 0, 0, 1]), 'TOO_SHORT'],
    ['bad magic', Buffer.from([1, 0, 0, 0, 1, 2]), 'BAD_MAGIC'],
  ])('%s → %s', (_name, bytes, code) => {
    const h = readHeader(bytes as Buffer | null);
    expect(h.ok).toBe(false);
    if (!h.ok) expect(h.error.code).toBe(code);
  });

  it('reads the big-endian schema id', () => {
    const h = readHeader(frame(0x01020304, Buffer.from([9])));
    expect(h).toEqual({ ok: true, schemaId: 0x01020304 });
  });
});
