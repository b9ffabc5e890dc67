/**
 * Announcements on control.models for changes made by hand (the `models`
 * commands): after models/lifecycle.ts has changed what serves, its ModelEvent
 * tells every scorer to reload now rather than at its next poll. (Workers
 * announce in their own Kafka transaction instead.)
 */
import type { Kafka, Producer } from 'kafkajs';
import type { Codec } from '../schemas/codec.js';
import type { ModelEvent } from '../schemas/types.js';
import type { TopicNames } from '../streams/topics.js';

export interface ModelAnnouncer {
  announce(event: ModelEvent): Promise<ModelEvent>;
  close(): Promise<void>;
}

export function createModelAnnouncer(kafka: Kafka, codec: Codec, names: TopicNames): ModelAnnouncer {
  let producer: Promise<Producer> | null = null;
  const get = (): Promise<Producer> => {
    if (!producer) {
      const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      producer = p.connect().then(() => p);
    }
    return producer;
  };
  return {
    async announce(event) {
      const value = await codec.encode('ModelEvent', names.subject('control.models', 'ModelEvent'), event);
      await (await get()).send({ topic: names.physical('control.models'), messages: [{ key: `${event.pipeline}/${event.model_name}`, value }] });
      return event;
    },
    async close() {
      if (producer) await (await producer).disconnect();
      producer = null;
    },
  };
}
