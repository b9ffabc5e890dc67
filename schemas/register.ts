/**
 * Registers every record schema under its topics' subjects and sets each
 * subject's compatibility level (BACKWARD at least; FULL_TRANSITIVE for
 * records other teams consume). Idempotent: re-registering an identical
 * schema returns its existing id.
 */
import { TOPICS, type TopicNames } from '../streams/topics.js';
import { recordSchema } from './catalogue.js';
import type { RegistryClient } from './registry-client.js';

export interface RegisteredSubject {
  subject: string;
  record: string;
  id: number;
  compatibility: string;
}

export async function registerSchemas(registry: RegistryClient, names: TopicNames): Promise<RegisteredSubject[]> {
  const out: RegisteredSubject[] = [];
  for (const topic of TOPICS) {
    for (const record of topic.values) {
      const subject = names.subject(topic.name, record);
      // Compatibility first, so the very first version is already guarded.
      await registry.setCompatibility(subject, topic.compatibility);
      const id = await registry.register(subject, recordSchema(record).text);
      out.push({ subject, record, id, compatibility: topic.compatibility });
    }
  }
  return out;
}
