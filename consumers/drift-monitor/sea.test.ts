// A closed-loop flow test of the monitor core on the SEA concepts stream
// (test/data/sea-abrupt.csv: 50,000 rows, abrupt concept drifts at rows
// 12,500, 25,000 and 37,500, 10 % label noise). A logistic regression on
// f1, f2, f3 is trained on rows 0-1,999 and scores every later row; the label
// is known at once (prequential). Every detector alarm leads to a retrain on
// the most recent 1,000 rows, and the new version takes over, as the
// retrain-trigger and model builder would. Like the spec's retrain policy
// (`minFreshLabels`), the retrain waits until those 1,000 rows all came after
// the alarm: the detector needs a few hundred post-change labels to fire, so
// a model trained right at the alarm would learn mostly the old concept (that
// variant still detects every drift here, but the third only after ~2,400
// rows). The monitor must stay silent before the first drift and catch each
// drift within 2,500 rows.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { computeBaseline } from '../../models/baseline.js';
import { encodeRows } from '../../models/encode.js';
import type { FeatureRow, FeatureSpec } from '../../models/feature-spec.js';
import { forward } from '../../models/linear-model.js';
import { decodeOutputs } from '../../models/model-output.js';
import { fitLinearModel, type LinearFit } from '../../models/trainer.js';
import { readCsv } from '../../producers/csv.js';
import type { LabeledPrediction } from '../../schemas/types.js';
import { applyRecord, createMonitorState, type MonitorConfig, type VersionBaseline } from './monitor-core.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DRIFTS = [12_500, 25_000, 37_500];
const TRAIN_ROWS = 2_000;
const RETRAIN_ROWS = 1_000;
const SPEC: FeatureSpec = {
  task: 'binary',
  features: [
    { name: 'f1', kind: 'numeric' },
    { name: 'f2', kind: 'numeric' },
    { name: 'f3', kind: 'numeric' },
  ],
  classes: ['0', '1'],
};
const CONFIG: MonitorConfig = {
  pipeline: 'sea',
  modelName: 'sea-logreg',
  task: 'binary',
  windowSize: 500,
  detector: 'adwin',
  psiThreshold: 0.2,
  pValueThreshold: 0.01,
  positiveLabel: '1',
  retireAfterRecords: 2000,
  progressEvery: 50,
  regressionErrorScale: null,
  adwin: {},
  pageHinkley: {},
  driftMinSamples: 100,
};

interface Row {
  features: FeatureRow;
  label: string;
}

function train(rows: Row[]): { fit: LinearFit; version: VersionBaseline } {
  const features = rows.map((r) => r.features);
  const fit = fitLinearModel({ spec: SPEC, rows: features, labels: rows.map((r) => r.label), settings: { seed: 7 } });
  const outputs = decodeOutputs(fit.params.spec, forward(fit.params, fit.encoded, rows.length), rows.length);
  return { fit, version: { baseline: computeBaseline(fit.params.spec, features, outputs), classes: fit.params.spec.classes } };
}

describe('drift monitor on SEA concepts (closed loop, prequential)', () => {
  it('raises no alarm before the first drift and detects each of the three drifts within 2,500 rows', () => {
    const rows: Row[] = readCsv(path.join(root, 'test', 'data', 'sea-abrupt.csv')).map((r) => ({
      features: { f1: Number(r.f1), f2: Number(r.f2), f3: Number(r.f3) },
      label: r.label!,
    }));
    expect(rows).toHaveLength(50_000);

    const versions = new Map<number, VersionBaseline>();
    let version = 1;
    let model = train(rows.slice(0, TRAIN_ROWS));
    versions.set(version, model.version);
    const state = createMonitorState(CONFIG);
    const alarms: Array<{ row: number; version: number; alarm: string }> = [];
    let retrainAt: number | null = null;
    let correct = 0;

    for (let i = TRAIN_ROWS; i < rows.length; i++) {
      const row = rows[i]!;
      const out = decodeOutputs(model.fit.params.spec, forward(model.fit.params, encodeRows(model.fit.params.spec, [row.features]), 1), 1)[0]!;
      const ok = out.label === row.label;
      if (ok) correct++;
      const lp: LabeledPrediction = {
        prediction: {
          prediction_id: `${i}/sea-logreg@${version}/champion`,
          event_id: String(i),
          pipeline: 'sea',
          entity_id: 'sea',
          model_name: 'sea-logreg',
          model_version: version,
          variant: 'champion',
          label: out.label,
          score: out.score,
          probabilities: { '0': out.probabilities![0]!, '1': out.probabilities![1]! },
          value: null,
          features: row.features,
          missing: [],
          model_features: Object.keys(row.features),
          event_time: i * 1000,
          produced_at: i * 1000,
          scored_at: i * 1000,
        },
        label: row.label,
        label_time: i * 1000,
        joined_at: i * 1000,
        correct: ok,
        error: null,
      };
      const { reports } = applyRecord(state, lp, (v) => versions.get(v) ?? null);
      const alarm = reports.find((r) => r.record === 'QualityReport' && r.value.alarm !== null);
      if (alarm && alarm.record === 'QualityReport') {
        alarms.push({ row: i, version, alarm: alarm.value.alarm! });
        retrainAt ??= i + RETRAIN_ROWS;
      }
      if (i === retrainAt) {
        retrainAt = null;
        model = train(rows.slice(i + 1 - RETRAIN_ROWS, i + 1));
        version++;
        versions.set(version, model.version);
      }
    }

    console.log(`[sea] prequential accuracy ${(correct / (rows.length - TRAIN_ROWS)).toFixed(4)} over rows ${TRAIN_ROWS}-49,999; ${alarms.length} alarms, ${version - 1} retrains`);
    for (const a of alarms) console.log(`[sea] alarm at row ${a.row} (model v${a.version}): ${a.alarm}`);
    expect(alarms.filter((a) => a.row < DRIFTS[0]!)).toEqual([]);
    const ends = [...DRIFTS.slice(1), rows.length];
    DRIFTS.forEach((drift, k) => {
      const first = alarms.find((a) => a.row >= drift && a.row < ends[k]!);
      expect(first, `an alarm between rows ${drift} and ${ends[k]}`).toBeDefined();
      const delay = first!.row - drift;
      console.log(`[sea] drift at row ${drift}: first alarm at row ${first!.row}, detection delay ${delay} rows`);
      expect(delay).toBeLessThan(2_500);
    });
  }, 120_000);
});
