/**
 * `npx tsx study/cbpe-elec2.ts [options]` — how well streaming CBPE
 * (stats/cbpe.ts) estimates Elec2 accuracy before the labels arrive, under
 * the loop's protocol; offline and deterministic (about 10 s).
 *
 * Protocol:
 * - the bootstrap model is trained with `trainForPipeline` on the
 *   point-in-time rows of the first `trainer.bootstrapRows` (5,000) rows;
 * - the replay plan's events and labels are walked in plan order (labels
 *   `label.delayMs` = a day = 48 rows late, after the event at the same
 *   instant); every later event is scored by the current model through ONNX
 *   (the serving path) and fed to the estimator (`addPrediction`);
 * - each label of a scored event feeds the realised `QualityWindow` of the
 *   version that scored it (windows of `monitoring.windowSize` labeled
 *   predictions, as the drift monitor's), whose full windows are compared
 *   with the estimate of the same window (`addRealised`), and the
 *   estimator's calibration (`addLabeled`);
 * - every `--retrain-every` (1,000) labels a new version is trained on the
 *   newest `--train-rows` (`trainer.windowRows`, 2,000) labeled rows and
 *   serves from the next event on (no promotion gate); as in the drift
 *   monitor, its predictions are taken raw until its own labels fit its
 *   calibrator. `--insample-reference` fits it at once on the newest
 *   `--reference-rows` (one window) labeled rows scored by the new version
 *   (`setReference`; rows it was trained on, so optimistic), which the
 *   monitor does not do.
 *
 * Output: a table of windows and `estimate.meanAbsError` = mean |estimated −
 * realised accuracy| over full windows, also without calibration (raw
 * probabilities), with the bias, the band's coverage and the AUC's error.
 * Two label-only baselines put it in context: `lastKnown` = accuracy of the
 * newest window of labeled predictions when the window closes (with a
 * 48-row delay most of a 500-row window is labeled by then) and `atStart` =
 * the same when the window opens. `tail` restricts the comparison to the
 * predictions still unlabeled when their window closed — the part only an
 * estimate can speak for (pooled over windows; per window it is ~48 rows).
 *
 * Options (defaults: the estimator's and the spec's):
 *   --method isotonic|platt|temperature|identity   --no-refit   --next-window   --insample-reference
 *   --refit-every N   --reference-size N   --reference-rows N   --window N
 *   --retrain-every N   --train-rows N   --holdout-rows N (default 0: train on the newest rows)
 *   --label-delay-rows N (default: the spec's delay)
 *   --max-mae X (default 0.03)   --compare (a line per method × refit)   --quiet (no table)
 * Exits 1 when the calibrated meanAbsError exceeds --max-mae, 2 on a usage error.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadOnnxModel, type OnnxModel } from '../models/onnx-model.js';
import { trainForPipeline } from '../models/pipeline-training.js';
import { loadSpec, type PipelineSpec } from '../pipelines/spec.js';
import { readCsv } from '../producers/csv.js';
import { buildReplayPlan, pointInTimeRows, type PointInTimeRow, type ReplayPlan } from '../producers/replay-plan.js';
import { CALIBRATION_METHODS, calibrate, type CalibrationMethod, type Calibrator } from '../stats/calibration.js';
import { cbpeConfig, CbpeMonitor, type CbpeConfig, type CbpeWindowReport, type EstimateComparison } from '../stats/cbpe.js';
import { QualityWindow } from '../stats/quality.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SPEC_FILE = path.resolve(here, '../pipelines/elec2.json');
const VARIANT = 'champion';
const ROW_MS = 30 * 60 * 1000;

export interface StudyOptions {
  method: CalibrationMethod;
  refitFromLabels: boolean;
  refitTakesEffect: CbpeConfig['refitTakesEffect'];
  /** Estimator options; null: the estimator's defaults. */
  refitEvery: number | null;
  referenceSize: number | null;
  /** Labeled rows, scored by a new version, its calibrator is first fitted on. */
  referenceRows: number;
  insampleReference: boolean;
  windowSize: number;
  retrainEvery: number;
  trainRows: number;
  /** Newest labeled rows held out of a retrain (model-builder's promotion.holdoutRows); 0: train on the newest. */
  holdoutRows: number;
  /** Label delay in rows (30 min each); null: the spec's. */
  labelDelayRows: number | null;
}

