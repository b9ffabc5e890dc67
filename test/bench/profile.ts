/**
 * CPU profiles of the measured runs (`npm run bench -- --cpu-profile DIR`):
 * the V8 sampling profiler of this process, started when a run starts and
 * stopped when its last prediction is read, written as a `.cpuprofile`
 * (Chrome DevTools, speedscope) and summarised by who spent the time.
 *
 * The summary attributes each sample to the nearest frame on its stack that
 * belongs to a package (kafkajs, cassandra-driver, avsc, …) or to a folder of
 * this repository (streams/, consumers/, store/, …), so a Buffer copy made by
 * kafkajs counts as kafkajs; garbage collection and idle time are their own
 * rows. Pure apart from `startProfile`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Session } from 'node:inspector/promises';

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  /** Sampled wall time, ms. */
  totalMs: number;
  /** ms not idle. */
  busyMs: number;
  /** Busy time by who spent it (GC its own row), ms, largest first. */
  byOwner: Array<{ owner: string; ms: number; share: number }>;
  /** Functions with the most self time, largest first. */
  topFunctions: Array<{ fn: string; ms: number; share: number }>;
}

export interface RunningProfile {
  stop(file: string): Promise<ProfileSummary>;
}

export async function startProfile(): Promise<RunningProfile> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 1000 });
  await session.post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
      session.disconnect();
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify(profile));
      return summarizeProfile(profile);
    },
  };
}

const SPECIAL: Record<string, string> = { '(garbage collector)': 'GC', '(idle)': 'idle', '(program)': 'V8 (program)', '(root)': 'V8 (program)' };

/** Who a frame belongs to: a package, a folder of this repository, or null for Node's own and native code. */
export function ownerOf(url: string): string | null {
  if (!url) return null;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:') || !url.includes('/')) return null;
  const file = url.replace(/^file:\/\//, '');
  const rel = path.relative(process.cwd(), file);
  if (rel.startsWith('..')) return null;
  const parts = rel.split(path.sep);
  if (parts[0] === 'test') return parts.slice(0, 2).join('/');
  return parts.length > 1 ? `${parts[0]}/` : rel;
}

export function summarizeProfile(p: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ownerCache = new Map<number, string>();
  const owner = (id: number): string => {
    const hit = ownerCache.get(id);
    if (hit) return hit;
    const self = byId.get(id)!.callFrame;
    let found = SPECIAL[self.functionName] && !self.url ? SPECIAL[self.functionName]! : null;
    for (let at: number | undefined = id; !found && at !== undefined; at = parent.get(at)) found = ownerOf(byId.get(at)!.callFrame.url);
    const o = found ?? 'node (internals, native)';
    ownerCache.set(id, o);
    return o;
  };
  const owners = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const o = owner(id);
    owners.set(o, (owners.get(o) ?? 0) + dt);
    if (o === 'idle') return;
    const cf = byId.get(id)!.callFrame;
    const where = ownerOf(cf.url) ?? (cf.url ? cf.url.replace(/^node:/, 'node:') : 'native');
    const k = `${cf.functionName || '(anonymous)'} (${where}${cf.url ? `:${cf.lineNumber + 1}` : ''})`;
    fns.set(k, (fns.get(k) ?? 0) + dt);
  });
  const idle = owners.get('idle') ?? 0;
  const busy = total - idle;
  const rows = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return {
    totalMs: Math.round(total),
    busyMs: Math.round(busy),
    byOwner: rows(owners).filter(([o]) => o !== 'idle').map(([o, ms]) => ({ owner: o, ms: Math.round(ms), share: busy > 0 ? ms / busy : 0 })),
    topFunctions: rows(fns).slice(0, top).map(([fn, ms]) => ({ fn, ms: Math.round(ms), share: busy > 0 ? ms / busy : 0 })),
  };
}
