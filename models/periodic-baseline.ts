/**
 * The "refit on a schedule" yardstick: what a model refitted every N fresh
 * labels on the newest W labeled rows would have scored on the same stream.
 * Pure: rows, a bootstrap scorer and a trainer in; per-row predictions,
 * metrics and the refits out (the clock used to time refits is injectable).
 *
 * Protocol, walking the scored rows in event-time order:
 * 1. before scoring a row at time t, every label with labelTime <= t becomes
 *    usable (history rows' labels are usable from the start: the bootstrap
 *    model was trained on them);
 * 2. when the number of usable labels of scored rows ("fresh" labels)
 *    reaches a new multiple of `everyLabels`, the model is refitted on the
 *    newest `windowRows` usable labeled rows (history included, newest by
 *    event time) — one refit even if several multiples were crossed at once;
 * 3. the row is scored with the latest model (the bootstrap until the first refit).
 * A refit is instantaneous in event time (training latency is not modelled).
 */
import type { FeatureRow, FeatureSpec } from './feature-spec.js';
import type { ModelOutput } from './model-output.js';
import { qualityMetrics } from './metrics.js';
import type { QualityMetrics } from './metrics.js';
import { trainBuiltin, trainerChoiceOf } from './builtin-trainer.js';
import type { TrainerChoice } from './builtin-trainer.js';
import { modelFeatureDefs } from '../pipelines/spec.js';
import type { PipelineSpec } from '../pipelines/spec.js';

/** One event: the feature values actually served, and its ground truth with the time it became known. */
export interface PeriodicRow {
  eventTime: number;
  values: FeatureRow;
  /** null = no ground truth (scored, never learned from or evaluated). */
  label: string | number | null;
  /** When the label became known; ignored when `label` is null. */
  labelTime: number;
}

/** Scores a batch of rows synchronously (e.g. `TrainedModel.predict`). */
export type RowScorer = (rows: readonly FeatureRow[]) => ModelOutput[];

/** Fits a model on labeled rows (oldest first) and returns its scorer. */
export type Refit = (rows: FeatureRow[], labels: Array<string | number>) => RowScorer;

export interface PeriodicBaselineInput {
  /** Task, inputs and (for classification) the classes, in the models' output order. */
  spec: Omit<FeatureSpec, 'classes'> & { classes?: string[] };
  /** Scored rows, in non-decreasing event time. */
  rows: readonly PeriodicRow[];
  /** Rows before the scored ones (e.g. the bootstrap's training rows): their labels feed refit windows; not scored. */
  history?: readonly PeriodicRow[];
  /** The model serving until the first refit. */
  bootstrap: RowScorer;
  /** A built-in trainer, or any refit function. */
  trainer: TrainerChoice | Refit;
  /** Refit each time the fresh usable labels reach a multiple of this (default 1000). */
  everyLabels?: number;
  /** A refit learns from this many newest usable labeled rows. */
  windowRows: number;
  /** Milliseconds clock used to time refits (default `performance.now`). */
  clock?: () => number;
}

export interface PeriodicRefit {
  /** Index (into `rows`) of the first row the refitted model scored. */
  fromRow: number;
  /** Fresh usable labels when it was fitted. */
  freshLabels: number;
  /** Rows it learned from. */
  trainedRows: number;
  /** Fitting time by `clock`. */
  ms: number;
}

export interface PeriodicBaselineResult {
  /** Per scored row: the output and the model that produced it (0 = bootstrap, i = the i-th refit). */
  predictions: Array<{ output: ModelOutput; model: number }>;
  /** Metrics over the scored rows that have a label (see `qualityMetrics`). */
  metrics: QualityMetrics;
  refits: PeriodicRefit[];
}

