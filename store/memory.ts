/**
 * In-memory stores with the same contracts as the Cassandra ones, for flow
 * tests of a worker over the in-memory harness (streams/testing.ts): a
 * worker's logic is tested in milliseconds, with no server. The real-server
 * suites in test/ keep testing the Cassandra implementations.
 */
import { ModelNotFoundError, type ModelInfo, type ModelRegistry, type ModelVersion, type ServingState } from '../models/registry.js';
import type { LabeledPrediction, Prediction } from '../schemas/types.js';
import { createMemoryStateStore, type StateStore } from '../streams/state.js';
import { SET_WATERMARK, type EntityFeatures, type FeatureHistory, type FeatureStore } from './feature-store.js';
import type { LabelStore, StoredTruth } from './labels.js';
import { sha256 } from './model-registry.js';
import type { MonitorReportStore, StoredReport } from './monitor-reports.js';
import { specSha256, type PipelineSpecStore, type StoredSpec } from './pipeline-specs.js';
import type { PredictionLog } from './prediction-log.js';
import type { Claim, RequestRow, RetrainRequestStore } from './retrain-requests.js';
import type { ProgressStore } from './state-store.js';
import type { Stores } from './stores.js';
import type { TrainingRow, TrainingSet } from './training-set.js';

export function createMemoryFeatureStore(): FeatureStore & { history_: Map<string, Array<{ asOf: number; value: number | string | null }>> } {
  const latest = new Map<string, EntityFeatures>();
  const history_ = new Map<string, Array<{ asOf: number; value: number | string | null }>>();
  const marks = new Map<string, number>();
  /** Waits for watermarks in progress, woken by every apply(). */
  const waiters = new Set<() => void>();
  const k = (set: string, entity: string) => `${set}\u0000${entity}`;
  return {
    history_,
    async lookup(set, entityIds) {
      const out = new Map<string, EntityFeatures>();
      for (const e of entityIds) {
        const row = latest.get(k(set, e));
        if (row) out.set(e, new Map(row));
      }
      return out;
    },
    async history(set, entityId, features, from, to) {
      const out: FeatureHistory = new Map();
      for (const f of features) out.set(f, (history_.get(`${k(set, entityId)}\u0000${f}`) ?? []).filter((h) => h.asOf >= from && h.asOf <= to));
      return out;
    },
    async watermarks(set, entityIds) {
      const out = new Map<string, number>();
      for (const e of entityIds) {
        const m = marks.get(k(set, e));
        if (m !== undefined) out.set(e, m);
      }
      return out;
    },
    async waitForWatermarks(set, newest, maxMs) {
      // As the Cassandra store's: a key the writer has never seen is waited for only while the set's
      // watermark is older than its time; every apply() wakes the waiters, the wait ends after maxMs.
      const caughtUp = () => {
        const setMark = marks.get(k(set, SET_WATERMARK)) ?? -Infinity;
        return [...newest].every(([e, t]) => (marks.get(k(set, e)) ?? (setMark >= t ? Infinity : -Infinity)) >= t);
      };
      const started = Date.now();
      while (!caughtUp() && Date.now() - started < maxMs) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, maxMs - (Date.now() - started));
          function done() {
            clearTimeout(timer);
            waiters.delete(done);
            resolve();
          }
          waiters.add(done);
        });
      }
      return { waitedMs: Date.now() - started, caughtUp: caughtUp() };
    },
    async apply(updates) {
      let written = 0;
      let skipped = 0;
      for (const u of updates) {
        const row = latest.get(k(u.feature_set, u.entity_id)) ?? new Map();
        for (const [feature, value] of Object.entries(u.values)) {
          const hk = `${k(u.feature_set, u.entity_id)}\u0000${feature}`;
          const list = history_.get(hk) ?? [];
          if (!list.some((h) => h.asOf === u.event_time)) list.push({ asOf: u.event_time, value });
          list.sort((a, b) => b.asOf - a.asOf);
          history_.set(hk, list);
          const prior = row.get(feature);
          if (prior && u.event_time <= prior.asOf) {
            skipped++;
            continue;
          }
          row.set(feature, { value, asOf: u.event_time, prevValue: prior?.value ?? null, prevAsOf: prior?.asOf ?? null });
          written++;
        }
        latest.set(k(u.feature_set, u.entity_id), row);
        for (const key of [k(u.feature_set, u.entity_id), k(u.feature_set, SET_WATERMARK)]) marks.set(key, Math.max(marks.get(key) ?? -Infinity, u.event_time));
      }
      for (const wake of [...waiters]) wake();
      return { written, skipped };
    },
  };
}