export interface StudyWindow {
  version: number;
  window: number;
  start: number;
  estimated: number;
  lower: number;
  upper: number;
  uncalibrated: number;
  realised: number;
  estimatedAuc: number | null;
  realisedAuc: number | null;
  /** Accuracy of the newest windowSize labeled predictions when the window closed / opened. */
  lastKnown: number | null;
  lastKnownAtStart: number | null;
  /** Predictions unlabeled at window close: count, Σ estimated P(correct), hits. */
  tailCount: number;
  tailEstimatedSum: number;
  tailHits: number;
  ece: number | null;
  flagged: boolean | null;
}

export interface StudyResult {
  options: StudyOptions;
  config: CbpeConfig;
  scored: number;
  versions: number;
  windows: StudyWindow[];
  meanAbsError: number;
  uncalibratedMeanAbsError: number;
  meanError: number;
  coverage: number;
  aucMeanAbsError: number | null;
  lastKnownMeanAbsError: number | null;
  lastKnownAtStartMeanAbsError: number | null;
  /** Pooled over the unlabeled tails: |Σ estimated − Σ hits| / n, and the lastKnown baseline's. */
  tail: { count: number; estimateError: number; lastKnownError: number } | null;
  seconds: number;
}

interface Served {
  version: number;
  window: number;
  probabilities: Record<string, number>;
  predicted: string;
  score: number;
  /** Calibrated P(predicted class) as the estimator used it. */
  q: number;
}

export interface StudyData {
  spec: PipelineSpec;
  rows: Map<string, PointInTimeRow>;
  order: string[];
  csv: Array<Record<string, string>>;
}

export function loadStudyData(): StudyData {
  const { spec, dir } = loadSpec(SPEC_FILE);
  if (!spec.replay) throw new Error('elec2 spec has no replay section');
  const csv = readCsv(path.resolve(dir, spec.replay.csv));
  const all = pointInTimeRows(spec, buildReplayPlan(spec, csv));
  return { spec, csv, rows: new Map(all.map((r) => [r.event.event_id, r])), order: all.map((r) => r.event.event_id) };
}

