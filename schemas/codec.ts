/**
 * Avro in the Confluent framing: magic byte 0, a 4-byte big-endian schema
 * id, then the Avro binary body. Encoding registers the writer schema once
 * per subject; decoding fetches the writer schema by id (cached) and
 * resolves it to the reader's schema, so evolved producers keep working.
 *
 * Decode failures are returned as values, never thrown, so the runtime can
 * dead-letter the record and move on; only a registry outage is thrown (as a
 * retriable TransientError), because that record is fine and must not be
 * dead-lettered.
 */
import avro from 'avsc';
import { TransientError } from '../streams/errors.js';
import { recordSchema, type RecordName } from './catalogue.js';
import { SchemaNotFoundError, type RegistryClient } from './registry-client.js';
import type * as T from './types.js';

export const MAGIC_BYTE = 0;
export const HEADER_BYTES = 5;

export type DecodeErrorCode = 'TOO_SHORT' | 'BAD_MAGIC' | 'UNKNOWN_SCHEMA' | 'SCHEMA_MISMATCH' | 'BAD_BODY';

export interface DecodeError {
  code: DecodeErrorCode;
  message: string;
  schemaId: number | null;
}

export type Decoded<V> = { ok: true; value: V; schemaId: number } | { ok: false; error: DecodeError };

export interface RecordTypes {
  ClientEvent: T.ClientEvent;
  FeatureUpdate: T.FeatureUpdate;
  FeatureVector: T.FeatureVector;
  Prediction: T.Prediction;
  GroundTruth: T.GroundTruth;
  LabeledPrediction: T.LabeledPrediction;
  QualityReport: T.QualityReport;
  DriftReport: T.DriftReport;
  RetrainRequest: T.RetrainRequest;
  ModelCandidate: T.ModelCandidate;
  ModelEvent: T.ModelEvent;
  DeadLetter: T.DeadLetter;
}

export interface Codec {
  /** Frames `value` with the schema id registered for `subject` (registered on first use). */
  encode<N extends RecordName>(name: N, subject: string, value: RecordTypes[N]): Promise<Buffer>;
  /** Decodes a framed message as record `name`; never throws for bad bytes. */
  decode<N extends RecordName>(name: N, bytes: Buffer | null): Promise<Decoded<RecordTypes[N]>>;
  /**
   * Decodes a message of a topic that carries several record types
   * (TopicRecordNameStrategy): the writer schema's full name picks the type.
   */
  decodeAny<N extends RecordName>(names: readonly N[], bytes: Buffer | null): Promise<Decoded<RecordTypes[N]> & { record?: N }>;
  /** The schema id registered for `subject` with record `name`. */
  schemaId(name: RecordName, subject: string): Promise<number>;
}

/** Parses the 5-byte header; pure, for tests and for tools. */
export function readHeader(bytes: Buffer | null): { ok: true; schemaId: number } | { ok: false; error: DecodeError } {
  if (!bytes || bytes.length <= HEADER_BYTES) {
    return { ok: false, error: { code: 'TOO_SHORT', message: `message has ${bytes?.length ?? 0} bytes; a framed Avro record needs more than ${HEADER_BYTES}`, schemaId: null } };
  }
  if (bytes[0] !== MAGIC_BYTE) {
    return { ok: false, error: { code: 'BAD_MAGIC', message: `magic byte is ${bytes[0]}, expected ${MAGIC_BYTE} (not Confluent-framed Avro)`, schemaId: null } };
  }
  return { ok: true, schemaId: bytes.readUInt32BE(1) };
}

export function frame(schemaId: number, body: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt8(MAGIC_BYTE, 0);
  header.writeUInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
}