export function createMemoryPredictionLog(): PredictionLog & { rows: Map<string, Prediction> } {
  const rows = new Map<string, Prediction>();
  return {
    rows,
    async write(predictions) {
      for (const p of predictions) rows.set(`${p.event_id}/${p.model_name}/${p.variant}`, structuredClone(p));
    },
    async byEvent(eventId) {
      return [...rows.values()].filter((p) => p.event_id === eventId);
    },
  };
}

export function createMemoryRegistry(): ModelRegistry & { models: ModelVersion[] } {
  const models: ModelVersion[] = [];
  const serving = new Map<string, ServingState>();
  const events: Array<{ key: string; at: number; action: string; version: number; previous: number | null; reason: string; actor: string }> = [];
  const key = (p: string, m: string) => `${p}/${m}`;
  const state = (p: string, m: string): ServingState => serving.get(key(p, m)) ?? { champion: null, previous: null, shadow: null, ab: null, abShare: 0 };
  const find = (p: string, m: string, v: number) => models.find((x) => x.pipeline === p && x.modelName === m && x.version === v);
  const log = (c: { pipeline: string; modelName: string; reason: string; actor: string }, action: string, version: number, previous: number | null) =>
    events.unshift({ key: key(c.pipeline, c.modelName), at: Date.now(), action, version, previous, reason: c.reason, actor: c.actor });
  const registry: ModelRegistry & { models: ModelVersion[] } = {
    models,
    async register(input) {
      const version = Math.max(0, ...models.filter((x) => x.pipeline === input.pipeline && x.modelName === input.modelName).map((x) => x.version)) + 1;
      const m: ModelVersion = {
        ...input, version, trainingStart: input.trainingStart ?? null, trainingEnd: input.trainingEnd ?? null, parentVersion: input.parentVersion ?? null,
        requestId: input.requestId ?? null, specVersion: input.specVersion ?? null, sha256: sha256(input.onnx), createdAt: Date.now(), verdict: null,
      };
      models.push(m);
      const { onnx: _o, ...info } = m;
      return info;
    },
    async get(p, m, v) {
      const x = find(p, m, v);
      if (!x) throw new ModelNotFoundError(p, m, v);
      return x;
    },
    async list(p, m) {
      return models.filter((x) => x.pipeline === p && x.modelName === m).map(({ onnx: _o, ...info }): ModelInfo => info).sort((a, b) => b.version - a.version);
    },
    async info(p, m, v) {
      return (await registry.list(p, m)).find((x) => x.version === v) ?? null;
    },
    async byRequest(p, m, requestId) {
      return (await registry.list(p, m)).find((x) => x.requestId === requestId) ?? null;
    },
    async serving(p, m) {
      return { ...state(p, m) };
    },
    async setStatus(p, m, v, status) {
      const x = find(p, m, v);
      if (x) x.status = status;
    },
    async setVerdict(p, m, v, verdict) {
      const x = find(p, m, v);
      if (x) x.verdict = verdict;
    },
    async promote(c) {
      const s = state(c.pipeline, c.modelName);
      if (s.champion !== c.expected) return false;
      serving.set(key(c.pipeline, c.modelName), { ...s, champion: c.version, previous: c.expected });
      await registry.setStatus(c.pipeline, c.modelName, c.version, 'champion');
      if (c.expected !== null && c.expected !== c.version) await registry.setStatus(c.pipeline, c.modelName, c.expected, 'retired');
      log(c, 'PROMOTE', c.version, c.expected);
      return true;
    },
    async rollback(c) {
      const s = state(c.pipeline, c.modelName);
      if (s.champion !== c.expected || s.previous === null) return null;
      serving.set(key(c.pipeline, c.modelName), { ...s, champion: s.previous, previous: null, shadow: null });
      await registry.setStatus(c.pipeline, c.modelName, s.previous, 'champion');
      await registry.setStatus(c.pipeline, c.modelName, c.expected, 'rejected');
      log(c, 'ROLLBACK', s.previous, c.expected);
      return s.previous;
    },
    async setShadow(c) {
      if (c.expectedChampion !== undefined && state(c.pipeline, c.modelName).champion !== c.expectedChampion) return false;
      serving.set(key(c.pipeline, c.modelName), { ...state(c.pipeline, c.modelName), shadow: c.version });
      if (c.version !== null) await registry.setStatus(c.pipeline, c.modelName, c.version, 'shadow');
      log(c, c.version === null ? 'SHADOW_STOP' : 'SHADOW_START', c.version ?? 0, null);
      return true;
    },
    async setAb(c) {
      if (c.expectedChampion !== undefined && state(c.pipeline, c.modelName).champion !== c.expectedChampion) return false;
      serving.set(key(c.pipeline, c.modelName), { ...state(c.pipeline, c.modelName), ab: c.version, abShare: c.version === null ? 0 : c.share });
      log(c, c.version === null ? 'AB_STOP' : 'AB_START', c.version ?? 0, null);
      return true;
    },
    async history(p, m, limit = 20) {
      return events.filter((e) => e.key === key(p, m)).slice(0, limit).map(({ key: _k, ...e }) => e);
    },
  };
  return registry;
}