export async function runStudy(data: StudyData, options: StudyOptions): Promise<StudyResult> {
  const started = Date.now();
  const { rows, order } = data;
  const spec: PipelineSpec = options.labelDelayRows === null ? data.spec : { ...data.spec, label: { ...data.spec.label, delayMs: options.labelDelayRows * ROW_MS } };
  const plan: ReplayPlan = buildReplayPlan(spec, data.csv);
  const classes = spec.label.classes;
  const positive = classes[1]!;
  const bootstrap = new Set(order.slice(0, spec.trainer.bootstrapRows));

  const config = cbpeConfig({
    classes,
    windowSize: options.windowSize,
    calibration: { method: options.method },
    refitFromLabels: options.refitFromLabels,
    refitTakesEffect: options.refitTakesEffect,
    ...(options.refitEvery === null ? {} : { refitEvery: options.refitEvery }),
    ...(options.referenceSize === null ? {} : { referenceSize: options.referenceSize }),
  });
  const cbpe = CbpeMonitor.create(config);
  // Labeled history, oldest first: the bootstrap rows, then every labeled scored row.
  const labeled: Array<{ row: PointInTimeRow; label: string }> = order
    .slice(0, spec.trainer.bootstrapRows)
    .map((id) => rows.get(id)!)
    .filter((r) => r.label !== null)
    .map((row) => ({ row, label: String(row.label) }));

  let version = 1;
  let model: OnnxModel = await train(spec, labeled);
  // The calibrator the estimator applies to the next prediction (mirrors refitTakesEffect).
  let versionCalibrator: Calibrator = cbpe.calibration(version).calibrator;
  let windowCalibrator: Calibrator = versionCalibrator;
  const served = new Map<string, Served>();
  const realised = new Map<number, { window: QualityWindow; index: number }>();
  const reports = new Map<string, CbpeWindowReport>();
  const comparisons: EstimateComparison[] = [];
  const recentHits: number[] = [];
  const known = (): number | null => (recentHits.length ? recentHits.reduce((a, b) => a + b, 0) / recentHits.length : null);
  const baselines = new Map<string, { atStart: number | null; atClose: number | null }>();
  const tails = new Map<string, { count: number; estimated: number; hits: number }>();
  let startKnown: number | null = null;
  let labelsSinceRetrain = 0;
  let scored = 0;

  for (const action of plan) {
    if (action.kind === 'event') {
      const id = action.record.event_id;
      if (bootstrap.has(id)) continue;
      const row = rows.get(id)!;
      const [out] = await model.predict([row.values]);
      const probabilities = Object.fromEntries(classes.map((c, k) => [c, out!.probabilities![k]!]));
      const predicted = out!.label!;
      const windowIndex = cbpe.windowIndex(version, VARIANT);
      if (cbpe.windowCount(version, VARIANT) === 0) {
        startKnown = known();
        windowCalibrator = versionCalibrator;
      }
      const calibrator = config.refitTakesEffect === 'next-window' ? windowCalibrator : versionCalibrator;
      served.set(id, { version, window: windowIndex, probabilities, predicted, score: out!.score, q: calibrate(calibrator, probabilities)[predicted] ?? 0 });
      scored++;
      const report = cbpe.addPrediction({ modelVersion: version, variant: VARIANT, eventTime: row.event.event_time, probabilities, predicted });
      if (report) {
        const key = `${report.modelVersion}/${report.windowIndex}`;
        reports.set(key, report);
        baselines.set(key, { atStart: startKnown, atClose: known() });
        // Everything of this window not labeled yet is its blind tail.
        const tail = { count: 0, estimated: 0, hits: 0 };
        for (const s of served.values()) if (s.version === report.modelVersion && s.window === report.windowIndex) tail.count++;
        tails.set(key, tail);
      }
    } else if (action.kind === 'label') {
      const id = action.record.event_id;
      const s = served.get(id);
      if (!s) continue; // a bootstrap row: already in the history
      served.delete(id);
      const label = String(action.record.label);
      const hit = label === s.predicted ? 1 : 0;
      labeled.push({ row: rows.get(id)!, label });
      recentHits.push(hit);
      if (recentHits.length > options.windowSize) recentHits.shift();
      const tail = tails.get(`${s.version}/${s.window}`);
      if (tail) {
        tail.estimated += s.q;
        tail.hits += hit;
      }

      let r = realised.get(s.version);
      if (!r) realised.set(s.version, (r = { window: new QualityWindow('binary', { positiveLabel: positive }), index: 0 }));
      r.window.add({ label, predicted: s.predicted, score: s.score });
      if (r.window.count >= options.windowSize) {
        const c = cbpe.addRealised(s.version, VARIANT, r.index, r.window.summary());
        if (c) comparisons.push(c);
        r.window.reset();
        r.index++;
      }
      const update = cbpe.addLabeled({ modelVersion: s.version, probabilities: s.probabilities, label });
      if (update && update.modelVersion === version) versionCalibrator = cbpe.calibration(version).calibrator;

      if (++labelsSinceRetrain >= options.retrainEvery) {
        labelsSinceRetrain = 0;
        await model.close();
        model = await train(spec, labeled.slice(-(options.trainRows + options.holdoutRows), labeled.length - options.holdoutRows));
        version++;
        if (options.insampleReference) {
          const reference = labeled.slice(-options.referenceRows);
          const outputs = await model.predict(reference.map((l) => l.row.values));
          cbpe.setReference(
            version,
            reference.map((l, i) => ({ label: l.label, probabilities: Object.fromEntries(classes.map((c, k) => [c, outputs[i]!.probabilities![k]!])) })),
          );
        }
        versionCalibrator = cbpe.calibration(version).calibrator;
      }
    }
  }
  await model.close();

  const windows: StudyWindow[] = comparisons.map((c) => {
    const key = `${c.modelVersion}/${c.windowIndex}`;
    const report = reports.get(key)!;
    const acc = c.metrics.find((m) => m.metric === 'accuracy')!;
    const auc = c.metrics.find((m) => m.metric === 'rocAuc');
    const tail = tails.get(key) ?? { count: 0, estimated: 0, hits: 0 };
    return {
      version: c.modelVersion,
      window: c.windowIndex,
      start: report.windowStart,
      estimated: acc.estimated,
      lower: report.estimate.accuracy!.lower,
      upper: report.estimate.accuracy!.upper,
      uncalibrated: report.estimate.uncalibratedAccuracy!,
      realised: acc.realised,
      estimatedAuc: auc?.estimated ?? null,
      realisedAuc: auc?.realised ?? null,
      lastKnown: baselines.get(key)?.atClose ?? null,
      lastKnownAtStart: baselines.get(key)?.atStart ?? null,
      tailCount: tail.count,
      tailEstimatedSum: tail.estimated,
      tailHits: tail.hits,
      ece: c.calibration?.ece ?? null,
      flagged: c.calibration?.flagged ?? null,
    };
  });
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const maeOf = (pick: (w: StudyWindow) => number | null): number | null => {
    const ws = windows.filter((w) => pick(w) !== null);
    return ws.length ? mean(ws.map((w) => Math.abs(pick(w)! - w.realised))) : null;
  };
  const aucErrors = windows.filter((w) => w.estimatedAuc !== null && w.realisedAuc !== null).map((w) => Math.abs(w.estimatedAuc! - w.realisedAuc!));
  const tailCount = windows.reduce((s, w) => s + w.tailCount, 0);
  return {
    options,
    config,
    scored,
    versions: version,
    windows,
    meanAbsError: mean(windows.map((w) => Math.abs(w.estimated - w.realised))),
    uncalibratedMeanAbsError: mean(windows.map((w) => Math.abs(w.uncalibrated - w.realised))),
    meanError: mean(windows.map((w) => w.estimated - w.realised)),
    coverage: mean(windows.map((w) => (w.realised >= w.lower && w.realised <= w.upper ? 1 : 0))),
    aucMeanAbsError: aucErrors.length ? mean(aucErrors) : null,
    lastKnownMeanAbsError: maeOf((w) => w.lastKnown),
    lastKnownAtStartMeanAbsError: maeOf((w) => w.lastKnownAtStart),
    tail:
      tailCount > 0
        ? {
            count: tailCount,
            // per window |tail estimate − tail realised|, weighted by tail size
            estimateError: windows.reduce((s, w) => s + Math.abs(w.tailEstimatedSum - w.tailHits), 0) / tailCount,
            lastKnownError: windows.reduce((s, w) => s + Math.abs((w.lastKnown ?? 0) * w.tailCount - w.tailHits), 0) / tailCount,
          }
        : null,
    seconds: (Date.now() - started) / 1000,
  };
}