export function createCodec(registry: RegistryClient): Codec {
  const ids = new Map<string, Promise<number>>();
  const writers = new Map<number, Promise<avro.Type | null>>();
  const resolvers = new Map<string, avro.Resolver | Error>();

  function schemaId(name: RecordName, subject: string): Promise<number> {
    const key = `${subject}\u0000${name}`;
    let id = ids.get(key);
    if (!id) {
      id = registry.register(subject, recordSchema(name).text);
      id.catch(() => ids.delete(key));
      ids.set(key, id);
    }
    return id;
  }

  /** null when the registry has no such id; throws TransientError on an outage. */
  function writerType(id: number): Promise<avro.Type | null> {
    let w = writers.get(id);
    if (!w) {
      w = registry.getSchema(id).then(
        (text) => avro.Type.forSchema(JSON.parse(text) as avro.Schema),
        (err: unknown) => {
          if (err instanceof SchemaNotFoundError) return null;
          throw err;
        },
      );
      w.catch(() => writers.delete(id));
      writers.set(id, w);
    }
    return w;
  }

  const codec: Codec = {
    schemaId,
    async decodeAny(names, bytes) {
      const header = readHeader(bytes);
      if (!header.ok) return header;
      let writer: avro.Type | null;
      try {
        writer = await writerType(header.schemaId);
      } catch (err) {
        if (err instanceof TransientError) throw err;
        writer = null;
      }
      const match = names.find((n) => recordSchema(n).fullName === writer?.name);
      if (!match) {
        if (!writer) return { ok: false, error: { code: 'UNKNOWN_SCHEMA', message: `schema id ${header.schemaId} is not in the registry`, schemaId: header.schemaId } };
        return { ok: false, error: { code: 'SCHEMA_MISMATCH', message: `writer schema ${header.schemaId} is ${writer.name ?? 'anonymous'}, expected one of ${names.join(', ')}`, schemaId: header.schemaId } };
      }
      const d = await codec.decode(match, bytes);
      return d.ok ? { ...d, record: match } : d;
    },
    async encode(name, subject, value) {
      const id = await schemaId(name, subject);
      return frame(id, recordSchema(name).type.toBuffer(value));
    },
    async decode(name, bytes) {
      const header = readHeader(bytes);
      if (!header.ok) return header;
      const { schemaId: id } = header;
      let writer: avro.Type | null;
      try {
        writer = await writerType(id);
      } catch (err) {
        if (err instanceof TransientError) throw err;
        return { ok: false, error: { code: 'UNKNOWN_SCHEMA', message: `schema id ${id} could not be read: ${(err as Error).message}`, schemaId: id } };
      }
      if (!writer) return { ok: false, error: { code: 'UNKNOWN_SCHEMA', message: `schema id ${id} is not in the registry`, schemaId: id } };
      const reader = recordSchema(name).type;
      const rkey = `${id}\u0000${name}`;
      let resolver = resolvers.get(rkey);
      if (!resolver) {
        try {
          resolver = reader.createResolver(writer);
        } catch (err) {
          resolver = err as Error;
        }
        resolvers.set(rkey, resolver);
      }
      if (resolver instanceof Error) {
        return { ok: false, error: { code: 'SCHEMA_MISMATCH', message: `writer schema ${id} (${writer.name ?? 'anonymous'}) cannot be read as ${name}: ${resolver.message}`, schemaId: id } };
      }
      const body = (bytes as Buffer).subarray(HEADER_BYTES);
      try {
        const { value, offset } = reader.decode(body, 0, resolver);
        if (offset !== body.length) {
          const detail = offset < 0 ? 'body is truncated' : `${body.length - offset} trailing bytes after the record`;
          return { ok: false, error: { code: 'BAD_BODY', message: `invalid Avro body for ${name} (schema ${id}): ${detail}`, schemaId: id } };
        }
        return { ok: true, value: value as RecordTypes[typeof name], schemaId: id };
      } catch (err) {
        return { ok: false, error: { code: 'BAD_BODY', message: `invalid Avro body for ${name} (schema ${id}): ${(err as Error).message}`, schemaId: id } };
      }
    },
  };
  return codec;
}
