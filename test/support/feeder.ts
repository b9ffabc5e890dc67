/**
 * The input side of fault and multi-member tests: a replay plan played at a
 * steady pace by a producer that outlives broker restarts. Its kafkajs client
 * retries for about two minutes inside one send (the same idempotent sequence
 * numbers, so the broker drops a retried duplicate); only if that gives up is
 * the send repeated, which can duplicate input — counted by the checks as
 * `inputDuplicates`, apart from the pipeline's own.
 */
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import type { LooplineConfig } from '../../config/config.js';
import { createLooplineProducer, type LooplineProducer } from '../../producers/client.js';
import type { ReplayPlan } from '../../producers/replay-plan.js';
import { createReplayer, type ReplayResult } from '../../producers/replayer.js';
import type { Codec } from '../../schemas/codec.js';
import { kafkaTls } from '../../streams/kafka.js';
import { patchKafkajs } from '../../streams/kafkajs-patch.js';
import type { Logger } from '../../streams/logger.js';
import type { TopicNames } from '../../streams/topics.js';

export interface Feeder {
  /** Plays the plan; resolves with what was sent. */
  run(plan: ReplayPlan, eventsPerSecond: number, onProgress?: (events: number) => void): Promise<ReplayResult>;
  /** Sends that had to be repeated after the client gave up (possible input duplicates). */
  resent(): number;
  close(): Promise<void>;
}

export async function createFeeder(deps: { config: LooplineConfig; codec: Codec; names: TopicNames; logger: Logger }): Promise<Feeder> {
  patchKafkajs(); // a send that loses no partition when a broker dies (streams/kafkajs-send.ts)
  const kafka = new Kafka({
    clientId: 'loopline-test-feeder',
    brokers: deps.config.kafka.brokers,
    // The secured stack (npm run test:secure) takes only SASL_SSL: a plaintext client has its connection closed.
    ssl: deps.config.kafka.ssl ? kafkaTls(deps.config.kafka) : undefined,
    sasl: (deps.config.kafka.sasl ?? undefined) as SASLOptions | undefined,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 30_000,
    retry: { retries: 40, initialRetryTime: 300, maxRetryTime: 3000 },
  });
  const inner = createLooplineProducer({ kafka, codec: deps.codec, names: deps.names, logger: deps.logger });
  await inner.connect();
  let resent = 0;
  const retrying = <A extends unknown[]>(send: (...a: A) => Promise<void>) => async (...a: A): Promise<void> => {
    const deadline = Date.now() + 300_000;
    for (;;) {
      try {
        return await send(...a);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        resent++;
        deps.logger.warn({ err }, 'feeder: send failed after the client retries; sending again');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
  const producer: LooplineProducer = {
    connect: () => inner.connect(),
    sendEvents: retrying(inner.sendEvents),
    sendFeatureUpdates: retrying(inner.sendFeatureUpdates),
    sendGroundTruth: retrying(inner.sendGroundTruth),
    sendRaw: retrying(inner.sendRaw),
    disconnect: () => inner.disconnect(),
  };
  return {
    async run(plan, eventsPerSecond, onProgress) {
      return createReplayer({ producer, logger: deps.logger }).run(plan, { speed: 'max', eventsPerSecond, batchMax: 50, ...(onProgress ? { onProgress: (p) => onProgress(p.events) } : {}) });
    },
    resent: () => resent,
    close: () => inner.disconnect().catch(() => {}),
  };
}
