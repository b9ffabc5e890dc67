/**
 * The joiner's pure core: ground truth meets the predictions it labels, as
 * the state scheme's `apply` (streams/state.ts) over one state per event.
 *
 * Labels (labels.ground-truth) and predictions (predictions.by-event, where
 * the scorer writes every prediction of an event: champion, A/B and shadow)
 * are both keyed by event id and co-partitioned, so one member owns each
 * event and applies its records one at a time (the Kafka Streams
 * stream-stream join). Whichever side comes second completes the join:
 * - a label stores the truth and emits a LabeledPrediction for every
 *   prediction of the event seen so far;
 * - a prediction is stored and, if the truth is there, emitted at once.
 * The state remembers which predictions were emitted, so duplicates of
 * either side change nothing; a replayed record re-emits what it emitted
 * (the scheme keeps it), so every prediction is joined exactly once.
 *
 * A label that became known more than the horizon after its event is late:
 * it goes to labels.late and late_labels and is never joined. An invalid one
 * is dead-lettered (VALIDATION/BAD_LABEL). Each joined served prediction
 * (champion or A/B arm, not shadow) also becomes a training row: the features
 * the model saw plus the ground truth.
 */
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { GroundTruth, LabeledPrediction, Prediction } from '../../schemas/types.js';
import type { StoredTruth } from '../../store/labels.js';
import type { InputRecord, OutputRecord, RecordFailure } from '../../streams/runtime.js';
import type { ApplyResult, StatefulLogic } from '../../streams/state.js';

export type JoinInput = GroundTruth | Prediction;

export interface JoinState {
  truth: StoredTruth | null;
  /** Predictions of the event waiting for its label, in arrival order (a joined one keeps only its id, in `joined`). */
  predictions: Prediction[];
  /** Ids of the predictions already emitted joined. */
  joined: string[];
}

/**
 * The label writes a record causes. A joined prediction's rows (labeled_by_time, training_rows) are written
 * from the LabeledPrediction outputs themselves (./index.ts), so the state keeps each join once, not twice.
 */
export type JoinEffect =
  | { kind: 'truth'; truth: StoredTruth; receivedAt: number }
  | { kind: 'late'; truth: StoredTruth };

/** What happened to a record, for the metrics. */
export type JoinOutcome = 'joined' | 'pending' | 'late' | 'duplicate' | 'prediction-joined' | 'prediction-waiting' | 'prediction-duplicate';

/** A label is late when it became known more than the horizon after its event (event time). */
export function isLate(spec: PipelineSpec, l: { event_time: number; label_time: number }): boolean {
  return l.label_time - l.event_time > spec.label.horizonMs;
}

/** Label delay in seconds (event time → label time), never negative. */
export function labelDelaySeconds(l: { event_time: number; label_time: number }): number {
  return Math.max(0, l.label_time - l.event_time) / 1000;
}

/** The label's identity: an event id and this worker's pipeline. */
export function checkIdentity(spec: PipelineSpec, l: Pick<GroundTruth, 'event_id' | 'pipeline'>): Omit<RecordFailure, 'index'> | null {
  if (!l.event_id) return { stage: 'VALIDATION', code: 'BAD_LABEL', message: 'event_id is empty' };
  if (l.pipeline !== spec.name) return { stage: 'VALIDATION', code: 'WRONG_PIPELINE', message: `label is for pipeline "${l.pipeline}", this worker joins "${spec.name}"` };
  return null;
}

/** The label's value against spec.label: a known class (categorical) or a finite number (numeric). */
export function checkLabel(spec: PipelineSpec, label: unknown): Omit<RecordFailure, 'index'> | null {
  const bad = (message: string) => ({ stage: 'VALIDATION' as const, code: 'BAD_LABEL', message });
  if (spec.label.type === 'categorical') {
    if (typeof label !== 'string') return bad(`label must be a class name (string), got ${JSON.stringify(label)}`);
    if (spec.label.classes.length > 0 && !spec.label.classes.includes(label)) return bad(`label "${label}" is not one of the classes ${spec.label.classes.join(', ')}`);
    return null;
  }
  if (typeof label !== 'number') return bad(`label must be a number, got ${JSON.stringify(label)}`);
  if (!Number.isFinite(label)) return bad(`label is ${label}; numeric labels must be finite`);
  return null;
}

