/**
 * The embedded local stack: `up` fetches what is missing, starts each server
 * as a detached JVM process (so it outlives the command that started it),
 * and waits for a real client round trip; `down` stops them (SIGTERM, then
 * SIGKILL after a grace period); `status` reports what runs and answers.
 *
 * `up` is idempotent: a server that already answers is reused, a stale pid
 * file (after a crash or `kill -9`) is cleared and the server restarted on
 * its existing data.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ensureArtifacts, type ProgressFn } from './artifacts.js';
import { stackPaths, type StackPaths } from './paths.js';
import { SERVICES, stackPorts, type ServiceDef, type ServiceName, type StackPorts } from './services.js';

export interface ServiceStatus {
  name: ServiceName;
  pid: number | null;
  running: boolean;
  ready: boolean;
  address: string;
  log: string;
}

export interface StackAddresses {
  kafkaBrokers: string[];
  cassandraContactPoints: string[];
  cassandraLocalDataCenter: string;
  schemaRegistryUrl: string;
}

export class StackStartError extends Error {
  readonly retriable = false;
  constructor(service: ServiceName, reason: string, logTail: string) {
    super(`${service} did not become ready: ${reason}\n--- last lines of its log ---\n${logTail}`);
    this.name = 'StackStartError';
  }
}

export interface LocalStackOptions {
  paths?: StackPaths;
  ports?: StackPorts;
  progress?: ProgressFn;
}

export function createLocalStack(options: LocalStackOptions = {}) {
  const paths = options.paths ?? stackPaths();
  const ports = options.ports ?? stackPorts();
  const progress = options.progress ?? (() => {});

  const pidFile = (s: ServiceDef): string => path.join(paths.run(s.name), 'server.pid');
  const logFile = (s: ServiceDef): string => path.join(paths.run(s.name), 'logs', 'server.out');

  function readPid(s: ServiceDef): number | null {
    try {
      const pid = Number(fs.readFileSync(pidFile(s), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** Marks each server's command line, so a recycled pid is never mistaken for ours. */
  const marker = (s: ServiceDef): string => `-Dloopline.stack.run=${paths.run(s.name)}`;

  /** Alive and really ours: the command line carries this service's marker. */
  function isOurs(pid: number, s: ServiceDef): boolean {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.split('\0').includes(marker(s));
    } catch {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    }
  }

  function runningPid(s: ServiceDef): number | null {
    const pid = readPid(s);
    if (pid !== null && isOurs(pid, s)) return pid;
    if (pid !== null) fs.rmSync(pidFile(s), { force: true });
    return null;
  }

  function logTail(s: ServiceDef, lines = 30): string {
    try {
      return fs.readFileSync(logFile(s), 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /**
   * A server's ports held by a process this stack did not start (another checkout's stack, a
   * developer's own server): true when it answers a real round trip (used as it is), an error when
   * it does not, instead of spawning a JVM that dies with "Address already in use"; false when the
   * ports are free or the server is ours.
   */
  async function adoptForeign(s: ServiceDef): Promise<boolean> {
    if (runningPid(s) !== null) return false;
    if (await s.probe(ports)) {
      progress(`${s.name}: a server this stack did not start answers at ${s.address(ports)}; using it (\`stack down\` will not stop it)`);
      return true;
    }
    const held = await heldPorts(servicePorts(s.name, ports));
    if (held.length > 0) {
      throw new StackStartError(s.name, `port ${held.join(' and ')} on 127.0.0.1 is held by a process this stack did not start, and it does not answer as ${s.name}; stop that process, or choose other ports (${portVariables(s.name)})`, '(not started: nothing of ours to show)');
    }
    return false;
  }

  async function startService(s: ServiceDef): Promise<void> {
    if (runningPid(s) !== null) {
      if (await s.probe(ports)) {
        progress(`${s.name}: already running at ${s.address(ports)}`);
        return;
      }
    } else {
      if (await adoptForeign(s)) return;
      const launch = s.prepare(paths, ports);
      fs.mkdirSync(path.dirname(logFile(s)), { recursive: true });
      const out = fs.openSync(logFile(s), 'a');
      const child = spawn(launch.command, [marker(s), ...launch.args], {
        cwd: paths.run(s.name),
        detached: true,
        stdio: ['ignore', out, out],
        env: { ...process.env, ...launch.env },
      });
      fs.closeSync(out);
      if (child.pid === undefined) throw new StackStartError(s.name, 'spawn failed', logTail(s));
      fs.writeFileSync(pidFile(s), String(child.pid));
      child.unref();
      progress(`${s.name}: started (pid ${child.pid}), waiting for a client round trip`);
    }
    const started = Date.now();
    let lastNote = started;
    for (;;) {
      if (await s.probe(ports)) {
        progress(`${s.name}: ready at ${s.address(ports)} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
        return;
      }
      if (runningPid(s) === null) throw new StackStartError(s.name, 'the process exited', logTail(s));
      if (Date.now() - started > s.startTimeoutMs) {
        throw new StackStartError(s.name, `no answer within ${s.startTimeoutMs / 1000} s`, logTail(s));
      }
      if (Date.now() - lastNote > 15_000) {
        lastNote = Date.now();
        progress(`${s.name}: still starting (${Math.round((Date.now() - started) / 1000)} s)`);
      }
      await sleep(1000);
    }
  }

  async function stopService(s: ServiceDef, graceMs = 20_000): Promise<boolean> {
    const pid = runningPid(s);
    if (pid === null) return false;
    signal(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && isOurs(pid, s)) await sleep(200);
    if (isOurs(pid, s)) {
      progress(`${s.name}: no exit after ${graceMs / 1000} s, sending SIGKILL`);
      signal(pid, 'SIGKILL');
      while (isOurs(pid, s)) await sleep(100);
    }
    fs.rmSync(pidFile(s), { force: true });
    return true;
  }

  return {
    paths,
    ports,

    /** Fetches artifacts if needed and starts every server; resolves when all answer. */
    async up(): Promise<StackAddresses> {
      // Servers this stack did not start are checked first, so a stack that is already there costs no download.
      const toStart = (await Promise.all(SERVICES.map(async (s) => ((await adoptForeign(s)) ? null : s)))).filter((s): s is ServiceDef => s !== null);
      if (toStart.length > 0) await ensureArtifacts(paths, progress);
      await Promise.all(toStart.map((s) => startService(s)));
      return this.addresses();
    },

    /** Stops every server; with `wipe`, deletes their data too. */
    async down({ wipe = false }: { wipe?: boolean } = {}): Promise<ServiceName[]> {
      const stopped: ServiceName[] = [];
      await Promise.all(
        SERVICES.map(async (s) => {
          if (await stopService(s)) stopped.push(s.name);
        }),
      );
      if (wipe) fs.rmSync(paths.runRoot, { recursive: true, force: true });
      return stopped;
    },

    async status(): Promise<ServiceStatus[]> {
      return Promise.all(
        SERVICES.map(async (s) => {
          const pid = runningPid(s);
          return {
            name: s.name,
            pid,
            running: pid !== null,
            ready: pid !== null && (await s.probe(ports)),
            address: s.address(ports),
            log: logFile(s),
          };
        }),
      );
    },

    addresses(): StackAddresses {
      return {
        kafkaBrokers: [`127.0.0.1:${ports.kafka}`],
        cassandraContactPoints: [`127.0.0.1:${ports.cassandra}`],
        cassandraLocalDataCenter: 'datacenter1',
        schemaRegistryUrl: `http://127.0.0.1:${ports.registry}/apis/ccompat/v7`,
      };
    },
  };
}

export type LocalStack = ReturnType<typeof createLocalStack>;

/** The ports a server listens on. */
function servicePorts(name: ServiceName, p: StackPorts): number[] {
  return name === 'kafka' ? [p.kafka, p.kafkaController] : name === 'cassandra' ? [p.cassandra, p.cassandraStorage] : [p.registry];
}

function portVariables(name: ServiceName): string {
  return name === 'kafka' ? 'LOOPLINE_STACK_KAFKA_PORT, LOOPLINE_STACK_KAFKA_CONTROLLER_PORT' : name === 'cassandra' ? 'LOOPLINE_STACK_CASSANDRA_PORT, LOOPLINE_STACK_CASSANDRA_STORAGE_PORT' : 'LOOPLINE_STACK_REGISTRY_PORT';
}

/** The ports of `ports` that something already listens on (a bind on 127.0.0.1 fails with EADDRINUSE). */
export async function heldPorts(ports: readonly number[]): Promise<number[]> {
  const held: number[] = [];
  for (const port of ports) {
    const inUse = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE'));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(false)));
    });
    if (inUse) held.push(port);
  }
  return held;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
