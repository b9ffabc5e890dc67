/**
 * drift-monitor: labeled predictions in, quality and drift reports out. For
 * each model version and variant it keeps tumbling windows, a sequential
 * detector on the error stream and feature/prediction drift against the
 * version's training baseline (see monitor-core.ts); every report goes to
 * `monitor.reports`, to the `monitor_reports` table and to Prometheus.
 *
 *   const monitor = createDriftMonitor({ spec, cql, registry: createModelRegistry(cql), logger, metrics });
 *   const worker = createWorker(monitor, deps);
 *   await worker.start();
 *
 * Checkpoints: a restart neither loses nor double-counts a record.
 * - The monitor state of the pipeline's model, together with the input
 *   offset of the last record applied per partition, is ONE row of
 *   `worker_checkpoints` (worker 'drift-monitor', scope `<pipeline>/<model>`),
 *   written at the end of every `process()` call, before it returns, with a
 *   compare-and-set on `updated_at` (a worker that lost the partition cannot
 *   overwrite its new owner's checkpoint).
 * - The runtime commits outputs and input offsets in one Kafka transaction
 *   after `process()` returns, so a crash in between replays records the
 *   checkpoint already counted. Such records (offset ≤ the saved offset of
 *   their partition) are not applied again: their state effect is in the
 *   checkpoint. Their outputs, however, went down with the aborted
 *   transaction and must be produced again. So the checkpoint also keeps
 *   every report emitted for the last `replayHorizon` offsets of a partition,
 *   keyed by the offset of the record that triggered it; a replayed record
 *   re-emits exactly the reports it triggered the first time (and an invalid
 *   one is dead-lettered again), in the original order. The uncommitted tail
 *   is at most one chunk (the runtime processes a partition's chunks one
 *   after another, each committed before the next), so a horizon larger than
 *   `batchMax` covers every replay; only records older than the horizon,
 *   i.e. a consumer group rewound by hand, are skipped without re-emission
 *   (logged).
 * - Each call first reads the row's `updated_at`; if it is not the one this
 *   instance wrote last (first call, or another instance moved the
 *   checkpoint after a rebalance) the whole row is reloaded.
 *
 * Metrics (when a registry is given): gauges `loopline_monitor_metric`
 * {pipeline, model_version, variant, metric}, `loopline_monitor_feature_psi`
 * {…, feature} and `loopline_monitor_prediction_psi`, set from the latest
 * report, and the counter `loopline_monitor_alarms_total` (a report
 * re-emitted on a replay counts again: its first emission never committed).
 *
 * Records of another pipeline or model are ignored; records the task cannot
 * use (no predicted label, non-finite score, non-numeric regression label)
 * are dead-lettered with stage VALIDATION. A version missing from the
 * registry is monitored for quality only, without drift (logged once).
 */
import cassandra from 'cassandra-driver';
import { Counter, Gauge, type Registry } from 'prom-client';
import { ModelIntegrityError, ModelNotFoundError, type ModelRegistry } from '../../models/registry.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { LabeledPrediction } from '../../schemas/types.js';
import { LooplineError, PoisonRecordError, TransientError } from '../../streams/errors.js';
import type { Logger } from '../../streams/logger.js';
import type { InputRecord, OutputRecord, ProcessResult, RecordFailure, WorkerHandler } from '../../streams/runtime.js';
import {
  applyRecord,
  checkRecord,
  createMonitorState,
  monitorConfig,
  MonitorState,
  type MonitorConfig,
  type MonitorReport,
  type MonitorStateJSON,
  type VersionBaseline,
} from './monitor-core.js';

export const DRIFT_MONITOR = 'drift-monitor';

export interface DriftMonitorDeps {
  spec: PipelineSpec;
  cql: cassandra.Client;
  registry: ModelRegistry;
  logger: Logger;
  /** Prometheus registry for the monitor's gauges and counter; none registered when omitted. */
  metrics?: Registry;
  /** Overrides of the settings compiled from `spec.monitoring` (see `MonitorConfig`). */
  config?: Partial<MonitorConfig>;
  /** Reports triggered within this many offsets of a partition's last applied one are kept for re-emission on a replay. Default 10 000. */
  replayHorizon?: number;
}

