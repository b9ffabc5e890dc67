import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { classifyKafkaError, FencedError, isRetriable } from './errors.js';

const require = createRequire(import.meta.url);
const kafkajsErrors = require('kafkajs/src/errors.js') as Record<string, new (m: string, o?: object) => Error>;

describe('classifyKafkaError', () => {
  it.each([
    ['KafkaJSConnectionError', true],
    ['KafkaJSNumberOfRetriesExceeded', true],
    // kafkajs marks it non-retriable, but throws it while the broker restarts (fault suite: kafka-sigterm-restart).
    ['KafkaJSGroupCoordinatorNotFound', true],
    ['KafkaJSNonRetriableError', false],
  ])('%s is retriable: %s', (name, retriable) => {
    const Err = kafkajsErrors[name]!;
    expect(isRetriable(classifyKafkaError(new Err('x', { retryCount: 5, retryTime: 100 }), 'committing a transaction'))).toBe(retriable);
  });

  it('names a fenced producer', () => {
    const err = Object.assign(new Error('fenced'), { type: 'PRODUCER_FENCED' });
    expect(classifyKafkaError(err)).toBeInstanceOf(FencedError);
  });
});
