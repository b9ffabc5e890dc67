/**
 * Loopline's small error taxonomy. Every error says whether it is retriable:
 * the worker runtime retries retriable errors with backoff (a broker or
 * Cassandra outage) and never dead-letters them; a non-retriable error on a
 * record (bad bytes, invalid values) sends that record to the dead-letter
 * topic and the partition moves on.
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

/** A dependency (broker, Cassandra, registry) is unreachable or timed out: retry, never dead-letter. */
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

export type DeadLetterStage = 'VALUE_CONVERTER' | 'VALIDATION' | 'PROCESSING' | 'OUTPUT';

/**
 * Configuration that cannot work (a bad variable, credentials a dependency
 * refuses): names the key and what it accepts, never its secret value. Not
 * about any record, so never a dead letter: the worker stops and says why.
 */
export class ConfigError extends LooplineError {
  constructor(message: string, code = 'CONFIG', cause?: unknown) {
    super(message, { code, retriable: false, cause });
  }
}

/** Whether `err` (or an error it wraps) is a ConfigError: stop the worker, never retry, never dead-letter. */
export function isConfigError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof ConfigError) return true;
  }
  return false;
}

/** Adds context with a gerund ("writing prediction log rows: …"), keeping class (poison, transient, config), retriability and code. */
export function wrapError(err: unknown, doing: string): LooplineError {
  if (err instanceof PoisonRecordError) return new PoisonRecordError(err.stage, err.code, `${doing}: ${err.message}`, err);
  if (err instanceof TransientError) return new TransientError(`${doing}: ${err.message}`, err, err.code);
  if (err instanceof ConfigError) return new ConfigError(`${doing}: ${err.message}`, err.code, err);
  if (err instanceof LooplineError) return new LooplineError(`${doing}: ${err.message}`, { code: err.code, retriable: err.retriable, cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new LooplineError(`${doing}: ${message}`, { code: 'UNKNOWN', retriable: isRetriable(err), cause: err });
}

/**
 * Whether an error from a client library is worth retrying. kafkajs marks its
 * errors with `retriable`; cassandra-driver's NoHostAvailable, timeouts and
 * Unavailable are transient; anything we cannot classify is treated as
 * transient, because dead-lettering a good record on an outage loses it.
 */
export function isRetriable(err: unknown): boolean {
  if (err instanceof LooplineError) return err.retriable;
  if (err && typeof err === 'object') {
    const e = err as { retriable?: unknown; name?: unknown };
    if (typeof e.retriable === 'boolean') return e.retriable || e.name === 'KafkaJSNumberOfRetriesExceeded';
  }
  return true;
}