async function train(spec: PipelineSpec, rows: Array<{ row: PointInTimeRow; label: string }>): Promise<OnnxModel> {
  const trained = trainForPipeline(spec, rows.map((r) => r.row.values), rows.map((r) => r.label));
  return loadOnnxModel(trained.onnx, trained.spec);
}

const f3 = (x: number | null): string => (x === null ? '  -  ' : x.toFixed(3));

export function summaryLine(r: StudyResult): string {
  const o = r.options;
  const c = r.config;
  const settings = `method=${o.method} refit=${o.refitFromLabels ? `every ${c.refitEvery} labels on the newest ${c.referenceSize}, ${c.refitTakesEffect}` : 'off'} delay=${o.labelDelayRows ?? 'spec'}${o.holdoutRows ? ` holdout=${o.holdoutRows}` : ''}`;
  const tail = r.tail ? ` tail(n=${r.tail.count}): estimate ${r.tail.estimateError.toFixed(4)} vs lastKnown ${r.tail.lastKnownError.toFixed(4)}` : '';
  return (
    `${settings}: windows=${r.windows.length} estimate.meanAbsError=${r.meanAbsError.toFixed(4)} uncalibrated=${r.uncalibratedMeanAbsError.toFixed(4)} ` +
    `bias=${r.meanError >= 0 ? '+' : ''}${r.meanError.toFixed(4)} coverage=${r.coverage.toFixed(2)} auc.meanAbsError=${f3(r.aucMeanAbsError)} ` +
    `| labels only: lastKnown=${f3(r.lastKnownMeanAbsError)} atStart=${f3(r.lastKnownAtStartMeanAbsError)} |${tail} (${r.seconds.toFixed(1)} s)`
  );
}

