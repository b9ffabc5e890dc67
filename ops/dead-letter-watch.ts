/**
 * Dead letters as they arrive, for a long-running view (the dashboard): one
 * consumer of every dead-letter topic of the prefix, from the beginning, with
 * a throw-away group that commits nothing; keeps counts by topic and reason
 * and the newest records. Retries its subscription until the topics exist.
 */
import crypto from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import type { Logger } from '../streams/logger.js';
import type { TopicNames } from '../streams/topics.js';
import { dlqTopics, parseDeadLetter, summarize, type DeadLetterRecord, type ReasonCount } from './dead-letters.js';

export interface DeadLetterWatch {
  summary(): { total: number; byReason: ReasonCount[]; recent: DeadLetterRecord[] };
  stop(): Promise<void>;
}

export function watchDeadLetters(kafka: Kafka, names: TopicNames, logger: Logger, options: { keep?: number } = {}): DeadLetterWatch {
  const keep = options.keep ?? 50;
  const letters: DeadLetterRecord[] = [];
  const counts: DeadLetterRecord[] = []; // every record, without bodies, for the counts
  const byPhysical = new Map(dlqTopics().map((d) => [names.physical(d.dlq), d.dlq]));
  let consumer: Consumer | null = null;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;

  async function start(): Promise<void> {
    if (stopped) return;
    const c = kafka.consumer({ groupId: `loopline-dashboard-${crypto.randomUUID()}`, allowAutoTopicCreation: false, readUncommitted: false });
    try {
      await c.connect();
      await c.subscribe({ topics: [...byPhysical.keys()], fromBeginning: true });
      await c.run({
        autoCommit: false,
        eachMessage: async ({ topic, partition, message }) => {
          const l = parseDeadLetter(byPhysical.get(topic)!, { partition, offset: message.offset, key: message.key, value: message.value, headers: message.headers ?? {}, timestamp: Number(message.timestamp) });
          counts.push({ ...l, key: null, value: null });
          letters.push(l);
          if (letters.length > keep) letters.shift();
        },
      });
      consumer = c;
      if (stopped) await c.disconnect().catch(() => {});
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'dead-letter topics not readable yet; retrying in 5 s');
      await c.disconnect().catch(() => {});
      if (!stopped) retry = setTimeout(() => void start(), 5000);
    }
  }
  void start();

  return {
    summary: () => ({ total: counts.length, byReason: summarize(counts), recent: [...letters].reverse() }),
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await consumer?.disconnect().catch(() => {});
    },
  };
}