/** Served to the application (champion or an A/B arm), as opposed to shadow. */
export function isServed(variant: string): boolean {
  return variant !== 'shadow';
}

export function labeledKey(p: Pick<Prediction, 'pipeline' | 'model_name'>): string {
  return `${p.pipeline}/${p.model_name}`;
}

/** Pure: a prediction joined with its label. correct (classification) / error = value − truth (regression). */
export function toLabeledPrediction(p: Prediction, truth: { label: string | number; label_time: number }, joinedAt: number): LabeledPrediction {
  const classification = typeof truth.label === 'string';
  return {
    prediction: p,
    label: truth.label,
    label_time: truth.label_time,
    joined_at: joinedAt,
    correct: classification ? p.label === truth.label : null,
    error: !classification && p.value !== null ? p.value - (truth.label as number) : null,
  };
}

const isLabel = (r: InputRecord<JoinInput>): r is InputRecord<GroundTruth> => r.record === 'GroundTruth';

function emit(p: Prediction, truth: StoredTruth, at: number): OutputRecord {
  return { topic: 'predictions.labeled', record: 'LabeledPrediction', key: labeledKey(p), value: toLabeledPrediction(p, truth, at) };
}

/** Hears each applied record's outcome and what it emitted (metrics); not called for a replayed record. */
export type JoinObserver = (outcome: JoinOutcome, r: InputRecord<JoinInput>, emitted: readonly LabeledPrediction[]) => void;

/** Pure: one record applied to its event's join state. */
export function applyJoin(spec: PipelineSpec, s: JoinState, r: InputRecord<JoinInput>, observe?: JoinObserver): ApplyResult<JoinState, JoinEffect> {
  const at = r.timestamp;
  if (isLabel(r)) {
    const l = r.value;
    const truth: StoredTruth = { event_id: l.event_id, pipeline: l.pipeline, label: l.label, event_time: l.event_time, label_time: l.label_time };
    if (isLate(spec, l)) {
      observe?.('late', r, []);
      return { state: s, outputs: [{ topic: 'labels.late', record: 'GroundTruth', key: l.event_id, value: l }], effects: [{ kind: 'late', truth }] };
    }
    if (s.truth) {
      observe?.('duplicate', r, []); // the first label of an event wins; a copy changes nothing
      return { state: s };
    }
    const next: JoinState = { truth, predictions: [], joined: [...s.joined] };
    const outputs: OutputRecord[] = [];
    const effects: JoinEffect[] = [{ kind: 'truth', truth, receivedAt: at }];
    for (const p of s.predictions) {
      if (next.joined.includes(p.prediction_id)) continue;
      outputs.push(emit(p, truth, at));
      next.joined.push(p.prediction_id);
    }
    observe?.(outputs.length > 0 ? 'joined' : 'pending', r, outputs.map((o) => o.value as LabeledPrediction));
    return { state: next, outputs, effects };
  }
  const p = r.value as Prediction;
  if (s.joined.includes(p.prediction_id) || s.predictions.some((x) => x.prediction_id === p.prediction_id)) {
    observe?.('prediction-duplicate', r, []);
    return { state: s };
  }
  if (!s.truth) {
    observe?.('prediction-waiting', r, []);
    return { state: { truth: null, predictions: [...s.predictions, p], joined: [...s.joined] } };
  }
  const output = emit(p, s.truth, at);
  observe?.('prediction-joined', r, [output.value as LabeledPrediction]);
  return { state: { truth: s.truth, predictions: s.predictions, joined: [...s.joined, p.prediction_id] }, outputs: [output] };
}

/** The joiner as stateful logic (key = event id). */
export function joinLogic(spec: PipelineSpec, observe?: JoinObserver): StatefulLogic<'GroundTruth' | 'Prediction', JoinState, undefined, JoinEffect> {
  return {
    keyOf: (r) => (isLabel(r) ? r.value.event_id : r.value.pipeline === spec.name ? r.value.event_id : null),
    initial: () => ({ truth: null, predictions: [], joined: [] }),
    validate(r) {
      if (!isLabel(r)) return null;
      return checkIdentity(spec, r.value) ?? (isLate(spec, r.value) ? null : checkLabel(spec, r.value.label));
    },
    apply: (state, r) => applyJoin(spec, state, r, observe),
  };
}
