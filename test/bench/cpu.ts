/**
 * CPU time by process over a run: this process (workers, replayer and
 * observer share it) and, when the servers run on this machine, the Kafka,
 * Cassandra and registry processes found by the ports they listen on
 * (Linux /proc; elsewhere only this process is measured). On a shared,
 * loaded machine CPU time per event is steadier than throughput: other
 * processes slow a run down, but they do not add to its CPU time.
 *
 *   const cpu = await createCpuMeter({ kafka: 19092, cassandra: 19042, registry: 18081 });
 *   const before = cpu.sample();
 *   …
 *   const used = cpu.since(before); // { node: 4.1, kafka: 2.3, cassandra: 5.0, registry: 0.1 } seconds
 */
import fs from 'node:fs';

export type CpuSample = Record<string, number>;

export interface CpuMeter {
  /** Process name → pid, for the processes found. */
  pids: Record<string, number>;
  sample(): CpuSample;
  /** CPU seconds used by each process since `before`. */
  since(before: CpuSample): CpuSample;
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ): 100 on every Linux build Node supports. */
const TICKS = 100;

/** utime + stime of a process, in seconds; NaN when it cannot be read. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return Number.NaN;
  }
}

/** The pid of the process listening on a local TCP port, or null. */
export function pidListeningOn(port: number): number | null {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A') continue; // LISTEN
      const local = cols[1]!;
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(cols[9]!);
    }
  }
  if (inodes.size === 0) return null;
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        const m = /^socket:\[(\d+)\]$/.exec(link);
        if (m && inodes.has(m[1]!)) return Number(pid);
      } catch {
        // closed meanwhile
      }
    }
  }
  return null;
}

export function createCpuMeter(ports: Record<string, number | null>): CpuMeter {
  const pids: Record<string, number> = {};
  for (const [name, port] of Object.entries(ports)) {
    if (port === null) continue;
    const pid = pidListeningOn(port);
    if (pid !== null && pid !== process.pid) pids[name] = pid;
  }
  const sample = (): CpuSample => {
    const u = process.cpuUsage();
    const out: CpuSample = { node: (u.user + u.system) / 1e6 };
    for (const [name, pid] of Object.entries(pids)) out[name] = processCpuSeconds(pid);
    return out;
  };
  return {
    pids,
    sample,
    since(before) {
      const now = sample();
      return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, Math.round((v - (before[k] ?? Number.NaN)) * 1000) / 1000]));
    },
  };
}

/** The port of `host:port` or of a URL; null when there is none. */
export function portOf(address: string | undefined): number | null {
  if (!address) return null;
  try {
    if (address.includes('://')) {
      const u = new URL(address);
      return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
    }
  } catch {
    return null;
  }
  const m = /:(\d+)$/.exec(address);
  return m ? Number(m[1]) : null;
}
