// Generated from schemas/avro/*.avsc by schemas/generate-types.ts. Do not edit: run `npm run gen:types`.

/** An application's event to be scored. Fields are named values typed by the pipeline spec. */
export interface ClientEvent {
  /** Unique per event; makes every downstream write idempotent. */
  event_id: string;
  /** Pipeline spec name this event belongs to. */
  pipeline: string;
  /** Entity key used for online feature lookups. */
  entity_id: string;
  event_time: number;
  /** Wall-clock time the producer sent it. */
  produced_at: number;
  /** Event fields by name. */
  fields: Record<string, null | number | string>;
}

/** New values for one entity in one online feature set. */
export interface FeatureUpdate {
  /** Unique per update; replays rewrite the same row. */
  update_id: string;
  feature_set: string;
  entity_id: string;
  /** As-of time of these values; older updates never overwrite newer ones. */
  event_time: number;
  values: Record<string, null | number | string>;
}

/** An event joined with its online features: exactly the values the model will be served. */
export interface FeatureVector {
  event_id: string;
  pipeline: string;
  entity_id: string;
  event_time: number;
  produced_at: number;
  processed_at: number;
  /** Feature name to served value (null = missing). */
  values: Record<string, null | number | string>;
  /** Features absent or stale at serving time. */
  missing: Array<string>;
  /** Per feature set: event time minus the set's as-of time. */
  feature_age_ms: Record<string, number>;
}

/** A model's output for one event, as logged and as consumed by services. */
export interface Prediction {
  /** Derived from event id, model version and variant: <event_id>/<model>@<version>/<variant>. */
  prediction_id: string;
  event_id: string;
  pipeline: string;
  entity_id: string;
  model_name: string;
  model_version: number;
  /** champion, shadow or an A/B arm name. */
  variant: string;
  /** Predicted class (classification). */
  label: null | string;
  /** Positive-class probability (binary), top probability (multiclass) or the value (regression). */
  score: number;
  /** Class to probability (classification). */
  probabilities: Record<string, number>;
  /** Predicted value (regression). */
  value: null | number;
  /** The exact feature values served. */
  features: Record<string, null | number | string>;
  missing: Array<string>;
  /** The inputs this model took, in its input order (its feature spec): the values it saw are these names' entries of features, which holds every value the preprocessor served (the union over the serving models, as the spec version served them). Empty from writers before this field. */
  model_features: Array<string>;
  event_time: number;
  produced_at: number;
  scored_at: number;
}

/** What really happened for an event, known later. */
export interface GroundTruth {
  /** The event this label is for; also the label's idempotency key. */
  event_id: string;
  pipeline: string;
  /** Class name (classification) or value (regression). */
  label: string | number;
  /** Event time of the event being labeled. */
  event_time: number;
  /** When the label became known. */
  label_time: number;
}

/** A prediction joined with its ground truth. */
export interface LabeledPrediction {
  prediction: Prediction;
  label: string | number;
  label_time: number;
  joined_at: number;
  /** Classification: predicted label equals the true label. */
  correct: null | boolean;
  /** Regression: predicted minus true value. */
  error: null | number;
}

/** Task metrics over one window of labeled predictions, per model version and variant. */
export interface QualityReport {
  report_id: string;
  pipeline: string;
  model_name: string;
  model_version: number;
  variant: string;
  window_start: number;
  window_end: number;
  count: number;
  /** accuracy, auc, log_loss, ece (classification); mae, rmse (regression). */
  metrics: Record<string, number>;
  /** Set when a sequential detector fired in this window. */
  alarm: null | string;
  created_at: number;
}

/** Feature and prediction drift over one window against the model's training baseline. */
export interface DriftReport {
  report_id: string;
  pipeline: string;
  model_name: string;
  model_version: number;
  window_start: number;
  window_end: number;
  count: number;
  features: Array<FeatureDrift>;
  prediction_psi: null | number;
  drifted: boolean;
  created_at: number;
}

export interface FeatureDrift {
  feature: string;
  /** psi, ks or chi_square. */
  test: string;
  statistic: number;
  p_value: null | number;
  psi: null | number;
  drifted: boolean;
}

/** A decision to retrain; request_id is the decision's key, so one decision yields one request. */
export interface RetrainRequest {
  request_id: string;
  pipeline: string;
  /** quality_below_threshold, quality_drop, drift, detector_alarm, schedule or manual. */
  reason: string;
  detail: string;
  champion_version: null | number;
  /** Training window, event time. */
  window_start: number;
  window_end: number;
  requested_at: number;
}

/** A newly trained model registered as a candidate, ready for evaluation. */
export interface ModelCandidate {
  pipeline: string;
  model_name: string;
  model_version: number;
  request_id: null | string;
  trainer: string;
  training_rows: number;
  window_start: number;
  window_end: number;
  metrics: Record<string, number>;
  sha256: string;
  created_at: number;
  /** A model trained like this one but without the newest held-out rows: the evaluator judges it on them, and a pass promotes model_version (validate, then refit). Null: model_version itself is judged. */
  validation_version: null | number;
}

/** A change of which model serves: scorers hot-swap on promote and rollback. */
export interface ModelEvent {
  event_id: string;
  pipeline: string;
  model_name: string;
  action: ModelAction;
  /** The version that serves (or is shadowed) after this event. */
  model_version: number;
  previous_version: null | number;
  /** A/B: share of traffic for this version. */
  traffic_share: null | number;
  reason: string;
  /** evaluator, monitor or a person's name. */
  actor: string;
  created_at: number;
}

export type ModelAction = 'PROMOTE' | 'ROLLBACK' | 'SHADOW_START' | 'SHADOW_STOP' | 'AB_START' | 'AB_STOP';

/** A record that can never succeed, with the reason. On the wire a dead-letter message keeps the original key and value bytes and carries these fields as __connect.errors.* headers; this record is their typed form for tools and the dead_letters table. */
export interface DeadLetter {
  topic: string;
  partition: number;
  offset: string;
  /** VALUE_CONVERTER (decode), VALIDATION, PROCESSING or OUTPUT. */
  stage: string;
  /** Machine-readable reason, e.g. BAD_MAGIC, UNKNOWN_SCHEMA, NON_FINITE. */
  code: string;
  message: string;
  worker: string;
  key: null | Buffer;
  value: null | Buffer;
  failed_at: number;
}
