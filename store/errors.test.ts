import cassandra from 'cassandra-driver';
import { describe, expect, it } from 'vitest';
import { FatalError, TransientError } from '../core/errors.js';
import { classifyCassandraError } from './errors.js';

// Abstract in the driver's typings; the driver itself constructs it.
const DriverError = cassandra.errors.DriverError as unknown as new (message: string) => Error;

/** The error the driver hands a request whose connection closed under it (connection.js clearAndInvokePending). */
function socketClosed(): Error {
  const err = new DriverError('Socket was closed') as Error & { isSocketError?: boolean; innerError?: unknown };
  err.isSocketError = true;
  err.innerError = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  return err;
}

describe('classifyCassandraError', () => {
  it('a connection closed under a request is transient (retried, never dead-lettered)', () => {
    const e = classifyCassandraError(socketClosed(), 'renewing the lease of r1');
    expect(e).toBeInstanceOf(TransientError);
    expect(e.retriable).toBe(true);
    expect(e.message).toBe('renewing the lease of r1: Socket was closed');
  });
  it('no host, timeouts and socket codes are transient; refused credentials are fatal; other driver errors are not retried', () => {
    expect(classifyCassandraError(new cassandra.errors.NoHostAvailableError({}), 'x')).toBeInstanceOf(TransientError);
    expect(classifyCassandraError(new cassandra.errors.OperationTimedOutError('timed out'), 'x')).toBeInstanceOf(TransientError);
    expect(classifyCassandraError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'x')).toBeInstanceOf(TransientError);
    expect(classifyCassandraError(new cassandra.errors.AuthenticationError('bad credentials'), 'x')).toBeInstanceOf(FatalError);
    const other = classifyCassandraError(new DriverError('something else'), 'x');
    expect(other.retriable).toBe(false);
    expect(other.code).toBe('UNKNOWN');
  });
});
