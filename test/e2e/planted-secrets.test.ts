// No secret in any log line, end to end: sentinel secrets are planted in every
// credential setting the plain local stack can carry, a real `loopline run`
// process runs the whole loop at debug level (pino and kafkajs's own logs,
// which the logger routes into the same stream), and every line it wrote is
// searched for the sentinels.
//
// - The loop that works: Cassandra username/password (the plain node's
//   AllowAllAuthenticator never asks for them, so they are held but unused),
//   the registry's basic auth both as URL userinfo and as
//   LOOPLINE_SCHEMA_REGISTRY_AUTH (Apicurio without auth ignores the header).
// - The same loop with an opaque registry bearer token instead.
// - Credentials that are refused: Kafka SASL (shared and per-worker) against
//   the broker's PLAINTEXT listener, so the error paths log what they log.
// - Invalid configuration next to secrets: the process exits with a config
//   error and prints no secret.
//
// Under `npm run test:secure` the loop keeps the secured stack's real
// credentials (a sentinel would be refused), and those real secrets — every
// secret LOOPLINE_* value, and a line of each private key file — are searched
// for as well.
//
// The same process shows where /metrics listens by default: on 127.0.0.1
// only (read from the kernel's socket table, not from the log).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan } from '../../producers/replay-plan.js';
import { loadSpec } from '../../pipelines/spec.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { isSecretVariable } from '../../streams/redact.js';
import { readToEnd } from '../../streams/topic-reader.js';
import { projectRoot } from '../../infra/local-stack/paths.js';
import { createFeeder } from '../support/feeder.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { createWorkerProcess, freePort, type WorkerProcess } from '../support/worker-processes.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const specFile = path.join(root, 'pipelines', 'elec2.json');
const { spec, dir } = loadSpec(specFile);
const S = 'Pl4nted-s3ntinel'; // every planted secret contains it
// On the secured stack (npm run test:secure) the servers check credentials, so the loop runs with the real ones.
const secure = Boolean(process.env.LOOPLINE_TEST_SECURE_CREDENTIALS);

/** The real secrets in this environment: secret LOOPLINE_* values, URL passwords, and a body line of each key file. */
function realSecrets(): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('LOOPLINE_') || !v) continue;
    if (isSecretVariable(k)) {
      if (fs.existsSync(v) && fs.statSync(v).isFile()) {
        const body = fs.readFileSync(v, 'utf8').split('\n').find((l) => l.length >= 40 && !l.startsWith('-----'));
        if (body) out.push(body);
      } else if (v.length >= 6) out.push(v);
    }
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:([^/@\s]+)@/i.exec(v);
    if (m && m[1]!.length >= 6) out.push(decodeURIComponent(m[1]!));
  }
  return out;
}
const EVENTS = 300;
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopline-planted-secrets-'));

let env: TestEnv;
let runs = 0; // loops run so far: each replays the next EVENTS rows
const procs: WorkerProcess[] = [];

beforeAll(async () => {
  // Not 'secrets': keys holding 'secret' (topic names in kafkajs's assignment logs) are redacted by name.
  env = await createTestEnv('planted');
  await trainBootstrap(spec, dir, createModelRegistry(env.cql));
});

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop(20_000).catch(() => null)));
  await env?.cleanup();
});

/** The registry URL of this run with `user:secret@` inserted. */
function withUserinfo(url: string, userinfo: string): string {
  const u = new URL(url);
  return `${u.protocol}//${userinfo}@${u.host}${u.pathname}`;
}

function base(): NodeJS.ProcessEnv {
  return {
    LOOPLINE_TOPIC_PREFIX: env.config.kafka.topicPrefix,
    LOOPLINE_CASSANDRA_KEYSPACE: env.config.cassandra.keyspace,
    LOOPLINE_LOG_LEVEL: 'debug',
  };
}

/** Lines of a log file that carry a sentinel or a real secret, shortened for the failure message (the secret itself cut out). */
function leaks(file: string): string[] {
  const secrets = [S, ...realSecrets()];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => secrets.some((x) => l.includes(x)))
    .map((l) => secrets.reduce((t, x) => t.split(x).join('<LEAKED>'), l).slice(0, 400));
}

/** Addresses (hex, as in /proc/net/tcp{,6}) that sockets in LISTEN state on `port` are bound to. */
function listenAddresses(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const found: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const [addr, p] = cols[1]!.split(':');
      if (p === hexPort && cols[3] === '0A') found.push(addr!);
    }
  }
  return found;
}

