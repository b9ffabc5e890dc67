/**
 * Loopline's small error taxonomy. Every error says whether it is retriable,
 * and the runtime, not each worker, decides what happens next:
 *
 * | class | retriable | the runtime |
 * |---|---|---|
 * | TransientError | yes | retries with backoff within the retry budget; never dead-letters |
 * | PoisonRecordError | no | dead-letters the record with its stage and code; the partition moves on |
 * | FatalError (and ConfigError) | no | stops the worker: `/healthz` reports failed, `run` exits non-zero |
 * | any other error | no | narrows it down to the records that cause it and dead-letters them |
 *
 * Errors from client libraries are classified once, at the adapter that
 * calls them (`classifyKafkaError` here, `classifyCassandraError` in store/,
 * the registry client in schemas/); an error nobody classified is not
 * retried, because retrying a bug forever hides it.
 */
export class LooplineError extends Error {
  readonly retriable: boolean;
  readonly code: string;
  constructor(message: string, options: { code: string; retriable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.retriable = options.retriable;
  }
}

/** A dependency (broker, Cassandra, registry) is unreachable, overloaded or timed out: retry, never dead-letter. */
export class TransientError extends LooplineError {
  constructor(message: string, cause?: unknown, code = 'TRANSIENT') {
    super(message, { code, retriable: true, cause });
  }
}

/** A record that can never be processed (decode, validation): dead-letter it with this code. */
export class PoisonRecordError extends LooplineError {
  readonly stage: DeadLetterStage;
  constructor(stage: DeadLetterStage, code: string, message: string, cause?: unknown) {
    super(message, { code, retriable: false, cause });
    this.stage = stage;
  }
}

/**
 * The worker cannot go on whatever the record (credentials refused, an
 * authorisation missing, a schema the registry will not take): it stops and
 * reports failed, so its supervisor sees it, instead of dead-lettering good records.
 */
export class FatalError extends LooplineError {
  constructor(message: string, code = 'FATAL', cause?: unknown) {
    super(message, { code, retriable: false, cause });
  }
}

export type DeadLetterStage = 'VALUE_CONVERTER' | 'VALIDATION' | 'PROCESSING' | 'OUTPUT';

/**
 * Configuration that cannot work (a bad variable, credentials a dependency
 * refuses): names the key and what it accepts, never its secret value. Not
 * about any record, so never a dead letter: the worker stops and says why.
 */
export class ConfigError extends FatalError {
  constructor(message: string, code = 'CONFIG', cause?: unknown) {
    super(message, code, cause);
  }
}

/** Adds context with a gerund ("writing prediction log rows: …"), keeping class, retriability and code. */
export function wrapError(err: unknown, doing: string): LooplineError {
  const message = `${doing}: ${err instanceof Error ? err.message : String(err)}`;
  if (err instanceof PoisonRecordError) return new PoisonRecordError(err.stage, err.code, message, err);
  if (err instanceof ConfigError) return new ConfigError(message, err.code, err);
  if (err instanceof FatalError) return new FatalError(message, err.code, err);
  if (err instanceof TransientError) return new TransientError(message, err, err.code);
  if (err instanceof LooplineError) return new LooplineError(message, { code: err.code, retriable: err.retriable, cause: err });
  return new LooplineError(message, { code: errorCode(err), retriable: false, cause: err });
}

/** Whether an error is worth retrying: only what an adapter classified as retriable (Loopline or kafkajs errors). */
export function isRetriable(err: unknown): boolean {
  if (err instanceof LooplineError) return err.retriable;
  if (err && typeof err === 'object' && (err as { name?: unknown }).name?.toString().startsWith('KafkaJS')) return classifyKafkaError(err).retriable;
  return false;
}

/** Whether `err` (or an error it wraps) is a FatalError (ConfigError included): stop the worker, never retry, never dead-letter. */
export function isFatal(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof FatalError) return true;
  }
  return false;
}

/** Whether `err` (or an error it wraps) is a ConfigError. */
export function isConfigError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof ConfigError) return true;
  }
  return false;
}

