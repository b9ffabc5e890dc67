/**
 * pino loggers with secrets redacted, and a kafkajs logCreator that routes
 * kafkajs's own logs into the same structured stream.
 *
 * Redaction reaches every depth of every line: arguments of each log call
 * (objects, errors with their causes, the message string) and a child's
 * bindings pass through `redactDeep`, which censors credential keys
 * (password, sasl, credentials, basicAuth, authorization, ssl key/cert/
 * passphrase, tokens (the registry's bearer token), secrets, `*_AUTH` / `*_KEY` variables: see
 * `isSecretKey`) and scrubs URL userinfo and Basic/Bearer tokens out of
 * strings, bare JWTs included. Logging a whole LooplineConfig is therefore safe.
 */
import { logLevel as KafkaLogLevel, type logCreator } from 'kafkajs';
import { createRequire } from 'node:module';
import pino from 'pino';
import { redactDeep, REDACTED } from './redact.js';

export type Logger = pino.Logger;

export function createLogger(options: { level?: string; name?: string; destination?: pino.DestinationStream } = {}): Logger {
  const opts: pino.LoggerOptions = {
    level: options.level ?? process.env.LOOPLINE_LOG_LEVEL ?? 'info',
    base: { service: options.name ?? 'loopline' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Every argument of every call, before pino reads err.message for the line's msg.
    hooks: {
      logMethod(args, method) {
        const clean = args.map((a) => redactDeep(a)) as Parameters<typeof method>;
        return method.apply(this, clean);
      },
    },
    // The root's bindings; pino skips this formatter for children, whose bindings the `child` override below cleans.
    formatters: { bindings: (bindings) => redactDeep(bindings) },
    // Belt and braces for top-level keys, should anything reach pino without passing the hook.
    redact: {
      paths: [
        'password', 'sasl', 'workerSasl', 'credentials', 'basicAuth', 'token', 'authorization', 'headers.authorization', 'headers.Authorization',
        'kafka.sasl', 'kafka.workerSasl', 'cassandra.credentials', 'registry.basicAuth', 'registry.token',
        'config.kafka.sasl', 'config.kafka.workerSasl', 'config.cassandra.credentials', 'config.registry.basicAuth', 'config.registry.token',
      ],
      censor: REDACTED,
    },
  };
  // stderr by default: stdout is for what a command prints (`--json`, `--report json`), so logs never mix into it.
  const logger = pino(opts, options.destination ?? pino.destination({ dest: 2, sync: true }));
  // Children inherit from their parent's object, so this covers grandchildren too.
  const child = logger.child;
  logger.child = function redactedChild(this: Logger, bindings, childOptions) {
    return child.call(this, redactDeep(bindings), childOptions);
  } as Logger['child'];
  return logger;
}

/** kafkajs → pino, at kafkajs's level mapped to pino's. */
/**
 * The messages of broker error codes kafkajs retries by itself (CONCURRENT_TRANSACTIONS,
 * NOT_COORDINATOR, ...): it logs every such response at error level before retrying, which
 * would cry wolf on a healthy loop. They are logged at debug; a retry that gives up still
 * surfaces as the caller's error.
 */
const RETRIED_BY_CLIENT: ReadonlySet<string> = new Set(
  (createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as { errorCodes: Array<{ message: string; retriable: boolean }> }).errorCodes.filter((e) => e.retriable).map((e) => e.message),
);

export function kafkaLogCreator(logger: Logger): logCreator {
  return () => ({ level, log }) => {
    const { message, ...extra } = log;
    const child: Record<string, unknown> = { component: 'kafkajs', namespace: log.namespace, ...extra };
    delete child.timestamp;
    delete child.logger;
    // kafkajs passes errors as `error`; under `err` pino's serializer keeps their message and causes.
    if (child.error instanceof Error && child.err === undefined) {
      child.err = child.error;
      delete child.error;
    }
    const retried = typeof log.error === 'string' && message.startsWith('Response ') && RETRIED_BY_CLIENT.has(log.error);
    if (retried) logger.debug(child, message);
    else if (level === KafkaLogLevel.ERROR) logger.error(child, message);
    else if (level === KafkaLogLevel.WARN) logger.warn(child, message);
    else if (level === KafkaLogLevel.INFO) logger.info(child, message);
    else logger.debug(child, message);
  };
}
