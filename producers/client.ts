/**
 * The typed producer API for applications: events to score, feature-store
 * updates and ground truth, Avro-encoded in the Confluent framing and keyed
 * as the topic catalogue says — events and feature updates by entity_id (so
 * one entity's records stay in order on one partition), labels by event_id.
 *
 * One idempotent kafkajs producer (acks=all, one request in flight), so a
 * retried send never duplicates or reorders within a partition. Each send
 * resolves once the broker has acknowledged the whole batch. A record that
 * does not fit its schema is rejected before anything is sent, with a
 * non-retriable LooplineError (code INVALID_RECORD).
 */
import type { Kafka, Message } from 'kafkajs';
import type { RecordName } from '../schemas/catalogue.js';
import type { Codec, RecordTypes } from '../schemas/codec.js';
import type { ClientEvent, FeatureUpdate, GroundTruth } from '../schemas/types.js';
import { LooplineError, wrapError } from '../core/errors.js';
import type { Logger } from '../streams/logger.js';
import { topicSpec, type TopicNames } from '../streams/topics.js';

export interface LooplineProducerDeps {
  kafka: Kafka;
  codec: Codec;
  names: TopicNames;
  logger: Logger;
}

export interface RawMessage {
  key: string | Buffer | null;
  value: Buffer | null;
}

export interface LooplineProducer {
  connect(): Promise<void>;
  /** To events.client, keyed by entity_id; `produced_at` 0 is stamped with the send time (the input is not modified). */
  sendEvents(events: ClientEvent[]): Promise<void>;
  /** To features.updates, keyed by entity_id. */
  sendFeatureUpdates(updates: FeatureUpdate[]): Promise<void>;
  /** To labels.ground-truth, keyed by event_id. */
  sendGroundTruth(labels: GroundTruth[]): Promise<void>;
  /** Bytes as given, to a catalogue topic by logical name: for tests that inject malformed records. */
  sendRaw(topic: string, messages: RawMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

export function createLooplineProducer(deps: LooplineProducerDeps): LooplineProducer {
  const { kafka, codec, names, logger } = deps;
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });

  async function send(topic: string, messages: Message[]): Promise<void> {
    if (messages.length === 0) return;
    try {
      await producer.send({ topic: names.physical(topic), messages });
    } catch (err) {
      throw wrapError(err, `sending ${messages.length} records to ${names.physical(topic)}`);
    }
  }

  async function sendRecords<N extends RecordName>(topic: string, name: N, records: Array<RecordTypes[N]>, key: (r: RecordTypes[N]) => string): Promise<void> {
    if (records.length === 0) return;
    const subject = names.subject(topic, name);
    const messages = await Promise.all(
      records.map(async (record): Promise<Message> => {
        try {
          return { key: key(record), value: await codec.encode(name, subject, record) };
        } catch (err) {
          if (err instanceof LooplineError) throw wrapError(err, `encoding ${name} for ${subject}`);
          throw new LooplineError(`invalid ${name} ${JSON.stringify(key(record))}: ${(err as Error).message}`, { code: 'INVALID_RECORD', retriable: false, cause: err });
        }
      }),
    );
    await send(topic, messages);
    logger.debug({ topic: names.physical(topic), count: records.length }, 'sent');
  }

  return {
    async connect() {
      await producer.connect();
    },
    async sendEvents(events) {
      const now = Date.now();
      const stamped = events.map((e) => (e.produced_at === 0 ? { ...e, produced_at: now } : e));
      await sendRecords('events.client', 'ClientEvent', stamped, (e) => e.entity_id);
    },
    async sendFeatureUpdates(updates) {
      await sendRecords('features.updates', 'FeatureUpdate', updates, (u) => u.entity_id);
    },
    async sendGroundTruth(labels) {
      await sendRecords('labels.ground-truth', 'GroundTruth', labels, (l) => l.event_id);
    },
    async sendRaw(topic, messages) {
      topicSpec(topic);
      await send(topic, messages);
    },
    async disconnect() {
      await producer.disconnect();
    },
  };
}
