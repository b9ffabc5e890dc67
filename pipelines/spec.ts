/**
 * The pipeline spec: one declarative file describes one use case, so a new
 * pipeline needs configuration, not code. Validated at load; every error
 * names the field path (`featureSets[0].features.price: ...`).
 *
 * A spec says: the entity key; the event fields and their types; the online
 * feature sets and how they are fed; which features the model uses; the
 * label, its type and expected delay; the task; the trainer; monitoring
 * windows and drift thresholds; the retrain policy; the promotion gate; and
 * how to replay a CSV dataset as a live stream.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { parseIsoUtc, TIME_UNIT_MS, type EventTimeSpec, type TimeUnit } from './replay-time.js';

const name = z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'must be lower-case letters, digits, "_" or "-", starting with a letter');
const featureName = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,62}$/, 'must be a letter then letters, digits or "_"');
const kind = z.enum(['numeric', 'categorical']);
const positiveMs = z.number().int().positive();

const aggregate = z.object({
  /** The event field aggregated. */
  field: featureName,
  /** last: the latest value; mean/sum/min/max over the window's numeric values; count: events in the window. */
  op: z.enum(['last', 'mean', 'sum', 'min', 'max', 'count']),
  /** Window length in events of the entity, the current one included. */
  window: z.number().int().min(1).max(100_000).default(1),
});

const featureSet = z.object({
  /** The set's name, as FeatureUpdate.feature_set. */
  name,
  /**
   * How the set is fed: `stream` = FeatureUpdate records on features.updates (feature-writer);
   * `events` = aggregates of the entity's own events, computed by the feature-aggregator.
   */
  source: z.enum(['stream', 'events']).default('stream'),
  /** For source `events`: how each feature is computed from the entity's events. */
  aggregates: z.record(featureName, aggregate).default({}),
  /** For source `events`: an aggregate including an event becomes known this long after the event's time. */
  availableAfterMs: z.number().int().min(0).default(0),
  /**
   * What the set is keyed by. Absent (the default): the event's entity, so an event is served
   * its entity's row. `{ field }`: the value of that event field, so every event with the same
   * value shares one row — a client's events joined with a cohort set keyed by age, an hourly
   * profile keyed by hour of day — as a feature store joins on several entities. The field may
   * be categorical or numeric; a numeric value is keyed in JavaScript's shortest round-trip
   * form (35 → "35", 0.5 → "0.5"); an event whose field is missing or "" has no row in the set
   * (see `missingEntity`). FeatureUpdates of the set carry the key value as `entity_id`, and a
   * replay feed computes its values over the rows sharing the key value. Only sets with source
   * `stream`: events-sourced sets are aggregated per entity. `waitForWatermarkMs` waits for the
   * key's watermark, which never reaches the event time when a key is updated less often than
   * events arrive (an hour-of-day key is updated once a day): leave it 0 for such sets.
   */
  key: z.object({ field: featureName }).strict().optional(),
  /** The set's features and their kind; names are unique across event fields and every set. */
  features: z.record(featureName, kind).refine((r) => Object.keys(r).length > 0, 'must declare at least one feature'),
  /** A value older than this at event time is served as missing (stale). */
  maxAgeMs: positiveMs.optional(),
  /** Rows expire from the online store after this long without an update. */
  ttlSeconds: z.number().int().positive().default(30 * 24 * 3600),
  /**
   * Serve each event the values current at its event time (an as-of join on the feature
   * history) rather than the latest values. Right for replays and for late or lagging events.
   */
  pointInTime: z.boolean().default(false),
  /**
   * Wait up to this long for the feature-writer to have applied every update known at an
   * event's time (its watermark reaching the event time) before serving. 0 = never wait.
   * Assumes updates of an entity arrive in as-of order.
   */
  waitForWatermarkMs: z.number().int().min(0).max(60_000).default(0),
});

const feedValue = z.union([
  z.object({ lag: z.object({ column: z.string(), rows: z.number().int().min(0).default(0) }) }),
  z.object({ mean: z.object({ column: z.string(), rows: z.number().int().min(1) }) }),
]);

const timeUnit = z.enum(Object.keys(TIME_UNIT_MS) as [TimeUnit, ...TimeUnit[]]);

