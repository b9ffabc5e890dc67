/**
 * Where a running demo keeps its data: the demo writes its topic prefix,
 * keyspace and URLs to `.infra/demo/running.json` while it runs, so
 * `loopline status`, `dlq` and `dashboard` in another terminal look at that
 * run when LOOPLINE_TOPIC_PREFIX and LOOPLINE_CASSANDRA_KEYSPACE are unset.
 */
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../infra/local-stack/paths.js';

export interface DemoRunInfo {
  pid: number;
  prefix: string;
  keyspace: string;
  dashboard: string | null;
  metrics: string | null;
  startedAt: string;
}

export const demoRunFile = path.join(projectRoot, '.infra', 'demo', 'running.json');

export function writeDemoRun(info: Omit<DemoRunInfo, 'pid' | 'startedAt'>, file = demoRunFile): () => void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), ...info }, null, 2));
  return () => {
    const now = readDemoRun(file);
    if (now?.pid === process.pid) fs.rmSync(file, { force: true });
  };
}

export function readDemoRun(file = demoRunFile): DemoRunInfo | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as DemoRunInfo;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The environment an operator command reads: `env`, or the running demo's prefix and keyspace when `env` names neither. */
export function operatorEnv(env: NodeJS.ProcessEnv = process.env, file = demoRunFile): { env: NodeJS.ProcessEnv; demo: DemoRunInfo | null } {
  if (env.LOOPLINE_TOPIC_PREFIX !== undefined || env.LOOPLINE_CASSANDRA_KEYSPACE !== undefined) return { env, demo: null };
  const demo = readDemoRun(file);
  if (!demo || !alive(demo.pid)) return { env, demo: null };
  return { env: { ...env, LOOPLINE_TOPIC_PREFIX: demo.prefix, LOOPLINE_CASSANDRA_KEYSPACE: demo.keyspace }, demo };
}

/** The environment of an operator command (`loadConfig(followDemo())`), saying on stderr when it follows a running demo. */
export function followDemo(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const r = operatorEnv(env);
  if (r.demo) process.stderr.write(`loopline: following the running demo (pid ${r.demo.pid}): prefix ${r.demo.prefix}, keyspace ${r.demo.keyspace}; set LOOPLINE_TOPIC_PREFIX to look elsewhere\n`);
  return r.env;
}
