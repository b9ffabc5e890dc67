/**
 * drift-monitor: labeled predictions in, quality and drift reports out; and,
 * with monitoring.estimate, scored predictions in (`predictions.by-model`,
 * co-partitioned with `predictions.labeled`: one member owns a model's
 * state), estimates of each window's quality out before its labels arrive
 * (estimate-core.ts). For
 * each model version and variant it keeps tumbling windows, a sequential
 * detector on the error stream and feature/prediction drift against the
 * version's training baseline (monitor-core.ts, pure); every report goes to
 * `monitor.reports`, the `monitor_reports` table and Prometheus (a
 * label-progress report, for the retrain trigger's count, to the topic and
 * Prometheus only).
 *
 * State: one key per pipeline model (`<pipeline>/<model>`) in the state
 * scheme (streams/state.ts), so a restart neither loses nor double-counts a
 * record and a replayed record re-emits exactly the reports it triggered.
 * Records of another pipeline or model are ignored; records the task cannot
 * use (no predicted label, non-finite score, non-numeric regression label)
 * are dead-lettered with stage VALIDATION. A version missing from the
 * registry is monitored for quality only, without drift (logged once).
 *
 *   npm start -- run --workers drift-monitor
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { ModelIntegrityError, ModelNotFoundError } from '../../models/registry.js';
import type { LabeledPrediction, Prediction } from '../../schemas/types.js';
import type { Stores } from '../../store/stores.js';
import type { StoredReport } from '../../store/monitor-reports.js';
import { defineWorker, type WorkerContext } from '../../streams/definition.js';
import type { OutputRecord } from '../../streams/runtime.js';
import { createStatefulProcess, type StatefulLogic } from '../../streams/state.js';
import { applyPrediction, applyRecord, checkPrediction, checkRecord, isProgressReport, MonitorState, monitorConfig, type MonitorConfig, type MonitorReport, type MonitorStateJSON, type VersionBaseline } from './monitor-core.js';

export const DRIFT_MONITOR = 'drift-monitor';

export function monitorMetrics(registry: Registry) {
  return {
    metric: new Gauge({ name: 'loopline_monitor_metric', help: 'Quality metric of the latest window (or alarm) per model version and variant.', labelNames: ['pipeline', 'model_version', 'variant', 'metric'], registers: [registry] }),
    featurePsi: new Gauge({ name: 'loopline_monitor_feature_psi', help: 'PSI of a served feature against the training baseline, latest window.', labelNames: ['pipeline', 'model_version', 'variant', 'feature'], registers: [registry] }),
    predictionPsi: new Gauge({ name: 'loopline_monitor_prediction_psi', help: 'PSI of the predicted score against the training baseline, latest window.', labelNames: ['pipeline', 'model_version', 'variant'], registers: [registry] }),
    alarms: new Counter({ name: 'loopline_monitor_alarms_total', help: 'Detector alarms (error rate rose).', labelNames: ['pipeline', 'model_version', 'variant'], registers: [registry] }),
  };
}
export type MonitorMetrics = ReturnType<typeof monitorMetrics>;

/** The monitor as stateful logic: one state per pipeline model; effects = reports to store. */
export function monitorLogic(config: MonitorConfig, baselineOf: (version: number) => Promise<VersionBaseline | null>, onIgnored?: (lp: LabeledPrediction) => void): StatefulLogic<'LabeledPrediction' | 'Prediction', MonitorState, Map<number, VersionBaseline | null>, StoredReport> {
  const scope = `${config.pipeline}/${config.modelName}`;
  const isScored = (v: LabeledPrediction | Prediction): v is Prediction => !('prediction' in v);
  const ours = (lp: LabeledPrediction) => lp.prediction.pipeline === config.pipeline && lp.prediction.model_name === config.modelName;
  return {
    keyOf(r) {
      // A scored prediction (predictions.by-model) feeds the estimate only: the monitor's without one skips it.
      if (isScored(r.value)) return config.estimate && r.value.pipeline === config.pipeline && r.value.model_name === config.modelName ? scope : null;
      if (ours(r.value)) return scope;
      onIgnored?.(r.value);
      return null;
    },
    initial: () => MonitorState.create(config),
    revive: (stored) => MonitorState.fromJSON(stored as MonitorStateJSON, config),
    validate(r) {
      if (isScored(r.value)) {
        if (!config.estimate || r.value.pipeline !== config.pipeline || r.value.model_name !== config.modelName) return null;
        const problem = checkPrediction(config, r.value);
        return problem ? { stage: 'VALIDATION', code: problem.code, message: problem.message } : null;
      }
      if (!ours(r.value)) return null;
      const problem = checkRecord(config, r.value);
      return problem ? { stage: 'VALIDATION', code: problem.code, message: problem.message } : null;
    },
    async prepare(records, states) {
      // Baselines of slots this chunk may open, fetched before the synchronous core runs.
      const known = new Set(states.get(scope)?.slotKeys ?? []);
      const versions = new Set<number>();
      for (const r of records) if (!isScored(r.value) && ours(r.value) && !known.has(`${r.value.prediction.model_version}/${r.value.prediction.variant}`)) versions.add(r.value.prediction.model_version);
      return new Map(await Promise.all([...versions].map(async (v) => [v, await baselineOf(v)] as const)));
    },
    apply(state, r, baselines) {
      const v = r.value;
      const { reports } = isScored(v) ? applyPrediction(state, v) : applyRecord(state, v, (x) => baselines.get(x) ?? null);
      return {
        state,
        outputs: reports.map((x): OutputRecord => ({ topic: 'monitor.reports', record: x.record, key: scope, value: x.value })),
        // Label-progress reports are for the retrain trigger, not analysts: topic only.
        effects: reports.filter((x) => !isProgressReport(x.value.report_id)).map(toStored),
      };
    },
  };
}