export function createMemoryLabelStore(): LabelStore & { truths: Map<string, StoredTruth>; late: StoredTruth[]; labeled: Map<string, LabeledPrediction> } {
  const truths = new Map<string, StoredTruth>();
  const late: StoredTruth[] = [];
  const labeled = new Map<string, LabeledPrediction>();
  return {
    truths,
    late,
    labeled,
    async write(w) {
      for (const { truth } of w.truths ?? []) truths.set(truth.event_id, truth);
      for (const { truth } of w.late ?? []) if (!late.some((x) => x.event_id === truth.event_id)) late.push(truth);
      for (const lp of w.labeled ?? []) labeled.set(lp.prediction.prediction_id, lp);
    },
  };
}

export function createMemoryTrainingSet(): TrainingSet & { rows: Map<string, TrainingRow & { pipeline: string }> } {
  const rows = new Map<string, TrainingRow & { pipeline: string }>();
  return {
    rows,
    async write(p, label, labelTime) {
      rows.set(p.event_id, { pipeline: p.pipeline, eventId: p.event_id, eventTime: p.event_time, values: { ...p.features }, label, labelTime, modelVersion: p.model_version, entityId: p.entity_id });
    },
    async writeMany(written) {
      for (const { prediction: p, label, labelTime } of written) await this.write(p, label, labelTime);
    },
    async seed(pipeline, seeded) {
      for (const r of seeded) rows.set(r.eventId, { ...r, values: { ...r.values }, pipeline });
    },
    async newest(pipeline, { limit, before }) {
      return [...rows.values()]
        .filter((r) => r.pipeline === pipeline && (before === undefined || r.eventTime < before))
        .sort((a, b) => b.eventTime - a.eventTime || (a.eventId < b.eventId ? -1 : 1))
        .slice(0, limit)
        .map(({ pipeline: _p, ...r }) => r);
    },
  };
}

export function createMemoryReportStore(): MonitorReportStore & { reports: StoredReport[] } {
  const reports: StoredReport[] = [];
  return {
    reports,
    async write(rs) {
      for (const r of rs) if (!reports.some((x) => x.report.report_id === r.report.report_id)) reports.push(r);
    },
    async latest(pipeline, kind, limit) {
      return reports.filter((r) => r.report.pipeline === pipeline && r.kind === kind).reverse().slice(0, limit);
    },
  };
}

