/**
 * Cassandra client construction from config: local-DC-aware load balancing,
 * LOCAL_QUORUM by default (LOCAL_SERIAL for lightweight transactions), TLS
 * with certificate verification (the driver's default is off; here it is
 * always on, against LOOPLINE_CASSANDRA_SSL_CA when set, with the client
 * certificate of LOOPLINE_CASSANDRA_SSL_CERT/_KEY when set), and credentials
 * when configured.
 */
import fs from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import cassandra from 'cassandra-driver';
import type { CassandraConfig } from '../config/config.js';

export type CassandraClient = cassandra.Client;

export function createCassandraClient(config: CassandraConfig, options: { keyspace?: boolean } = {}): cassandra.Client {
  const port = nativePort(config.contactPoints);
  return new cassandra.Client({
    contactPoints: config.contactPoints,
    // The driver reaches the nodes it discovers (system.peers) on protocolOptions.port, 9042 unless told:
    // on a cluster listening elsewhere it would connect to the contact point only (seen on `stack up --cluster`).
    ...(port === null ? {} : { protocolOptions: { port } }),
    localDataCenter: config.localDataCenter,
    keyspace: options.keyspace === false ? undefined : config.keyspace,
    credentials: config.credentials ?? undefined,
    sslOptions: config.ssl ? cassandraTls(config) : undefined,
    queryOptions: {
      consistency: cassandra.types.consistencies.localQuorum,
      serialConsistency: cassandra.types.consistencies.localSerial,
      prepare: true,
    },
    // defunctReadTimeoutThreshold: a connection holding this many requests that timed out on the client and
    // were never answered is closed and opened again (the driver's default, 64, never tripped in RELIABILITY
    // bug 14: one process's reads went unanswered for 4.5 minutes, 2 per attempt, while the node was idle).
    socketOptions: { connectTimeout: 5000, readTimeout: 12_000, defunctReadTimeoutThreshold: 8 },
  });
}

/**
 * The native port the nodes listen on, when every contact point names the
 * same one (`host:port`, `[v6]:port`); null when none does (the driver's
 * 9042) or they differ (the driver takes one port for every discovered node).
 */
export function nativePort(contactPoints: readonly string[]): number | null {
  const ports = new Set(contactPoints.map((c) => /^(?:\[[^\]]+\]|[^:]+):(\d+)$/.exec(c)?.[1] ?? null));
  if (ports.size !== 1) return null;
  const [only] = [...ports];
  return only === null || only === undefined ? null : Number(only);
}

/** Node TLS options for the nodes: verification always on, files read once per client. */
export function cassandraTls(config: Pick<CassandraConfig, 'sslCa' | 'sslCert' | 'sslKey'>): ConnectionOptions {
  return {
    rejectUnauthorized: true,
    ...(config.sslCa ? { ca: [fs.readFileSync(config.sslCa)] } : {}),
    ...(config.sslCert && config.sslKey ? { cert: fs.readFileSync(config.sslCert), key: fs.readFileSync(config.sslKey) } : {}),
  };
}
