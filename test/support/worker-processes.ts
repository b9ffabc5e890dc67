/**
 * Worker processes for tests that kill and pause them: each is a real
 * `loopline run --workers …` child process with its own /metrics port, and a
 * small supervisor (what Kubernetes or systemd does in production) restarts
 * it when it dies without being asked to stop — after `kill -9`, or when
 * `run` exits 2 because a worker failed.
 *
 *   const p = createWorkerProcess({ name: 'scoring-1', workers: ['preprocessor', 'scorer'], spec, env, metricsPort: 39501 });
 *   await p.start();
 *   await p.waitReady();
 *   p.signal('SIGKILL');                 // the supervisor restarts it
 *   await p.stop();                      // SIGTERM drain; no restart
 *
 * Signals go only to the pid this object spawned.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { projectRoot } from '../../infra/local-stack/paths.js';

export interface WorkerProcessOptions {
  /** A label for logs and reports. */
  name: string;
  workers: readonly string[];
  /** Pipeline spec file. */
  spec: string;
  /** LOOPLINE_* connection settings, topic prefix and keyspace (added to this process's environment). */
  env: NodeJS.ProcessEnv;
  metricsPort: number;
  sessionTimeoutMs?: number;
  batchMax?: number;
  /** Appends the child's stdout and stderr here (default: discarded). */
  logFile?: string;
  /** Restart when the process exits without stop() (default true). */
  supervise?: boolean;
}

export interface ProcessExit {
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WorkerProcess {
  readonly name: string;
  readonly workers: readonly string[];
  readonly metricsPort: number;
  /** The pid of the current child, or null. */
  pid(): number | null;
  start(): Promise<void>;
  /** Sends a signal to the current child (SIGKILL, SIGSTOP, SIGCONT…); a death is restarted by the supervisor. */
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM (the drain) and wait for the exit; SIGKILL after `graceMs`. Not restarted. With `sig` SIGKILL: a crash the supervisor leaves down. */
  stop(graceMs?: number, sig?: 'SIGTERM' | 'SIGKILL'): Promise<ProcessExit | null>;
  /** Exits that were not asked for (kill -9, exit 2), in order. */
  readonly crashes: ProcessExit[];
  /** Times the supervisor started the process again. */
  restarts(): number;
  /** Resolves once /readyz answers 200 (every worker of the process running). */
  waitReady(timeoutMs?: number): Promise<void>;
  /** The process's /metrics text, or null when it does not answer. */
  metrics(): Promise<string | null>;
  /** /healthz body, or null. */
  health(): Promise<{ ok: boolean; workers: Array<{ name: string; state: string; lastProgressAt: number | null; assigned: Array<{ topic: string; partitions: number[] }> }> } | null>;
}

/** A TCP port free on loopback right now (for a child's --metrics-port). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The value of a labelled sample in Prometheus text, e.g. (text, 'loopline_worker_last_progress_timestamp_seconds', { worker: 'scorer' }). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | null {
  let found: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (!Object.entries(labels).every(([k, v]) => got[k] === v)) continue;
    const v = Number(m[4]);
    found = (found ?? 0) + v;
  }
  return found;
}

export function createWorkerProcess(o: WorkerProcessOptions): WorkerProcess {
  let child: ChildProcess | null = null;
  let stopping = false;
  let restarts = 0;
  const crashes: ProcessExit[] = [];
  let exited: Promise<ProcessExit> = Promise.resolve({ at: Date.now(), code: null, signal: null });

  function spawnChild(): void {
    const args = [
      '--import', 'tsx', path.join(projectRoot, 'cli', 'main.ts'), 'run',
      '--spec', o.spec,
      '--workers', o.workers.join(','),
      '--metrics-port', String(o.metricsPort),
      ...(o.batchMax ? ['--batch-max', String(o.batchMax)] : []),
      ...(o.sessionTimeoutMs ? ['--session-timeout-ms', String(o.sessionTimeoutMs)] : []),
    ];
    const out = o.logFile ? fs.openSync(o.logFile, 'a') : 'ignore';
    if (o.logFile) fs.appendFileSync(o.logFile, `\n=== ${new Date().toISOString()} start ${o.name}: ${o.workers.join(',')}\n`);
    const c = spawn(process.execPath, args, { cwd: projectRoot, env: { ...process.env, ...o.env }, stdio: ['ignore', out, out] });
    if (typeof out === 'number') fs.closeSync(out);
    child = c;
    exited = new Promise<ProcessExit>((resolve) => {
      c.once('exit', (code, signal) => {
        const e = { at: Date.now(), code, signal };
        if (o.logFile) fs.appendFileSync(o.logFile, `=== ${new Date().toISOString()} exit ${o.name}: code ${code} signal ${signal}\n`);
        if (child === c) child = null;
        resolve(e);
        if (!stopping) {
          crashes.push(e);
          if (o.supervise !== false) {
            restarts++;
            spawnChild();
          }
        }
      });
    });
  }

  const get = async (route: string): Promise<Response | null> => {
    try {
      return await fetch(`http://127.0.0.1:${o.metricsPort}${route}`, { signal: AbortSignal.timeout(2000) });
    } catch {
      return null;
    }
  };

  return {
    name: o.name,
    workers: o.workers,
    metricsPort: o.metricsPort,
    pid: () => child?.pid ?? null,
    async start() {
      stopping = false;
      spawnChild();
    },
    signal(sig) {
      const pid = child?.pid;
      if (pid === undefined) throw new Error(`${o.name} has no running process to send ${sig} to`);
      process.kill(pid, sig);
    },
    async stop(graceMs = 40_000, sig = 'SIGTERM') {
      stopping = true;
      const c = child;
      if (!c || c.pid === undefined) return null;
      const done = exited;
      try {
        if (sig === 'SIGTERM') process.kill(c.pid, 'SIGCONT'); // a paused process cannot drain
        process.kill(c.pid, sig);
      } catch {
        return done;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(c.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }, graceMs);
      const e = await done;
      clearTimeout(timer);
      return e;
    },
    crashes,
    restarts: () => restarts,
    async waitReady(timeoutMs = 180_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const res = await get('/readyz');
        if (res?.ok) return;
        if (Date.now() > deadline) throw new Error(`${o.name} (${o.workers.join(',')}) not ready on port ${o.metricsPort} after ${timeoutMs} ms${o.logFile ? `; see ${o.logFile}` : ''}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async metrics() {
      const res = await get('/metrics');
      return res?.ok ? res.text() : null;
    },
    async health() {
      const res = await get('/healthz');
      if (!res) return null;
      try {
        return (await res.json()) as never;
      } catch {
        return null;
      }
    },
  };
}
