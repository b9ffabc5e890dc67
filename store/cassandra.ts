/**
 * Cassandra client construction from config: local-DC-aware load balancing,
 * LOCAL_QUORUM by default (LOCAL_SERIAL for lightweight transactions), TLS
 * with certificate verification, and credentials when configured.
 */
import cassandra from 'cassandra-driver';
import type { CassandraConfig } from '../config/config.js';

export type CassandraClient = cassandra.Client;

export function createCassandraClient(config: CassandraConfig, options: { keyspace?: boolean } = {}): cassandra.Client {
  return new cassandra.Client({
    contactPoints: config.contactPoints,
    localDataCenter: config.localDataCenter,
    keyspace: options.keyspace === false ? undefined : config.keyspace,
    credentials: config.credentials ?? undefined,
    sslOptions: config.ssl ? { rejectUnauthorized: true } : undefined,
    queryOptions: {
      consistency: cassandra.types.consistencies.localQuorum,
      serialConsistency: cassandra.types.consistencies.localSerial,
      prepare: true,
    },
    socketOptions: { connectTimeout: 5000, readTimeout: 12_000 },
  });
}