function printTable(r: StudyResult): void {
  const lines = [' ver  w  start       est    band            raw    real   err     estAUC realAUC known  ece   flag'];
  for (const w of r.windows) {
    const err = w.estimated - w.realised;
    lines.push(
      `${String(w.version).padStart(4)} ${String(w.window).padStart(2)}  ${new Date(w.start).toISOString().slice(0, 10)}  ${f3(w.estimated)}  [${f3(w.lower)}, ${f3(w.upper)}]  ${f3(w.uncalibrated)}  ${f3(w.realised)}  ${err >= 0 ? '+' : ''}${err.toFixed(3)}  ${f3(w.estimatedAuc)}  ${f3(w.realisedAuc)}  ${f3(w.lastKnown)}  ${f3(w.ece)}  ${w.flagged === null ? '-' : w.flagged ? 'yes' : 'no'}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

function usage(message: string): never {
  process.stderr.write(
    `cbpe-elec2: ${message}\nusage: npx tsx study/cbpe-elec2.ts [--method ${CALIBRATION_METHODS.join('|')}] [--no-refit] [--next-window] [--insample-reference] [--refit-every N] [--reference-size N] [--reference-rows N] [--window N] [--retrain-every N] [--train-rows N] [--holdout-rows N] [--label-delay-rows N] [--max-mae X] [--compare] [--quiet]\n`,
  );
  process.exit(2);
}

function positiveInt(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer (got "${raw}")`);
  return n;
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: {
        method: { type: 'string' },
        'no-refit': { type: 'boolean', default: false },
        'next-window': { type: 'boolean', default: false },
        'refit-every': { type: 'string' },
        'reference-size': { type: 'string' },
        'reference-rows': { type: 'string' },
        'insample-reference': { type: 'boolean', default: false },
        window: { type: 'string' },
        'retrain-every': { type: 'string' },
        'train-rows': { type: 'string' },
        'holdout-rows': { type: 'string' },
        'label-delay-rows': { type: 'string' },
        'max-mae': { type: 'string' },
        compare: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    usage((err as Error).message);
  }
  const method = (args.method ?? 'platt') as CalibrationMethod;
  if (!CALIBRATION_METHODS.includes(method)) usage(`--method must be one of ${CALIBRATION_METHODS.join(', ')} (got "${args.method}")`);
  const maxMae = args['max-mae'] === undefined ? 0.03 : Number(args['max-mae']);
  if (!(maxMae > 0)) usage(`--max-mae must be a positive number (got "${args['max-mae']}")`);

  const data = loadStudyData();
  const windowSize = positiveInt('window', args.window) ?? data.spec.monitoring.windowSize;
  const base: StudyOptions = {
    method,
    refitFromLabels: !args['no-refit'],
    refitTakesEffect: args['next-window'] ? 'next-window' : 'at-once',
    refitEvery: positiveInt('refit-every', args['refit-every']) ?? null,
    referenceSize: positiveInt('reference-size', args['reference-size']) ?? null,
    referenceRows: positiveInt('reference-rows', args['reference-rows']) ?? windowSize,
    insampleReference: Boolean(args['insample-reference']),
    windowSize,
    retrainEvery: positiveInt('retrain-every', args['retrain-every']) ?? 1000,
    trainRows: positiveInt('train-rows', args['train-rows']) ?? data.spec.trainer.windowRows,
    holdoutRows: args['holdout-rows'] === undefined ? 0 : (positiveInt('holdout-rows', args['holdout-rows']) ?? 0),
    labelDelayRows: positiveInt('label-delay-rows', args['label-delay-rows']) ?? null,
  };

  if (args.compare) {
    for (const m of CALIBRATION_METHODS) {
      for (const refit of [true, false]) {
        if (m === 'identity' && !refit) continue;
        process.stdout.write(`${summaryLine(await runStudy(data, { ...base, method: m, refitFromLabels: refit }))}\n`);
      }
    }
    return;
  }
  const result = await runStudy(data, base);
  if (!args.quiet) printTable(result);
  process.stdout.write(`scored ${result.scored} predictions with ${result.versions} model versions; ${result.windows.length} full windows of ${windowSize}\n`);
  process.stdout.write(`${summaryLine(result)}\n`);
  if (result.meanAbsError > maxMae) {
    process.stdout.write(`FAIL: estimate.meanAbsError ${result.meanAbsError.toFixed(4)} > ${maxMae}\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