function toStored(r: MonitorReport): StoredReport {
  return r.record === 'QualityReport' ? { kind: 'quality', variant: r.variant, report: r.value } : { kind: 'drift', variant: r.variant, report: r.value };
}

export const driftMonitor = defineWorker({
  name: DRIFT_MONITOR,
  doc: 'tumbling windows per model version and variant: accuracy, AUC, log loss, calibration (or MAE, RMSE); the accuracy and AUC estimated from the scored predictions before labels (CBPE), beside the realised accuracy once joined, with a calibration check; PSI, Kolmogorov-Smirnov and chi-square of the served features against the training baseline, prediction PSI; ADWIN or Page-Hinkley on the error stream for fast alarms',
  input: {
    topics: [
      { topic: 'predictions.labeled', record: 'LabeledPrediction' },
      { topic: 'predictions.by-model', record: 'Prediction' },
    ],
    copartitioned: true,
  },
  outputs: ['monitor.reports'],
  tables: { reads: ['models', 'worker_state'], writes: ['monitor_reports', 'worker_state'] },
  state: 'per pipeline model: the windows, detectors and drift accumulators of every version and variant (worker_state)',
  settings: {},
  createMetrics: monitorMetrics,
  create(_settings, ctx: WorkerContext<Pick<Stores, 'registry' | 'reports' | 'state'>>, metrics) {
    const { spec, stores } = ctx;
    const config = monitorConfig(spec);
    const logger = ctx.logger.child({ worker: DRIFT_MONITOR });
    const baselines = new Map<number, Promise<VersionBaseline | null>>();
    const baselineOf = (version: number): Promise<VersionBaseline | null> => {
      let p = baselines.get(version);
      if (!p) {
        p = stores.registry.get(config.pipeline, config.modelName, version).then(
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
    };
    let ignored = 0;
    const process = createStatefulProcess(
      { ...monitorLogic(config, baselineOf, (lp) => void (ignored++ === 0 && logger.warn({ pipeline: lp.prediction.pipeline, model: lp.prediction.model_name }, 'ignoring labeled predictions of another pipeline or model'))), runEffects: (reports: StoredReport[]) => stores.reports.write(reports) },
      stores.state<MonitorState, StoredReport>(DRIFT_MONITOR),
    );
    return {
      async process(records, pctx) {
        const result = await process(records, pctx);
        observe(metrics, result.outputs);
        return result;
      },
    };
  },
});

/** Gauges from the latest reports (a report re-emitted on a replay counts again: its first emission never committed). */
function observe(metrics: MonitorMetrics, outputs: OutputRecord[]): void {
  for (const o of outputs) {
    const v = o.value as { pipeline: string; model_version: number; variant?: string; report_id: string };
    const variant = v.variant ?? /@\d+\/([^/]+)/.exec(v.report_id)?.[1] ?? 'champion';
    const labels = { pipeline: v.pipeline, model_version: String(v.model_version), variant };
    if (o.record === 'QualityReport') {
      const q = o.value as import('../../schemas/types.js').QualityReport;
      for (const [metric, x] of Object.entries(q.metrics)) metrics.metric.set({ ...labels, metric }, x);
      if (q.alarm !== null) metrics.alarms.inc(labels);
    } else {
      const d = o.value as import('../../schemas/types.js').DriftReport;
      for (const f of d.features) if (f.psi !== null) metrics.featurePsi.set({ ...labels, feature: f.feature }, f.psi);
      if (d.prediction_psi !== null) metrics.predictionPsi.set(labels, d.prediction_psi);
    }
  }
}
