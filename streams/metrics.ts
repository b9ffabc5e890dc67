/**
 * The runtime's Prometheus metrics, registered on an injected registry (a
 * fresh one per test). Names follow loopline_<part>_<what>_<unit>.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createWorkerMetrics(registry: Registry) {
  return {
    records: new Counter({ name: 'loopline_worker_records_total', help: 'Input records by outcome (processed, dead_letter).', labelNames: ['worker', 'topic', 'outcome'], registers: [registry] }),
    outputs: new Counter({ name: 'loopline_worker_outputs_total', help: 'Output records committed.', labelNames: ['worker'], registers: [registry] }),
    deadLetters: new Counter({ name: 'loopline_worker_dead_letters_total', help: 'Records sent to a dead-letter topic, by reason code.', labelNames: ['worker', 'code'], registers: [registry] }),
    retries: new Counter({ name: 'loopline_worker_retries_total', help: 'Retries after retriable failures, by error code.', labelNames: ['worker', 'code'], registers: [registry] }),
    crashes: new Counter({ name: 'loopline_worker_consumer_crashes_total', help: 'kafkajs consumer crashes.', labelNames: ['worker'], registers: [registry] }),
    batchSeconds: new Histogram({ name: 'loopline_worker_chunk_seconds', help: 'Time to decode, process and commit one chunk.', labelNames: ['worker'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    lag: new Gauge({ name: 'loopline_worker_consumer_lag', help: 'Records behind the high watermark after the last committed chunk.', labelNames: ['worker', 'topic', 'partition'], registers: [registry] }),
    lastProgress: new Gauge({ name: 'loopline_worker_last_progress_timestamp_seconds', help: 'Unix time of the last committed chunk.', labelNames: ['worker'], registers: [registry] }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
