/**
 * `loopline status`: one look at a running pipeline (ops/status.ts has what
 * it reads). `--json` prints the snapshot alone on stdout; `--watch` prints a
 * new one every `--interval-ms` until Ctrl-C (as JSON lines with `--json`).
 * Exit code 0 when the stack answers, 3 when a server does not.
 */
import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { followDemo } from '../ops/demo-run.js';
import { openClients } from '../ops/clients.js';
import { metricsFromUrl } from '../ops/metrics-source.js';
import type { OffsetSample } from '../ops/offsets.js';
import { collectStatus, type StatusSnapshot } from '../ops/status.js';
import { loadSpec } from '../pipelines/spec.js';
import { createLogger } from '../streams/logger.js';
import { DEFAULT_SPEC, intOption } from './workers.js';

const n = (v: number | null | undefined, d = 0) => (v === null || v === undefined ? '—' : v.toFixed(d));

/** The snapshot as text for a terminal. Pure. */
export function statusText(s: StatusSnapshot): string {
  const out: string[] = [];
  out.push(`${s.pipeline} / ${s.model}   prefix ${s.topicPrefix || '(none)'}   keyspace ${s.keyspace}   at ${s.at}`);
  out.push('');
  out.push('stack');
  for (const h of s.stack) out.push(`  ${h.server.padEnd(16)} ${h.ok ? 'ok  ' : 'DOWN'}  ${String(h.ms).padStart(5)} ms  ${h.address}  ${h.detail}`);
  out.push('');
  const sv = s.serving;
  out.push(`serving   champion ${sv?.champion ? `v${sv.champion}` : '—'}   shadow ${sv?.shadow ? `v${sv.shadow}` : '—'}   A/B ${sv?.ab ? `v${sv.ab.version} at ${sv.ab.share}` : '—'}   previous ${sv?.previous ? `v${sv.previous}` : '—'}`);
  out.push('');
  out.push('worker groups                          lag   records/s   partitions (lag)');
  for (const g of s.groups) {
    out.push(`  ${g.worker.padEnd(34)} ${String(g.lag).padStart(5)}   ${n(g.perSecond, 1).padStart(9)}   ${g.partitions.map((p) => `${p.topic}[${p.partition}] ${p.lag}`).join(', ')}`);
  }
  if (s.metrics) out.push(`  metrics from ${s.metrics.source}: label coverage ${n(s.metrics.labelCoverage, 3)}, label delay p50 ${s.metrics.labelDelayP50Seconds === null ? '—' : `${(s.metrics.labelDelayP50Seconds / 3600).toFixed(1)} h`}`);
  out.push('');
  out.push('latest quality');
  for (const q of s.quality) out.push(`  ${q.variant.padEnd(9)} v${String(q.version).padEnd(4)} window to ${q.windowEnd}  n=${q.count}  ${Object.entries(q.metrics).map(([k, v]) => `${k}=${v.toFixed(4)}`).join(' ')}${q.alarm ? `  ALARM ${q.alarm}` : ''}`);
  if (s.quality.length === 0) out.push('  (no quality report yet)');
  if (s.drift) {
    out.push(`latest drift  v${s.drift.version} window to ${s.drift.windowEnd}: ${s.drift.drifted ? `DRIFTED (${s.drift.drifted_features.join(', ')})` : 'no drift'}; prediction PSI ${n(s.drift.predictionPsi, 3)}; top PSI ${s.drift.topPsi.map((f) => `${f.feature} ${n(f.psi, 3)}`).join(', ')}`);
  }
  out.push(`alarms    ${s.alarms.length ? s.alarms.map((a) => `${a.variant} v${a.version} at ${a.windowEnd}: ${a.alarm}`).join('\n          ') : 'none in the recent reports'}`);
  out.push('');
  out.push(`dead letters  ${s.deadLetters.total}${s.deadLetters.complete ? '' : ' (read incomplete)'}`);
  for (const r of s.deadLetters.byReason) out.push(`  ${r.dlqTopic.padEnd(28)} ${r.code.padEnd(20)} ${String(r.count).padStart(6)}   offsets ${r.first} … ${r.last}`);
  out.push('');
  out.push('recent decisions');
  for (const d of s.decisions) out.push(`  ${d.at}  ${d.action.padEnd(12)} v${d.version}${d.previous ? ` (was v${d.previous})` : ''}  by ${d.actor}: ${d.reason}`);
  if (s.decisions.length === 0) out.push('  (none)');
  for (const [part, why] of Object.entries(s.errors)) out.push(`! ${part}: ${why}`);
  return out.join('\n');
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('lag and throughput per worker group and partition, what serves, latest quality and drift, alarms, dead letters by reason, stack health')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--json', 'print one JSON object alone on stdout')
    .option('--watch', 'print a new status every --interval-ms until Ctrl-C (JSON lines with --json)')
    .option('--interval-ms <ms>', 'between two offset samples (throughput) and between --watch updates', intOption('--interval-ms', 200, 3_600_000), 2000)
    .option('--metrics-url <url>', "a worker process's /metrics, for records/s by worker and label coverage and delay")
    .action(async (o: { spec: string; json?: boolean; watch?: boolean; intervalMs: number; metricsUrl?: string }) => {
      const config = loadConfig(followDemo());
      const { spec } = loadSpec(o.spec);
      const logger = createLogger({ level: 'error', name: 'status' });
      const clients = openClients(config, logger, 'status');
      let stop = false;
      process.once('SIGINT', () => (stop = true));
      let previous: OffsetSample | undefined;
      try {
        for (;;) {
          const { snapshot, offsets } = await collectStatus(clients, spec, { sampleMs: o.intervalMs, ...(previous ? { previous } : {}), ...(o.metricsUrl ? { metrics: metricsFromUrl(o.metricsUrl) } : {}) });
          previous = offsets ?? undefined;
          if (o.json) process.stdout.write(`${JSON.stringify(snapshot)}\n`);
          else process.stdout.write(`${o.watch ? '\x1b[2J\x1b[H' : ''}${statusText(snapshot)}\n`);
          if (!snapshot.stack.every((h) => h.ok)) process.exitCode = 3;
          if (!o.watch || stop) break;
          await new Promise((r) => setTimeout(r, o.intervalMs));
          if (stop) break;
        }
      } finally {
        await clients.close();
      }
    });
}
