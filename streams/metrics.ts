/**
 * The runtime's Prometheus metrics, registered on an injected registry (a
 * fresh one per test). Names follow loopline_<part>_<what>_<unit>.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createWorkerMetrics(registry: Registry) {
  return {
    records: new Counter({ name: 'loopline_worker_records_total', help: 'Input records by outcome (processed, dead_letter).', labelNames: ['worker', 'topic', 'outcome'], registers: [registry] }),
    outputs: new Counter({ name: 'loopline_worker_outputs_total', help: 'Output records committed, by topic (dead letters not included).', labelNames: ['worker', 'topic'], registers: [registry] }),
    deadLetters: new Counter({ name: 'loopline_worker_dead_letters_total', help: 'Records sent to a dead-letter topic, by reason code.', labelNames: ['worker', 'code'], registers: [registry] }),
    retries: new Counter({ name: 'loopline_worker_retries_total', help: 'Retries after retriable failures, by error code.', labelNames: ['worker', 'code'], registers: [registry] }),
    crashes: new Counter({ name: 'loopline_worker_consumer_crashes_total', help: 'kafkajs consumer crashes.', labelNames: ['worker'], registers: [registry] }),
    fencings: new Counter({ name: 'loopline_worker_task_fencings_total', help: 'Transactional producers initialised on assignment or recovery (each fences the previous owner).', labelNames: ['worker'], registers: [registry] }),
    fenced: new Counter({ name: 'loopline_worker_tasks_fenced_total', help: 'Tasks this member stopped because another member fenced it.', labelNames: ['worker'], registers: [registry] }),
    offsetRegressions: new Counter({ name: 'loopline_worker_offset_regressions_total', help: 'Committed offsets the broker answered below one this process had committed (kept at the higher; RELIABILITY.md 12).', labelNames: ['worker'], registers: [registry] }),
    batchSeconds: new Histogram({ name: 'loopline_worker_chunk_seconds', help: 'Time from the first record of a transaction to its commit.', labelNames: ['worker'], buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    commitSeconds: new Histogram({ name: 'loopline_worker_commit_seconds', help: 'Time of the EndTxn (commit) call.', labelNames: ['worker'], buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [registry] }),
    lag: new Gauge({ name: 'loopline_worker_consumer_lag', help: 'Records behind the high watermark after the last commit.', labelNames: ['worker', 'topic', 'partition'], registers: [registry] }),
    lastProgress: new Gauge({ name: 'loopline_worker_last_progress_timestamp_seconds', help: 'Unix time of the last committed transaction.', labelNames: ['worker'], registers: [registry] }),
  };
}

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
