/**
 * kafkajs client construction from config, with logs routed into pino and
 * TLS/SASL when configured: broker certificates are always verified (against
 * LOOPLINE_KAFKA_SSL_CA when set), and a client certificate is presented when
 * LOOPLINE_KAFKA_SSL_CERT/_KEY are set. kafkajs's own "default partitioner
 * changed" notice is silenced: Loopline always keys by entity or event id.
 * Every client gets kafkajs-patch.ts's fixes (among them, a send that loses no
 * partition when a broker dies).
 */
import fs from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import type { KafkaConfig } from '../config/config.js';
import { patchKafkajs } from './kafkajs-patch.js';
import { kafkaLogCreator, type Logger } from './logger.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';

export function createKafka(config: KafkaConfig, logger: Logger, clientSuffix?: string): Kafka {
  patchKafkajs();
  const level = logger.levelVal <= 20 ? logLevel.DEBUG : logger.levelVal <= 30 ? logLevel.WARN : logLevel.ERROR;
  return new Kafka({
    clientId: clientSuffix ? `${config.clientId}-${clientSuffix}` : config.clientId,
    brokers: config.brokers,
    ssl: config.ssl ? kafkaTls(config) : undefined,
    sasl: (config.sasl ?? undefined) as SASLOptions | undefined,
    logLevel: level,
    logCreator: kafkaLogCreator(logger),
    connectionTimeout: 5000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 10_000 },
  });
}

/** Node TLS options for the brokers: verification always on, files read once per client. */
export function kafkaTls(config: Pick<KafkaConfig, 'sslCa' | 'sslCert' | 'sslKey'>): ConnectionOptions {
  return {
    rejectUnauthorized: true,
    ...(config.sslCa ? { ca: [fs.readFileSync(config.sslCa)] } : {}),
    ...(config.sslCert && config.sslKey ? { cert: fs.readFileSync(config.sslCert), key: fs.readFileSync(config.sslKey) } : {}),
  };
}