/**
 * Event time of a replayed row. Forms:
 * - `"<column>"` (shorthand for `{ column, format: "iso" }`);
 * - `{ column, format: "iso" }`: an ISO 8601 date (`2011-01-01`) or date-time
 *   (`2011-01-01T05:00:00`, `…Z`, `…+01:00`); one without a zone is read as UTC, so a
 *   local wall clock replays as a wall clock (no daylight-saving shifts);
 * - `{ column, format: "epoch-s" }` / `"epoch-ms"`: seconds / milliseconds since
 *   1970-01-01T00:00Z, fractions allowed (rounded to the millisecond);
 * - any column form with `plus: [{ column, unit }]`: numeric columns added in a unit
 *   (`ms`, `s`, `min`, `h`, `d`), for a time split over columns — a date `dteday` plus
 *   an hour `hr` is `{ column: "dteday", format: "iso", plus: [{ column: "hr", unit: "h" }] }`;
 * - `{ rowOrder: { start, stepMs } }`: no time column; the i-th data row of the file
 *   (0-based, whatever the replay's offset) is at `start + i × stepMs`, `start` an ISO
 *   date-time (UTC without a zone). For data with only an order, or none.
 * `format` defaults to "iso", `plus` to none.
 */
const EventTimeSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { column: v } : v),
  z
    .object({
      column: z.string().min(1).optional(),
      format: z.enum(['iso', 'epoch-s', 'epoch-ms']).optional(),
      plus: z.array(z.object({ column: z.string().min(1), unit: timeUnit }).strict()).optional(),
      rowOrder: z
        .object({
          start: z.string().refine((s) => parseIsoUtc(s) !== null, 'must be an ISO 8601 date-time, e.g. "2024-01-01T00:00:00Z"'),
          stepMs: positiveMs,
        })
        .strict()
        .optional(),
    }, { invalid_type_error: 'must be a column name or an object (column + format, or rowOrder)' })
    .strict()
    .superRefine((t, ctx) => {
      if (t.rowOrder && t.column !== undefined) ctx.addIssue({ code: 'custom', path: ['rowOrder'], message: 'give either column or rowOrder, not both' });
      if (!t.rowOrder && t.column === undefined) ctx.addIssue({ code: 'custom', path: ['column'], message: 'required: the time column (or rowOrder for data without one)' });
      if (t.rowOrder && t.format !== undefined) ctx.addIssue({ code: 'custom', path: ['format'], message: 'a rowOrder time has no format' });
      if (t.rowOrder && t.plus !== undefined) ctx.addIssue({ code: 'custom', path: ['plus'], message: 'a rowOrder time has no plus columns' });
    })
    .transform((t): EventTimeSpec => (t.rowOrder ? { rowOrder: t.rowOrder } : { column: t.column!, format: t.format ?? 'iso', plus: t.plus ?? [] })),
);

/** Settings of `trainer.algorithm: linear` (models/trainer.ts documents each; omitted = the trainer's default). */
const linearSettings = z
  .object({
    epochs: z.number().int().min(1).max(10_000).optional(),
    learningRate: z.number().positive().optional(),
    l2: z.number().min(0).optional(),
    batchSize: z.number().int().min(1).optional(),
    seed: z.number().int().optional(),
    clip: z.number().positive().optional(),
    minStd: z.number().min(0).optional(),
    classWeight: z.enum(['none', 'balanced']).optional(),
  })
  .strict();

/** Settings of `trainer.algorithm: gbdt` (models/gbdt.ts documents each; omitted = the trainer's default). */
const gbdtSettings = z
  .object({
    trees: z.number().int().min(1).max(10_000).optional(),
    maxDepth: z.number().int().min(1).max(12).optional(),
    learningRate: z.number().positive().max(1).optional(),
    minLeafRows: z.number().int().min(1).optional(),
    subsample: z.number().positive().max(1).optional(),
    l2: z.number().min(0).optional(),
    maxBins: z.number().int().min(2).max(256).optional(),
    classWeight: z.enum(['none', 'balanced']).optional(),
    seed: z.number().int().optional(),
  })
  .strict();

const trainerCommon = {
  /** builtin = an in-process trainer (`algorithm`); command = an external program (`command`). */
  kind: z.enum(['builtin', 'command']).default('builtin'),
  /** For kind=command: argv; {train} and {out} are replaced by the training-set file and the output folder. */
  command: z.array(z.string()).optional(),
  /** Rows of the replay used to train the bootstrap model. */
  bootstrapRows: z.number().int().min(10).default(5000),
  /** Labeled rows a retrain learns from (the most recent). */
  windowRows: z.number().int().min(10).default(2000),
};