export function createMemoryRequestStore(): RetrainRequestStore & { rows: Map<string, RequestRow & { owner: string | null; leaseUntil: number }> } {
  const rows = new Map<string, RequestRow & { owner: string | null; leaseUntil: number }>();
  return {
    rows,
    async claim(r, owner, leaseMs): Promise<Claim> {
      const row = rows.get(r.request_id);
      if (!row) {
        rows.set(r.request_id, { requestId: r.request_id, reason: r.reason, detail: r.detail, requestedAt: r.requested_at, status: 'building', modelVersion: null, verdict: null, owner, leaseUntil: Date.now() + leaseMs });
        return { outcome: 'mine' };
      }
      if (row.status !== 'building') return { outcome: 'done', status: row.status, modelVersion: row.modelVersion };
      if (row.owner === owner || row.leaseUntil <= Date.now()) {
        row.owner = owner;
        row.leaseUntil = Date.now() + leaseMs;
        return { outcome: 'mine' };
      }
      return { outcome: 'held', owner: row.owner ?? '?', leaseUntil: row.leaseUntil };
    },
    async renew(_p, requestId, owner, leaseMs) {
      const row = rows.get(requestId);
      if (!row || row.owner !== owner) return false;
      row.leaseUntil = Date.now() + leaseMs;
      return true;
    },
    async finish(_p, requestId, status, modelVersion, verdict) {
      const row = rows.get(requestId);
      if (row) Object.assign(row, { status, modelVersion, verdict, leaseUntil: 0 });
    },
    async list() {
      return [...rows.values()];
    },
  };
}

export function createMemoryProgressStore(): ProgressStore {
  const rows = new Map<string, Map<number, bigint>>();
  return {
    async write(topic, partition, next) {
      const m = rows.get(topic) ?? new Map<number, bigint>();
      m.set(partition, next);
      rows.set(topic, m);
    },
    async read(topic) {
      return new Map(rows.get(topic) ?? []);
    },
  };
}

export interface MemoryStores extends Stores {
  states: Map<string, StateStore<unknown>>;
  features: ReturnType<typeof createMemoryFeatureStore>;
  predictions: ReturnType<typeof createMemoryPredictionLog>;
  registry: ReturnType<typeof createMemoryRegistry>;
  labels: ReturnType<typeof createMemoryLabelStore>;
  training: ReturnType<typeof createMemoryTrainingSet>;
  reports: ReturnType<typeof createMemoryReportStore>;
  requests: ReturnType<typeof createMemoryRequestStore>;
  specs: ReturnType<typeof createMemorySpecStore>;
}

/** The pipeline_specs table in memory: versions per pipeline, newest last. */
export function createMemorySpecStore(): PipelineSpecStore & { versions: Map<string, StoredSpec[]> } {
  const versions = new Map<string, StoredSpec[]>();
  return {
    versions,
    async latest(pipeline) {
      return versions.get(pipeline)?.at(-1) ?? null;
    },
    async record(pipeline, spec, change, at) {
      const list = versions.get(pipeline) ?? [];
      const last = list.at(-1);
      const sha = specSha256(spec);
      if (last && last.sha256 === sha) return { version: last.version, created: false };
      const version = (last?.version ?? 0) + 1;
      list.push({ pipeline, version, sha256: sha, spec, change, appliedAt: at });
      versions.set(pipeline, list);
      return { version, created: true };
    },
  };
}

/** Every store in memory; state and progress stores are kept per worker name. */
export function createMemoryStores(): MemoryStores {
  const states = new Map<string, StateStore<unknown>>();
  const progress = new Map<string, ProgressStore>();
  return {
    states,
    features: createMemoryFeatureStore(),
    predictions: createMemoryPredictionLog(),
    registry: createMemoryRegistry(),
    labels: createMemoryLabelStore(),
    training: createMemoryTrainingSet(),
    reports: createMemoryReportStore(),
    requests: createMemoryRequestStore(),
    specs: createMemorySpecStore(),
    state<S, E>(worker: string): StateStore<S, E> {
      if (!states.has(worker)) states.set(worker, createMemoryStateStore<unknown>() as StateStore<unknown>);
      return states.get(worker) as unknown as StateStore<S, E>;
    },
    progress(worker) {
      if (!progress.has(worker)) progress.set(worker, createMemoryProgressStore());
      return progress.get(worker)!;
    },
  };
}

