/**
 * pino loggers with secrets redacted, and a kafkajs logCreator that routes
 * kafkajs's own logs into the same structured stream.
 */
import { logLevel as KafkaLogLevel, type logCreator } from 'kafkajs';
import pino from 'pino';

export type Logger = pino.Logger;

const REDACT = [
  'password', '*.password', '*.*.password', 'sasl', '*.sasl', 'credentials', '*.credentials',
  'ssl.key', '*.ssl.key', 'authProvider', 'headers.authorization', 'basicAuth', '*.basicAuth',
];

export function createLogger(options: { level?: string; name?: string; destination?: pino.DestinationStream } = {}): Logger {
  const opts: pino.LoggerOptions = {
    level: options.level ?? process.env.LOOPLINE_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT, censor: '[Redacted]' },
    base: { service: options.name ?? 'loopline' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/** kafkajs → pino, at kafkajs's level mapped to pino's. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () => ({ level, log }) => {
    const { message, ...extra } = log;
    const child = { component: 'kafkajs', namespace: log.namespace, ...extra };
    delete (child as Record<string, unknown>).timestamp;
    delete (child as Record<string, unknown>).logger;
    if (level === KafkaLogLevel.ERROR) logger.error(child, message);
    else if (level === KafkaLogLevel.WARN) logger.warn(child, message);
    else if (level === KafkaLogLevel.INFO) logger.info(child, message);
    else logger.debug(child, message);
  };
}
