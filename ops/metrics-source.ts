/**
 * Prometheus samples from a running worker process: its `/metrics` URL
 * (text exposition format, parsed here) or, in the same process, its
 * prom-client registry. Both give the same flat samples, so the dashboard
 * and `loopline status` read either.
 *
 *   const source = metricsFromUrl('http://127.0.0.1:9464/metrics');
 *   const samples = await source.read();
 *   sumOf(samples, 'loopline_worker_records_total', { worker: 'scorer' });
 */
import type { Registry } from 'prom-client';
import { TransientError } from '../core/errors.js';

export interface Sample {
  /** Full sample name, e.g. `loopline_joiner_label_delay_seconds_bucket`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricsSource {
  /** Where the samples come from, for messages. */
  describe: string;
  read(): Promise<Sample[]>;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text exposition format (comments and blank lines skipped). Pure. */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    const v = m[4]!;
    const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v);
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

export function metricsFromUrl(url: string, timeoutMs = 5000): MetricsSource {
  return {
    describe: url,
    async read() {
      let res: Response;
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        throw new TransientError(`reading metrics from ${url}: ${(err as Error).message}`, undefined, 'METRICS_UNAVAILABLE');
      }
      if (!res.ok) throw new TransientError(`reading metrics from ${url}: HTTP ${res.status}`, undefined, 'METRICS_UNAVAILABLE');
      return parsePrometheusText(await res.text());
    },
  };
}

export function metricsFromRegistry(registry: Registry): MetricsSource {
  return {
    describe: 'this process',
    async read() {
      return parsePrometheusText(await registry.metrics());
    },
  };
}

/** Sum of the samples named `name` whose labels include `labels`. */
export function sumOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** The q-quantile of a histogram from its cumulative `_bucket` samples (upper bound of the bucket reached), or null when empty. */
export function histogramQuantile(samples: readonly Sample[], name: string, q: number): number | null {
  const buckets = samples
    .filter((s) => s.name === `${name}_bucket`)
    .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), n: s.value }))
    .sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.n ?? 0;
  if (total === 0) return null;
  const hit = buckets.find((b) => b.n >= q * total)!;
  return Number.isFinite(hit.le) ? hit.le : (buckets.at(-2)?.le ?? null);
}
