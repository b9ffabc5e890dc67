/**
 * Announcements on control.models: after the registry's compare-and-set has
 * changed what serves, a ModelEvent tells every scorer to reload now rather
 * than at its next poll.
 */
import crypto from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import type { Codec } from '../schemas/codec.js';
import type { ModelAction, ModelEvent } from '../schemas/types.js';
import type { TopicNames } from '../streams/topics.js';

export interface ModelAnnouncer {
  announce(e: { pipeline: string; modelName: string; action: ModelAction; version: number; previous: number | null; reason: string; actor: string; share?: number }): Promise<ModelEvent>;
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
    async announce(e) {
      const event: ModelEvent = {
        event_id: crypto.randomUUID(),
        pipeline: e.pipeline,
        model_name: e.modelName,
        action: e.action,
        model_version: e.version,
        previous_version: e.previous,
        traffic_share: e.share ?? null,
        reason: e.reason,
        actor: e.actor,
        created_at: Date.now(),
      };
      const value = await codec.encode('ModelEvent', names.subject('control.models', 'ModelEvent'), event);
      await (await get()).send({ topic: names.physical('control.models'), messages: [{ key: `${e.pipeline}/${e.modelName}`, value }] });
      return event;
    },
    async close() {
      if (producer) await (await producer).disconnect();
      producer = null;
    },
  };
}