export interface DriftMonitor extends WorkerHandler<'LabeledPrediction'> {
  readonly config: MonitorConfig;
  /** `<pipeline>/<model>`: the checkpoint scope and the key of every report. */
  readonly scope: string;
}

/** Reports emitted for one input record. */
export interface EmittedReports {
  partition: number;
  offset: string;
  reports: MonitorReport[];
}

/** The `state` column of the checkpoint row. */
export interface CheckpointBody {
  monitor: MonitorStateJSON;
  /** Oldest first; see the replay scheme above. */
  emitted: EmittedReports[];
}

interface Checkpoint {
  state: MonitorState;
  offsets: Map<number, bigint>;
  emitted: EmittedReports[];
  /** `updated_at` (ms) of the row as last read or written; null when there is no row yet. */
  token: number | null;
}

export function createDriftMonitor(deps: DriftMonitorDeps): DriftMonitor {
  const { spec, cql, registry } = deps;
  const config = monitorConfig(spec, deps.config);
  const scope = `${config.pipeline}/${config.modelName}`;
  const horizon = BigInt(deps.replayHorizon ?? 10_000);
  const logger = deps.logger.child({ worker: DRIFT_MONITOR, scope });
  const metrics = deps.metrics ? monitorMetrics(deps.metrics) : null;
  const baselines = new Map<number, Promise<VersionBaseline | null>>();
  let cached: Checkpoint | null = null;
  let chain: Promise<unknown> = Promise.resolve();
  let ignored = 0;
  let warnedHorizon = false;

  async function query(what: string, cqlText: string, params: unknown[]): Promise<cassandra.types.ResultSet> {
    try {
      return await cql.execute(cqlText, params, { prepare: true, isIdempotent: true });
    } catch (err) {
      throw new TransientError(`${what}: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
    }
  }

  async function checkpoint(): Promise<Checkpoint> {
    const head = await query('reading the checkpoint', 'SELECT updated_at FROM worker_checkpoints WHERE worker = ? AND scope = ?', [DRIFT_MONITOR, scope]);
    const token = (head.first()?.get('updated_at') as Date | null | undefined)?.getTime() ?? null;
    if (cached && cached.token === token) return cached;
    const rs = await query('reading the checkpoint', 'SELECT state, offsets, updated_at FROM worker_checkpoints WHERE worker = ? AND scope = ?', [DRIFT_MONITOR, scope]);
    const row = rs.first();
    if (!row) {
      logger.info('no checkpoint: starting from an empty monitor state');
      return { state: createMonitorState(config), offsets: new Map(), emitted: [], token: null };
    }
    const body = JSON.parse(row.get('state') as string) as CheckpointBody;
    const offsets = new Map<number, bigint>();
    for (const [p, o] of Object.entries((row.get('offsets') as Record<string, { toString(): string }> | null) ?? {})) offsets.set(Number(p), BigInt(o.toString()));
    const loaded: Checkpoint = {
      state: MonitorState.fromJSON(body.monitor, config),
      offsets,
      emitted: body.emitted,
      token: (row.get('updated_at') as Date).getTime(),
    };
    logger.info({ offsets: Object.fromEntries([...offsets].map(([p, o]) => [p, o.toString()])), slots: loaded.state.slotKeys }, 'checkpoint loaded');
    return loaded;
  }

  async function save(cp: Checkpoint): Promise<void> {
    const token = Math.max(Date.now(), (cp.token ?? 0) + 1);
    const body: CheckpointBody = { monitor: cp.state.toJSON(), emitted: cp.emitted };
    const offsets = Object.fromEntries([...cp.offsets].map(([p, o]) => [p, o.toString()]));
    const params = [JSON.stringify(body), longMap(offsets), new Date(token), DRIFT_MONITOR, scope];
    let rs: cassandra.types.ResultSet;
    try {
      rs =
        cp.token === null
          ? await cql.execute('INSERT INTO worker_checkpoints (state, offsets, updated_at, worker, scope) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS', params, { prepare: true })
          : await cql.execute('UPDATE worker_checkpoints SET state = ?, offsets = ?, updated_at = ? WHERE worker = ? AND scope = ? IF updated_at = ?', [...params, new Date(cp.token)], { prepare: true });
    } catch (err) {
      throw new TransientError(`writing the checkpoint of ${scope}: ${(err as Error).message}`, err, 'STORE_UNAVAILABLE');
    }
    if (!rs.wasApplied()) {
      throw new TransientError(`the checkpoint of ${scope} was moved by another instance; reloading it`, undefined, 'CHECKPOINT_CONFLICT');
    }
    cp.token = token;
  }

  async function writeReports(reports: MonitorReport[]): Promise<void> {
    await Promise.all(
      reports.map((r) =>
        query(
          'writing monitor reports',
          'INSERT INTO monitor_reports (pipeline, kind, created_at, report_id, model_version, variant, body) VALUES (?, ?, ?, ?, ?, ?, ?)',
          [r.value.pipeline, r.record === 'QualityReport' ? 'quality' : 'drift', new Date(r.value.created_at), r.value.report_id, r.value.model_version, r.variant, JSON.stringify(r.value)],
        ),
      ),
    );
  }

  function baselineOf(version: number): Promise<VersionBaseline | null> {
    let p = baselines.get(version);
    if (!p) {
      p = registry.get(config.pipeline, config.modelName, version).then(
        (mv) => ({ baseline: mv.baseline, classes: mv.spec.classes }),
        (err: unknown) => {
          if (err instanceof ModelNotFoundError || err instanceof ModelIntegrityError) {
            logger.warn({ version, reason: err.message }, 'model version unusable from the registry: monitoring its quality only, no drift');
            return null;
          }
          throw err;
        },
      );
      p.catch(() => baselines.delete(version));
      baselines.set(version, p);
    }
    return p;
  }

  function observe(reports: MonitorReport[]): void {
    if (!metrics) return;
    for (const r of reports) {
      const labels = { pipeline: r.value.pipeline, model_version: String(r.value.model_version), variant: r.variant };
      if (r.record === 'QualityReport') {
        for (const [metric, v] of Object.entries(r.value.metrics)) metrics.metric.set({ ...labels, metric }, v);
        if (r.value.alarm !== null) metrics.alarms.inc(labels);
      } else {
        for (const f of r.value.features) if (f.psi !== null) metrics.featurePsi.set({ ...labels, feature: f.feature }, f.psi);
        if (r.value.prediction_psi !== null) metrics.predictionPsi.set(labels, r.value.prediction_psi);
      }
    }
  }

  async function processChunk(records: Array<InputRecord<LabeledPrediction>>): Promise<ProcessResult> {
    const cp = await checkpoint();
    cached = cp;
    const outputs: OutputRecord[] = [];
    const deadLetters: RecordFailure[] = [];
    const emitted: MonitorReport[] = [];
    const isReplay = (r: InputRecord<LabeledPrediction>): boolean => {
      const saved = cp.offsets.get(r.partition);
      return saved !== undefined && BigInt(r.offset) <= saved;
    };
    const ours = (r: InputRecord<LabeledPrediction>): boolean => r.value.prediction.pipeline === config.pipeline && r.value.prediction.model_name === config.modelName;

    // Baselines of slots this chunk may open, fetched before the (synchronous) core runs.
    const known = new Set(cp.state.slotKeys);
    const wanted = new Set<number>();
    for (const r of records) if (ours(r) && !isReplay(r) && !known.has(`${r.value.prediction.model_version}/${r.value.prediction.variant}`)) wanted.add(r.value.prediction.model_version);
    const lookups = new Map<number, VersionBaseline | null>(await Promise.all([...wanted].map(async (v) => [v, await baselineOf(v)] as const)));

    let advanced = false;
    const replayIndex = new Map(cp.emitted.map((e) => [`${e.partition}:${e.offset}`, e]));
    records.forEach((r, index) => {
      if (!ours(r)) {
        if (ignored++ === 0) logger.warn({ pipeline: r.value.prediction.pipeline, model: r.value.prediction.model_name }, 'ignoring labeled predictions of another pipeline or model');
        return;
      }
      const replay = isReplay(r);
      const problem = checkRecord(config, r.value);
      if (problem) {
        deadLetters.push({ index, stage: 'VALIDATION', code: problem.code, message: problem.message });
      } else if (replay) {
        const before = replayIndex.get(`${r.partition}:${r.offset}`);
        if (before) emitted.push(...before.reports);
        else if (!warnedHorizon && BigInt(r.offset) + horizon <= (cp.offsets.get(r.partition) ?? 0n)) {
          warnedHorizon = true;
          logger.warn({ partition: r.partition, offset: r.offset }, 'replayed records older than the replay horizon: counted before, their reports (if any) are not re-emitted');
        }
      } else {
        let reports: MonitorReport[];
        try {
          reports = applyRecord(cp.state, r.value, (v) => lookups.get(v) ?? null).reports;
        } catch (err) {
          throw new PoisonRecordError('PROCESSING', 'MONITOR_FAILED', `monitoring ${r.value.prediction.prediction_id}: ${(err as Error).message}`, err);
        }
        if (reports.length > 0) cp.emitted.push({ partition: r.partition, offset: r.offset, reports });
        emitted.push(...reports);
      }
      if (!replay) {
        cp.offsets.set(r.partition, BigInt(r.offset));
        advanced = true;
      }
    });

    await writeReports(emitted);
    if (advanced) {
      cp.emitted = cp.emitted.filter((e) => BigInt(e.offset) + horizon > (cp.offsets.get(e.partition) ?? 0n));
      await save(cp);
    }
    observe(emitted);
    for (const r of emitted) outputs.push({ topic: 'monitor.reports', record: r.record, key: scope, value: r.value });
    return { outputs, deadLetters };
  }

  return {
    name: DRIFT_MONITOR,
    input: { topic: 'predictions.labeled', record: 'LabeledPrediction' },
    config,
    scope,

    process(records) {
      // One call at a time: calls for different partitions share the scope's state and checkpoint row.
      const run = chain.then(async () => {
        try {
          return await processChunk(records);
        } catch (err) {
          cached = null; // the in-memory state may hold records the checkpoint does not: reload it
          throw err instanceof LooplineError ? err : new TransientError(`drift monitor: ${(err as Error).message}`, err);
        }
      });
      chain = run.catch(() => {});
      return run;
    },

    async close() {
      await chain;
      cached = null;
    },
  };
}

/** The offsets map as the driver encodes `map<int, bigint>` (Long keeps every 64-bit offset exact). */
function longMap(offsets: Record<string, string>): Record<string, cassandra.types.Long> {
  return Object.fromEntries(Object.entries(offsets).map(([p, o]) => [p, cassandra.types.Long.fromString(o)]));
}

function monitorMetrics(registry: Registry) {
  const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
  return {
    metric:
      existing<Gauge<string>>('loopline_monitor_metric') ??
      new Gauge({ name: 'loopline_monitor_metric', help: 'Quality metric of the latest window (or alarm) per model version and variant.', labelNames: ['pipeline', 'model_version', 'variant', 'metric'], registers: [registry] }),
    featurePsi:
      existing<Gauge<string>>('loopline_monitor_feature_psi') ??
      new Gauge({ name: 'loopline_monitor_feature_psi', help: 'PSI of a served feature against the training baseline, latest window.', labelNames: ['pipeline', 'model_version', 'variant', 'feature'], registers: [registry] }),
    predictionPsi:
      existing<Gauge<string>>('loopline_monitor_prediction_psi') ??
      new Gauge({ name: 'loopline_monitor_prediction_psi', help: 'PSI of the predicted score against the training baseline, latest window.', labelNames: ['pipeline', 'model_version', 'variant'], registers: [registry] }),
    alarms:
      existing<Counter<string>>('loopline_monitor_alarms_total') ??
      new Counter({ name: 'loopline_monitor_alarms_total', help: 'Detector alarms (error rate rose).', labelNames: ['pipeline', 'model_version', 'variant'], registers: [registry] }),
  };
}