/** Runs the protocol (see the module comment). Throws on unordered rows or bad settings. */
export function periodicBaseline(input: PeriodicBaselineInput): PeriodicBaselineResult {
  const everyLabels = input.everyLabels ?? 1000;
  const { windowRows, rows, spec } = input;
  if (!Number.isInteger(everyLabels) || everyLabels < 1) throw new RangeError('periodicBaseline: everyLabels must be a positive integer');
  if (!Number.isInteger(windowRows) || windowRows < 1) throw new RangeError('periodicBaseline: windowRows must be a positive integer');
  if (spec.task !== 'regression' && !(spec.classes && spec.classes.length >= 2)) {
    throw new RangeError('periodicBaseline: a classification spec needs its classes (the models’ output order)');
  }
  rows.forEach((r, i) => {
    if (i > 0 && r.eventTime < rows[i - 1]!.eventTime) throw new RangeError(`periodicBaseline: row ${i} is earlier than row ${i - 1}`);
  });
  const refit = typeof input.trainer === 'function' ? input.trainer : builtinRefit(spec, input.trainer);
  const clock = input.clock ?? (() => performance.now());

  // Labeled rows: history first (usable at once), then scored rows in label-time order.
  const history = (input.history ?? []).filter((r) => r.label !== null);
  const pending = rows
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => r.label !== null)
    .sort((a, b) => a.r.labelTime - b.r.labelTime || a.i - b.i);
  // Usable labeled rows; a window is the newest by event time.
  const usable: PeriodicRow[] = [...history];
  let nextPending = 0;
  let fresh = 0;
  let refitsDue = 0;

  const predictions: PeriodicBaselineResult['predictions'] = [];
  const refits: PeriodicRefit[] = [];
  let scorer = input.bootstrap;
  let batchStart = 0;
  const flush = (end: number): void => {
    if (end <= batchStart) return;
    const outputs = scorer(rows.slice(batchStart, end).map((r) => r.values));
    for (const output of outputs) predictions.push({ output, model: refits.length });
    batchStart = end;
  };

  for (let i = 0; i < rows.length; i++) {
    const t = rows[i]!.eventTime;
    while (nextPending < pending.length && pending[nextPending]!.r.labelTime <= t) {
      usable.push(pending[nextPending]!.r);
      nextPending += 1;
      fresh += 1;
    }
    if (Math.floor(fresh / everyLabels) > refitsDue) {
      refitsDue = Math.floor(fresh / everyLabels);
      flush(i);
      const window = newest(usable, windowRows);
      const started = clock();
      scorer = refit(window.map((r) => r.values), window.map((r) => r.label as string | number));
      refits.push({ fromRow: i, freshLabels: fresh, trainedRows: window.length, ms: clock() - started });
    }
  }
  flush(rows.length);

  const labeled = predictions.map((p, i) => ({ p, label: rows[i]!.label })).filter((x) => x.label !== null);
  const metrics = qualityMetrics(
    { task: spec.task, classes: spec.classes ?? [] },
    labeled.map((x) => x.label as string | number),
    labeled.map((x) => x.p.output),
  );
  return { predictions, metrics, refits };
}

/**
 * {@link periodicBaseline} for a pipeline: the model's inputs and classes,
 * its built-in trainer (`trainer.algorithm` and settings) and, unless given,
 * `windowRows` = `trainer.windowRows` and `everyLabels` = `retrain.everyLabels`
 * (1000 when unset). Throws for `trainer.kind: command` (no in-process refit).
 */
export function periodicBaselineForPipeline(
  spec: PipelineSpec,
  input: Omit<PeriodicBaselineInput, 'spec' | 'trainer' | 'windowRows'> & { windowRows?: number },
): PeriodicBaselineResult {
  return periodicBaseline({
    ...input,
    spec: { task: spec.task, features: modelFeatureDefs(spec), ...(spec.label.classes.length ? { classes: spec.label.classes } : {}) },
    trainer: trainerChoiceOf(spec.trainer),
    windowRows: input.windowRows ?? spec.trainer.windowRows,
    everyLabels: input.everyLabels ?? spec.retrain.everyLabels ?? 1000,
  });
}

/** The newest `count` rows by event time (oldest first; ties keep arrival order). */
function newest(rows: readonly PeriodicRow[], count: number): PeriodicRow[] {
  const ordered = rows.map((r, i) => ({ r, i })).sort((a, b) => a.r.eventTime - b.r.eventTime || a.i - b.i);
  return ordered.slice(Math.max(0, ordered.length - count)).map((x) => x.r);
}

function builtinRefit(spec: PeriodicBaselineInput['spec'], choice: TrainerChoice): Refit {
  return (rows, labels) => trainBuiltin(choice, { spec, rows, labels }).predict;
}
