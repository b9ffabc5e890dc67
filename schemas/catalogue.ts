/**
 * The pipeline's record schemas, loaded from `schemas/avro/*.avsc` (the only
 * source of record shapes). A schema may name a record defined in another
 * file (LabeledPrediction names Prediction); the catalogue inlines such
 * references so every schema is self-contained, which is what a Confluent
 * registry stores and what any other language's reader expects.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';

export const RECORD_NAMES = [
  'ClientEvent', 'FeatureUpdate', 'FeatureVector', 'Prediction', 'GroundTruth', 'LabeledPrediction',
  'QualityReport', 'DriftReport', 'RetrainRequest', 'ModelCandidate', 'ModelEvent', 'DeadLetter',
] as const;
export type RecordName = (typeof RECORD_NAMES)[number];

export const NAMESPACE = 'dev.loopline';
export const schemaDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'avro');

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function readRaw(name: string): Json {
  return JSON.parse(fs.readFileSync(path.join(schemaDir, `${name}.avsc`), 'utf8')) as Json;
}

/** Replaces references to records of other files by their full definition (first use only, as Avro requires). */
function inline(schema: Json, defined: Set<string>): Json {
  if (typeof schema === 'string') {
    const short = schema.startsWith(`${NAMESPACE}.`) ? schema.slice(NAMESPACE.length + 1) : schema;
    if ((RECORD_NAMES as readonly string[]).includes(short) && !defined.has(short)) {
      defined.add(short);
      return inline(readRaw(short), defined);
    }
    return schema;
  }
  if (Array.isArray(schema)) return schema.map((s) => inline(s, defined));
  if (schema && typeof schema === 'object') {
    if (schema.type === 'record' && typeof schema.name === 'string') defined.add(schema.name);
    const out: { [k: string]: Json } = {};
    for (const [k, v] of Object.entries(schema)) {
      out[k] = k === 'type' || k === 'items' || k === 'values' || k === 'fields' ? inline(v, defined) : v;
    }
    return out;
  }
  return schema;
}

export interface RecordSchema {
  name: RecordName;
  /** Fully-qualified Avro name, e.g. dev.loopline.Prediction. */
  fullName: string;
  /** Self-contained schema JSON, as registered. */
  schema: Record<string, unknown>;
  /** Canonical text of `schema`, for registration and comparison. */
  text: string;
  type: avro.Type;
}

const cache = new Map<RecordName, RecordSchema>();

export function recordSchema(name: RecordName): RecordSchema {
  const hit = cache.get(name);
  if (hit) return hit;
  const schema = inline(readRaw(name), new Set()) as Record<string, unknown>;
  const rs: RecordSchema = {
    name,
    fullName: `${NAMESPACE}.${name}`,
    schema,
    text: JSON.stringify(schema),
    type: avro.Type.forSchema(schema as avro.Schema),
  };
  cache.set(name, rs);
  return rs;
}

export function allRecordSchemas(): RecordSchema[] {
  return RECORD_NAMES.map(recordSchema);
}