/** A short code for metrics and logs: the Loopline code, the Kafka protocol error type, the driver's name, or UNKNOWN. */
export function errorCode(err: unknown): string {
  if (err instanceof LooplineError) return err.code;
  if (err && typeof err === 'object') {
    const e = err as { type?: unknown; code?: unknown; name?: unknown };
    if (typeof e.type === 'string') return e.type;
    if (typeof e.code === 'string') return e.code;
    if (typeof e.name === 'string' && e.name !== 'Error') return e.name;
  }
  return 'UNKNOWN';
}

/** Kafka protocol errors that mean another member took over this transactional id. */
const FENCED = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'INVALID_PRODUCER_ID_MAPPING', 'TRANSACTION_COORDINATOR_FENCED']);
/** Kafka errors a configuration or ACL change must fix. */
const KAFKA_FATAL = new Set([
  'TOPIC_AUTHORIZATION_FAILED', 'GROUP_AUTHORIZATION_FAILED', 'CLUSTER_AUTHORIZATION_FAILED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED', 'ILLEGAL_SASL_STATE', 'UNSUPPORTED_SASL_MECHANISM', 'INVALID_TRANSACTION_TIMEOUT', 'UNKNOWN_TOPIC_OR_PARTITION_FATAL',
]);

/** Another member owns the transactional id now (a rebalance moved the partition): stop that partition's work. */
export class FencedError extends LooplineError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'FENCED', retriable: false, cause });
  }
}

/**
 * Classifies an error thrown by kafkajs: fenced producers, authorisation and
 * authentication failures are their own kinds; an error kafkajs marks
 * retriable (or one of its connection, timeout and exhausted-retry errors, or
 * KafkaJSGroupCoordinatorNotFound, which kafkajs marks non-retriable but
 * throws while a broker restarts) is transient; anything else is not retried.
 */
export function classifyKafkaError(err: unknown, doing = 'talking to Kafka'): LooplineError {
  if (err instanceof LooplineError) return err;
  const chain: Array<{ type?: string; name?: string; retriable?: boolean; message?: string }> = [];
  for (let e: unknown = err; e && typeof e === 'object' && chain.length < 6; e = (e as { cause?: unknown }).cause) chain.push(e as never);
  const message = `${doing}: ${(err as Error)?.message ?? String(err)}`;
  const types = chain.map((e) => e.type).filter((t): t is string => typeof t === 'string');
  if (types.some((t) => FENCED.has(t))) return new FencedError(message, err);
  if (types.some((t) => KAFKA_FATAL.has(t)) || chain.some((e) => e.name === 'KafkaJSSASLAuthenticationError')) return new FatalError(message, types[0] ?? 'KAFKA_AUTH', err);
  const transientNames = ['KafkaJSConnectionError', 'KafkaJSRequestTimeoutError', 'KafkaJSNumberOfRetriesExceeded', 'KafkaJSBrokerNotFound', 'KafkaJSLockTimeout', 'KafkaJSConnectionClosedError', 'KafkaJSNoBrokerAvailableError', 'KafkaJSStaleTopicMetadataAssignment', 'KafkaJSMetadataNotLoaded', 'KafkaJSTopicMetadataNotLoaded', 'KafkaJSGroupCoordinatorNotFound'];
  if (chain.some((e) => e.retriable === true || (e.name !== undefined && transientNames.includes(e.name)))) return new TransientError(message, err, types[0] ?? 'KAFKA_UNAVAILABLE');
  if (types.includes('CONCURRENT_TRANSACTIONS') || types.includes('REBALANCE_IN_PROGRESS')) return new TransientError(message, err, types[0]!);
  return new LooplineError(message, { code: types[0] ?? errorCode(err), retriable: false, cause: err });
}

/** Whether a failed commit may have committed anyway (the request went out and no answer came back). */
export function isAmbiguous(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e && typeof e === 'object' && i < 6; e = (e as { cause?: unknown }).cause, i++) {
    const name = (e as { name?: string }).name;
    if (name === 'KafkaJSRequestTimeoutError' || name === 'KafkaJSConnectionError' || name === 'KafkaJSConnectionClosedError' || name === 'KafkaJSNumberOfRetriesExceeded') return true;
  }
  return false;
}
