/**
 * The fault suite's own local stack: the same three servers as `loopline
 * stack up`, on ports of their own (Kafka 25092/25093, Cassandra 25042/25000,
 * registry 25081) and in a run folder of their own (.infra/faults-run), so
 * that killing and pausing them never touches a shared stack on the default
 * ports. The ports are below Linux's ephemeral range (32768–60999): while a
 * server is down, a client socket of any process could otherwise be given
 * its port as a local port, and the restart fails to bind (seen in CI:
 * Cassandra's storage port 37000 after a kill). Every signal goes to a pid read from this stack's own pid files, and
 * only when the process's command line carries this stack's run-folder marker.
 *
 *   const stack = createFaultStack();
 *   await stack.up();
 *   await stack.pause('cassandra');  …  await stack.resume('cassandra');
 *   await stack.restart('kafka', 'SIGKILL');
 *   await stack.down();
 *
 * Ports can be moved with LOOPLINE_FAULTS_KAFKA_PORT, _KAFKA_CONTROLLER_PORT,
 * _CASSANDRA_PORT, _CASSANDRA_STORAGE_PORT and _REGISTRY_PORT.
 *
 * `createFaultStack(progress, { cluster: true })` is the cluster variant
 * (`npm run test:faults -- --cluster`): three Kafka and three Cassandra nodes
 * on 127.0.0.1–3, each on the same ports, in `.infra/faults-cluster-run`, with
 * the replication of `stack up --cluster` (topics 3 copies, min.insync.replicas
 * 2; keyspaces 3 copies at LOCAL_QUORUM).
 *
 * Cassandra runs with `commitlog_sync: group` (acknowledged only once its
 * commit log is synced), so that a SIGKILL of the one node cannot lose an
 * acknowledged write; LOOPLINE_FAULTS_CASSANDRA_COMMITLOG_SYNC=periodic runs it
 * as the shared stack does (and as Cassandra ships), where it can — the suite's
 * cassandra-kill-restart case then measures that loss.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createLocalStack, heldPorts, servicePorts, type StackAddresses } from '../../infra/local-stack/local-stack.js';
import { stackPaths } from '../../infra/local-stack/paths.js';
import { stackPorts, type ServiceName, type StackPorts } from '../../infra/local-stack/services.js';

export function faultStackPorts(env: NodeJS.ProcessEnv = process.env): StackPorts {
  const pick = (name: string, fallback: number) => env[`LOOPLINE_FAULTS_${name}`] ?? String(fallback);
  return stackPorts({
    LOOPLINE_STACK_KAFKA_PORT: pick('KAFKA_PORT', 25092),
    LOOPLINE_STACK_KAFKA_CONTROLLER_PORT: pick('KAFKA_CONTROLLER_PORT', 25093),
    LOOPLINE_STACK_CASSANDRA_PORT: pick('CASSANDRA_PORT', 25042),
    LOOPLINE_STACK_CASSANDRA_STORAGE_PORT: pick('CASSANDRA_STORAGE_PORT', 25000),
    LOOPLINE_STACK_REGISTRY_PORT: pick('REGISTRY_PORT', 25081),
  });
}

export type FaultStack = ReturnType<typeof createFaultStack>;

export function createFaultStack(progress: (m: string) => void = () => {}, options: { cluster?: boolean } = {}) {
  const base = stackPaths();
  const paths = stackPaths(base.home, path.join(base.home, options.cluster ? 'faults-cluster-run' : 'faults-run'));
  const ports = faultStackPorts();
  const commitlog = process.env.LOOPLINE_FAULTS_CASSANDRA_COMMITLOG_SYNC ?? 'group';
  // Read by the Cassandra definition when it writes cassandra.yaml, on every start.
  process.env.LOOPLINE_STACK_CASSANDRA_COMMITLOG_SYNC = commitlog;
  const stack = createLocalStack({ paths, ports, progress, cluster: Boolean(options.cluster) });
  const services = stack.services;
  const marker = (s: ServiceName) => `-Dloopline.stack.run=${paths.run(s)}`;

  /** The pid of our server, only if the process alive under it is really ours (its marker is on its command line). */
  function pidOf(s: ServiceName): number | null {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(path.join(paths.run(s), 'server.pid'), 'utf8').trim());
    } catch {
      return null;
    }
    if (!Number.isInteger(pid) || pid <= 0) return null;
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(marker(s)) ? pid : null;
    } catch {
      return null;
    }
  }

  function signal(s: ServiceName, sig: NodeJS.Signals): number {
    const pid = pidOf(s);
    if (pid === null) throw new Error(`${s} of the fault stack is not running (no live pid with its marker in ${paths.run(s)})`);
    process.kill(pid, sig);
    return pid;
  }

  /**
   * Gone: no /proc entry, or a zombie that holds nothing any more. A SIGKILLed JVM's leader shows
   * state Z while its other threads are still being torn down with its sockets open (seen: the
   * restart then found the controller port still listening); only once the last thread is gone are
   * its files, sockets included, released.
   */
  function gone(pid: number): boolean {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      if (!/State:\s+Z/.test(status)) return false;
      if (Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? '1') > 1) return false;
      try {
        return fs.readdirSync(`/proc/${pid}/fd`).length === 0;
      } catch {
        return true; // a zombie's fd table is gone
      }
    } catch {
      return true; // no /proc entry
    }
  }

  async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (gone(pid)) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  /** Waits (up to `timeoutMs`) until the ports of every server of ours that is not running are free to bind. */
  async function waitPortsFree(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const began = Date.now();
    for (;;) {
      const down = services.filter((s) => pidOf(s.name) === null);
      const held = (await Promise.all(down.map((s) => heldPorts(servicePorts(s.kind, ports), s.host)))).flat();
      if (held.length === 0) {
        if (Date.now() - began > 500) progress(`ports free again after ${Date.now() - began} ms`);
        return;
      }
      if (Date.now() > deadline) return; // let the stack report what holds them
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  return {
    paths,
    ports,
    commitlog,
    topology: stack.topology,
    /** Every server's name, in start order. */
    serviceNames: services.map((s) => s.name),
    async up(): Promise<StackAddresses> {
      return stack.up();
    },
    async down(): Promise<void> {
      // A paused server would ignore SIGTERM until the grace period ends: resume first.
      for (const s of services) {
        const pid = pidOf(s.name);
        if (pid !== null) process.kill(pid, 'SIGCONT');
      }
      await stack.down();
    },
    addresses: () => stack.addresses(),
    /** A client's LOOPLINE_* connection variables (the cluster's: with its replication settings). */
    clientEnv: () => stack.clientEnv('admin'),
    pidOf,
    /** SIGSTOP: the process keeps its sockets and answers nothing (Trogdor's ProcessStopFault). */
    pause(s: ServiceName): number {
      return signal(s, 'SIGSTOP');
    },
    resume(s: ServiceName): number {
      return signal(s, 'SIGCONT');
    },
    /** Stops a server with `sig` and waits for it to exit; `start()` brings it back. */
    async stop(s: ServiceName, sig: 'SIGTERM' | 'SIGKILL', graceMs = 60_000): Promise<void> {
      const pid = signal(s, sig);
      if (!(await waitGone(pid, graceMs))) {
        process.kill(pid, 'SIGKILL');
        await waitGone(pid, 30_000);
      }
    },
    /** Starts whatever of the stack is not running, on its existing data; resolves when every server answers. */
    async start(): Promise<void> {
      await waitPortsFree(60_000);
      await stack.up();
    },
    /** Stop (SIGTERM: a clean shutdown; SIGKILL: a crash) then start again on the same data. */
    async restart(s: ServiceName, sig: 'SIGTERM' | 'SIGKILL'): Promise<void> {
      await this.stop(s, sig);
      await this.start();
    },
  };
}