describe('planted secrets', () => {
  type RegistrySettings = (url: string) => NodeJS.ProcessEnv;
  const registrySettings: Array<[string, RegistrySettings]> = secure ? [['the secured stack\'s own credentials', () => ({})]] : [
    ['basic auth in the URL and in LOOPLINE_SCHEMA_REGISTRY_AUTH', (url) => ({ LOOPLINE_SCHEMA_REGISTRY_URL: withUserinfo(url, `svc:${S}-url`), LOOPLINE_SCHEMA_REGISTRY_AUTH: `svc:${S}-auth` })],
    ['an opaque bearer token', () => ({ LOOPLINE_SCHEMA_REGISTRY_TOKEN: `${S}-token` })],
  ];
  it.each(registrySettings)('the whole loop at debug level, with sentinels in the Cassandra credentials and the registry\'s (%s), logs none of them; /metrics listens on 127.0.0.1 only', async (label, registry) => {
    const metricsPort = await freePort();
    const logFile = path.join(logDir, `loop-${label.split(' ')[0]}.log`);
    const loop = createWorkerProcess({
      name: 'loop', workers: ['feature-writer', 'preprocessor', 'scorer', 'joiner', 'drift-monitor', 'retrain-trigger', 'model-builder', 'evaluator'],
      spec: specFile, metricsPort, supervise: false, logFile,
      env: {
        ...base(),
        ...(secure ? {} : { LOOPLINE_CASSANDRA_USERNAME: 'loopline_app', LOOPLINE_CASSANDRA_PASSWORD: `${S}-cassandra` }),
        ...registry(env.config.registry.url),
      },
    });
    procs.push(loop);
    await loop.start();
    await loop.waitReady(240_000);

    // Only loopback: 0100007F is 127.0.0.1 in /proc/net/tcp; 0.0.0.0 or :: would be 00000000… .
    if (fs.existsSync('/proc/net/tcp')) expect(listenAddresses(metricsPort)).toEqual(['0100007F']);

    const csv = readCsv(path.join(dir, spec.replay!.csv));
    const plan = buildReplayPlan(spec, csv, { offset: spec.trainer.bootstrapRows + runs * EVENTS, limit: EVENTS });
    runs++;
    const feeder = await createFeeder({ config: env.config, codec: env.codec, names: env.names, logger: env.logger });
    try {
      expect((await feeder.run(plan, 150)).events).toBe(EVENTS);
    } finally {
      await feeder.close();
    }
    // The loop did its work with the planted credentials: every event scored, and labels joined.
    const labeledBefore = (await readToEnd(env.kafka, env.admin, env.names.physical('predictions.labeled'))).length;
    await waitFor('every event scored', async () => (await readToEnd(env.kafka, env.admin, env.names.physical('predictions'))).length >= runs * EVENTS, 240_000, 1000);
    await waitFor('labels joined', async () => (await readToEnd(env.kafka, env.admin, env.names.physical('predictions.labeled'))).length > labeledBefore, 240_000, 1000);
    expect((await loop.stop(30_000))?.code).toBe(0);

    const text = fs.readFileSync(logFile, 'utf8');
    // The search covered both streams: pino's own lines and kafkajs's debug lines routed through it.
    expect(text).toContain('"component":"kafkajs"');
    expect(text).toContain('workers running');
    expect(leaks(logFile)).toEqual([]);
  }, 900_000);

  it('refused Kafka SASL credentials (shared and per worker): the error and retry paths log no sentinel', async () => {
    const logFile = path.join(logDir, 'refused.log');
    const refused = createWorkerProcess({
      name: 'refused', workers: ['preprocessor', 'scorer'], spec: specFile, metricsPort: await freePort(), supervise: false, logFile,
      env: {
        ...base(),
        LOOPLINE_KAFKA_SASL_MECHANISM: 'scram-sha-512',
        LOOPLINE_KAFKA_SASL_USERNAME: 'svc',
        LOOPLINE_KAFKA_SASL_PASSWORD: `${S}-kafka`,
        LOOPLINE_KAFKA_SASL_SCORER_USERNAME: 'svc-scorer',
        LOOPLINE_KAFKA_SASL_SCORER_PASSWORD: `${S}-kafka-scorer`,
      },
    });
    procs.push(refused);
    await refused.start();
    // Until the process gives up on its own (a SASL handshake on a PLAINTEXT listener is refused), so
    // every path from the first refusal to the CLI's last word is in the log; stopped after 2 minutes
    // if it keeps retrying.
    const deadline = Date.now() + 120_000;
    while (refused.pid() !== null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    await refused.stop(20_000);
    const text = fs.readFileSync(logFile, 'utf8');
    expect(text).toMatch(/"level":50.*SASL/);
    expect(leaks(logFile)).toEqual([]);
  }, 300_000);

  it('invalid configuration next to secrets: the process exits with a config error and prints no sentinel', async () => {
    const variants: NodeJS.ProcessEnv[] = [
      // a malformed registry URL carrying userinfo, beside a valid password
      { LOOPLINE_SCHEMA_REGISTRY_URL: `htp//svc:${S}-url@ bad host`, LOOPLINE_CASSANDRA_USERNAME: 'u', LOOPLINE_CASSANDRA_PASSWORD: `${S}-cassandra` },
      // a password without its username (unset: under test:secure the environment carries the admin's), a token beside basic auth
      { LOOPLINE_CASSANDRA_PASSWORD: `${S}-cassandra`, LOOPLINE_CASSANDRA_USERNAME: undefined },
      { LOOPLINE_SCHEMA_REGISTRY_AUTH: `svc:${S}-auth`, LOOPLINE_SCHEMA_REGISTRY_TOKEN: `${S}-token` },
      // a SASL password with an unknown mechanism
      { LOOPLINE_KAFKA_SASL_MECHANISM: 'rot13', LOOPLINE_KAFKA_SASL_USERNAME: 'svc', LOOPLINE_KAFKA_SASL_PASSWORD: `${S}-kafka` },
      // a per-worker password without a mechanism (nor a shared one to fall back on, which test:secure sets)
      { LOOPLINE_KAFKA_SASL_SCORER_USERNAME: 'svc', LOOPLINE_KAFKA_SASL_SCORER_PASSWORD: `${S}-kafka-scorer`, LOOPLINE_KAFKA_SASL_MECHANISM: undefined },
    ];
    for (const v of variants) {
      const env: NodeJS.ProcessEnv = { ...process.env, ...base(), ...v };
      for (const [k, value] of Object.entries(v)) if (value === undefined) delete env[k];
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'cli', 'main.ts'), 'run', '--spec', specFile, '--workers', 'scorer', '--metrics-port', String(await freePort())], {
        cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      expect(code, `${JSON.stringify(Object.keys(v))}: ${out}`).not.toBe(0);
      expect(out).toMatch(/LOOPLINE_/); // the error names the variable
      expect(out.split('\n').filter((l) => l.includes(S))).toEqual([]);
    }
  }, 300_000);
});