/**
 * The trainer. For kind=builtin, `algorithm` picks the built-in trainer
 * (default `linear`: logistic / softmax / linear regression; `gbdt`:
 * gradient-boosted trees) and `settings` are that algorithm's, checked
 * strictly (a setting of the other algorithm is an error naming it).
 */
const trainer = z.preprocess(
  (raw) => (raw === undefined ? { algorithm: 'linear' } : typeof raw === 'object' && raw !== null && !('algorithm' in raw) ? { ...raw, algorithm: 'linear' } : raw),
  z.discriminatedUnion('algorithm', [
    z.object({ ...trainerCommon, algorithm: z.literal('linear'), settings: linearSettings.default({}) }),
    z.object({ ...trainerCommon, algorithm: z.literal('gbdt'), settings: gbdtSettings.default({}) }),
  ]),
);

export const PipelineSpecSchema = z
  .object({
    /** The pipeline's name: part of every record (`pipeline`), registry key and metric label. */
    name,
    description: z.string().default(''),
    /** binary or multiclass classification, or regression. */
    task: z.enum(['binary', 'multiclass', 'regression']),
    /** What events are about (a customer, a market); `name` for people, `doc` a sentence. */
    entity: z.object({ name: z.string().min(1), doc: z.string().default('') }),
    events: z.object({
      /** Event fields and their kind; an event whose field has the wrong type is dead-lettered (WRONG_TYPE, NON_FINITE). */
      fields: z.record(featureName, kind).refine((r) => Object.keys(r).length > 0, 'must declare at least one field'),
    }),
    featureSets: z.array(featureSet).default([]),
    /** What happens when an entity has no row in a feature set: impute (serve nulls, flag missing) or dead-letter the event. */
    missingEntity: z.enum(['impute', 'dead-letter']).default('impute'),
    model: z.object({
      /** The model's name in the registry. */
      name,
      /** Model inputs in order: event fields and feature-set features, by name. */
      features: z.array(featureName).min(1),
      /** Known categories of categorical inputs (otherwise learned at training). */
      categories: z.record(featureName, z.array(z.string()).min(1)).default({}),
    }),
    label: z.object({
      /** categorical for classification, numeric for regression. */
      type: z.enum(['categorical', 'numeric']),
      /** The classes in order (binary: exactly 2, the second is the positive class); empty: learned at training. */
      classes: z.array(z.string()).default([]),
      /** Expected delay from event to ground truth. */
      delayMs: positiveMs,
      /** Labels arriving later than this after their event are late: counted, kept, not joined. */
      horizonMs: positiveMs,
    }),
    trainer: trainer,
    monitoring: z
      .object({
        /** Labeled predictions per tumbling window (per model version and variant) of a quality and drift report. */
        windowSize: z.number().int().min(10).default(500),
        /** Change detector on the error stream, for alarms faster than a window. */
        detector: z.enum(['adwin', 'page-hinkley']).default('adwin'),
        /** A feature whose PSI against the training baseline exceeds this has drifted. */
        psiThreshold: z.number().positive().default(0.2),
        /** A feature whose KS or chi-square p-value is below this has drifted. */
        pValueThreshold: z.number().positive().max(1).default(0.01),
        /**
         * Estimate each window's accuracy (and AUC) from the predicted probabilities before its labels
         * arrive (streaming CBPE, consumers/drift-monitor/estimate-core.ts), reported beside the realised
         * accuracy once they are joined. Classification with declared classes only.
         */
        estimate: z.boolean().default(true),
      })
      .default({}),
    retrain: z
      .object({
        /** Retrain when the window's primary metric falls below this. */
        minMetric: z.number().optional(),
        /** Retrain when the metric falls this fraction below the model's training-time metric. */
        maxRelativeDrop: z.number().positive().max(1).optional(),
        /** Retrain when the change detector raises an alarm. */
        onDetectorAlarm: z.boolean().default(true),
        /** Retrain when a drift report says drifted. */
        onDrift: z.boolean().default(false),
        /**
         * Also apply `minMetric` and `maxRelativeDrop` to the champion's estimated metric per window
         * (monitoring.estimate), before its labels arrive: fires when the estimate band's upper edge is
         * below the target, never on a calibration its check flagged. Off by default: an estimate is a forecast.
         */
        onEstimate: z.boolean().default(false),
        /**
         * Retrain every this many labeled predictions served (champion or A/B arm, whichever version:
         * counted by the monitor's label-progress reports, every monitoring.windowSize / 10 labels, so a
         * multiple of that is exact). The default cadence: a model refitted
         * on the newest window keeps up with drift; the study in study/RESULTS.md measured it.
         * null: no schedule (only the other triggers).
         */
        everyLabels: z.number().int().positive().nullable().default(1000),
        /** After a retrain request, no other for this many labeled predictions (a trigger meanwhile waits for its end). */
        cooldownLabels: z.number().int().min(0).default(250),
        /** A retrain needs at least this many labeled predictions since the last one. */
        minFreshLabels: z.number().int().min(1).default(250),
      })
      .default({}),
    promotion: z
      .object({
        /** The metric candidate and champion are compared on (and the dashboard charts). */
        metric: z.enum(['accuracy', 'log_loss', 'auc', 'mae', 'rmse']).default('accuracy'),
        /**
         * How a candidate is judged against the champion on the newest held-out labels, with a paired
         * bootstrap interval of (candidate − champion) in the metric's better direction:
         * - `not-worse` (default): promoted unless clearly worse — the interval's upper bound below
         *   −`tolerance`. A candidate is trained on newer data, so on a drifting stream it should serve
         *   unless the numbers say it is worse (what a refit on a schedule does, with a guard);
         * - `better`: promoted only when clearly better — the lower bound above `minImprovement`.
         */
        gate: z.enum(['not-worse', 'better']).default('not-worse'),
        /** For gate `better`: the candidate must beat the champion by at least this much. */
        minImprovement: z.number().default(0),
        /** For gate `not-worse`: how much worse (in the metric) a candidate may be and still serve. */
        tolerance: z.number().min(0).default(0),
        /**
         * The candidate that serves is refitted on the newest window, held-out rows included, after a
         * model trained without them passed the gate on them (validate, then refit). Default true.
         */
        refitOnHoldout: z.boolean().default(true),
        /** Confidence of the paired bootstrap interval of the improvement. */
        confidence: z.number().min(0.5).max(0.999).default(0.9),
        /** The newest labeled rows held out of training to judge the candidate against the champion. */
        holdoutRows: z.number().int().min(10).default(500),
        /** Roll back when the new champion's live metric is worse than the old one's by more than this. */
        rollbackMargin: z.number().min(0).default(0.02),
        /**
         * Staged rollout of a candidate that passed the offline gate: it shadows the champion on live
         * traffic, then serves an A/B share, and is promoted only after both stages' full monitor windows
         * (monitoring.windowSize labeled predictions) were not worse than the champion's over the same
         * event time by more than `margin`; worse at any stage, it is rejected. Each step is a ModelEvent
         * on control.models and an entry of the registry's history (consumers/retrain-trigger).
         */
        rollout: z
          .object({
            /**
             * Which candidates are staged: `new-spec` (default) those whose inputs differ from the serving
             * champion's, as a model trained on a spec version that added a feature does (new inputs deserve
             * live evidence first; the spec version number alone does not decide); `always` every candidate;
             * `never` none (promoted straight after the offline gate, the rollback guard watching).
             */
            when: z.enum(['new-spec', 'always', 'never']).default('new-spec'),
            /** Full windows the candidate scores as shadow (every event, never served) before its A/B stage. */
            shadowWindows: z.number().int().min(1).max(1000).default(1),
            /** Share of events (stable hash of the event id) the candidate serves in its A/B stage. */
            abShare: z.number().gt(0).max(1).default(0.5),
            /** Full windows of the A/B arm before the promotion. */
            abWindows: z.number().int().min(1).max(1000).default(1),
            /**
             * How much worse (in the metric) a stage's window may be than the champion's; null: `rollbackMargin`.
             * For accuracy, the one-sided 95% sampling noise of the two windows' difference is allowed on top.
             */
            margin: z.number().min(0).nullable().default(null),
          })
          .default({}),
      })
      .default({}),
    replay: z
      .object({
        /** CSV path, relative to the spec file. */
        csv: z.string().min(1),
        /** Column of the event id, unique per row. */
        eventId: z.string().min(1),
        /** Event time of a row: a column in a documented format, columns added up, or row order with a step (see EventTimeSchema). */
        eventTime: EventTimeSchema,
        /** Entity id: a CSV column, or a constant for single-entity data. */
        entityId: z.union([z.object({ column: z.string() }), z.object({ constant: z.string() })]),
        /** Column of the ground truth (any column name). */
        label: z.string().min(1),
        /**
         * Event field → the CSV column it is read from, for columns whose names are not valid
         * field names (`{ "emp_var_rate": "emp.var.rate" }`) or not the names the spec wants
         * (`{ "pay_sep": "PAY_0" }`). Default: a field is read from the column of its own name.
         * Other `replay` settings (eventId, eventTime, entityId, label, feeds) name CSV columns directly.
         */
        columns: z.record(featureName, z.string().min(1)).default({}),
        /** Feature-set feeds computed from the CSV: each row publishes values known once `availableAfterMs` has passed. */
        feeds: z
          .array(
            z.object({
              featureSet: name,
              availableAfterMs: z.number().int().min(0).default(0),
              features: z.record(featureName, feedValue),
            }),
          )
          .default([]),
      })
      .optional(),
  })
  .superRefine((spec, ctx) => {
    const fields = new Set(Object.keys(spec.events.fields));
    const known = new Map<string, string>(Object.entries(spec.events.fields));
    spec.featureSets.forEach((set, i) => {
      for (const [f, k] of Object.entries(set.features)) {
        if (known.has(f)) ctx.addIssue({ code: 'custom', path: ['featureSets', i, 'features', f], message: `name clashes with ${fields.has(f) ? 'an event field' : 'another feature set'}` });
        known.set(f, k);
      }
    });
    spec.featureSets.forEach((set, i) => {
      if (!set.key) return;
      if (!Object.hasOwn(spec.events.fields, set.key.field)) ctx.addIssue({ code: 'custom', path: ['featureSets', i, 'key', 'field'], message: `"${set.key.field}" is not an event field` });
      if (set.source !== 'stream') ctx.addIssue({ code: 'custom', path: ['featureSets', i, 'key'], message: 'only a set with source "stream" can be keyed by an event field; an events-sourced set is aggregated per entity' });
    });
    spec.featureSets.forEach((set, i) => {
      const aggs = Object.entries(set.aggregates);
      if (set.source === 'stream' && aggs.length > 0) ctx.addIssue({ code: 'custom', path: ['featureSets', i, 'aggregates'], message: 'only a set with source "events" has aggregates' });
      if (set.source !== 'events') return;
      for (const f of Object.keys(set.features)) {
        if (!set.aggregates[f]) ctx.addIssue({ code: 'custom', path: ['featureSets', i, 'aggregates', f], message: 'every feature of an events-sourced set needs an aggregate' });
      }
      for (const [f, a] of aggs) {
        const fieldKind = spec.events.fields[a.field];
        if (!(f in set.features)) ctx.addIssue({ code: 'custom', path: ['featureSets', i, 'aggregates', f], message: `"${f}" is not a feature of this set` });
        if (!fieldKind) ctx.addIssue({ code: 'custom', path: ['featureSets', i, 'aggregates', f, 'field'], message: `"${a.field}" is not an event field` });
        else if (a.op !== 'last' && a.op !== 'count' && fieldKind !== 'numeric') ctx.addIssue({ code: 'custom', path: ['featureSets', i, 'aggregates', f, 'op'], message: `${a.op} needs a numeric field; "${a.field}" is categorical` });
        const kind = set.features[f];
        if (kind && kind !== (a.op === 'last' ? fieldKind : 'numeric')) ctx.addIssue({ code: 'custom', path: ['featureSets', i, 'features', f], message: `an aggregate "${a.op}" of "${a.field}" is ${a.op === 'last' ? fieldKind : 'numeric'}` });
      }
    });
    const sets = new Set(spec.featureSets.map((s) => s.name));
    if (sets.size !== spec.featureSets.length) ctx.addIssue({ code: 'custom', path: ['featureSets'], message: 'feature set names must be unique' });
    spec.model.features.forEach((f, i) => {
      if (!known.has(f)) ctx.addIssue({ code: 'custom', path: ['model', 'features', i], message: `"${f}" is neither an event field nor a feature-set feature` });
    });
    for (const c of Object.keys(spec.model.categories)) {
      if (known.get(c) !== 'categorical') ctx.addIssue({ code: 'custom', path: ['model', 'categories', c], message: 'categories given for a feature that is not categorical' });
    }
    if (spec.task === 'regression' && spec.label.type !== 'numeric') ctx.addIssue({ code: 'custom', path: ['label', 'type'], message: 'a regression task needs a numeric label' });
    if (spec.task !== 'regression') {
      if (spec.label.type !== 'categorical') ctx.addIssue({ code: 'custom', path: ['label', 'type'], message: 'a classification task needs a categorical label' });
      const need = spec.task === 'binary' ? 2 : 3;
      if (spec.label.classes.length !== 0 && (spec.task === 'binary' ? spec.label.classes.length !== 2 : spec.label.classes.length < need)) {
        ctx.addIssue({ code: 'custom', path: ['label', 'classes'], message: spec.task === 'binary' ? 'a binary task has exactly 2 classes' : 'a multiclass task has at least 3 classes' });
      }
    }
    if (spec.label.horizonMs < spec.label.delayMs) ctx.addIssue({ code: 'custom', path: ['label', 'horizonMs'], message: 'must be at least label.delayMs' });
    if (spec.trainer.kind === 'command' && !spec.trainer.command?.length) ctx.addIssue({ code: 'custom', path: ['trainer', 'command'], message: 'required when trainer.kind is "command"' });
    for (const field of Object.keys(spec.replay?.columns ?? {})) {
      if (!fields.has(field)) ctx.addIssue({ code: 'custom', path: ['replay', 'columns', field], message: `"${field}" is not an event field` });
    }
    spec.replay?.feeds.forEach((feed, i) => {
      // A feed that reads the label column must not publish before the label is known.
      const readsLabel = Object.entries(feed.features).find(([, how]) => ('lag' in how ? how.lag.column : how.mean.column) === spec.replay!.label);
      if (readsLabel && feed.availableAfterMs < spec.label.delayMs) {
        ctx.addIssue({ code: 'custom', path: ['replay', 'feeds', i, 'availableAfterMs'], message: `feature "${readsLabel[0]}" reads the label column "${spec.replay!.label}", so it is known only label.delayMs (${spec.label.delayMs}) after its event; must be at least that` });
      }
      const set = spec.featureSets.find((s) => s.name === feed.featureSet);
      if (!set) {
        ctx.addIssue({ code: 'custom', path: ['replay', 'feeds', i, 'featureSet'], message: `no feature set named "${feed.featureSet}"` });
        return;
      }
      if (set.source !== 'stream') ctx.addIssue({ code: 'custom', path: ['replay', 'feeds', i, 'featureSet'], message: `feature set "${set.name}" is computed from events; a feed streams only sets with source "stream"` });
      for (const f of Object.keys(feed.features)) {
        if (!(f in set.features)) ctx.addIssue({ code: 'custom', path: ['replay', 'feeds', i, 'features', f], message: `feature set "${set.name}" has no feature "${f}"` });
      }
    });
  });

export type PipelineSpec = z.infer<typeof PipelineSpecSchema>;
export type FeatureSetSpec = PipelineSpec['featureSets'][number];
export type TrainerSpec = PipelineSpec['trainer'];

export interface LoadedSpec {
  spec: PipelineSpec;
  /** Folder of the spec file: relative paths in it resolve from here. */
  dir: string;
  file: string;
}

/** Validates a parsed spec; throws ConfigError listing every problem with its field path. */
export function parseSpec(raw: unknown, source = 'pipeline spec'): PipelineSpec {
  const r = PipelineSpecSchema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  throw new ConfigError(`${source} is invalid:\n  ${lines.join('\n  ')}`);
}

export function loadSpec(file: string): LoadedSpec {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read pipeline spec ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`pipeline spec ${file} is not valid JSON: ${(err as Error).message}`);
  }
  return { spec: parseSpec(raw, `pipeline spec ${file}`), dir: path.dirname(path.resolve(file)), file: path.resolve(file) };
}

/** Every input name with its kind, event fields first. */
export function inputKinds(spec: PipelineSpec): Map<string, 'numeric' | 'categorical'> {
  const m = new Map<string, 'numeric' | 'categorical'>(Object.entries(spec.events.fields));
  for (const set of spec.featureSets) for (const [f, k] of Object.entries(set.features)) m.set(f, k);
  return m;
}

/** The model's feature spec (inputs in order, with kinds and known categories). */
export function modelFeatureDefs(spec: PipelineSpec): Array<{ name: string; kind: 'numeric' | 'categorical'; categories?: string[] }> {
  const kinds = inputKinds(spec);
  return spec.model.features.map((f) => {
    const kind = kinds.get(f)!;
    const categories = spec.model.categories[f];
    return categories ? { name: f, kind, categories } : { name: f, kind };
  });
}
