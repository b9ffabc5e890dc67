/**
 * The model lifecycle: every change of what serves, for the evaluator, the
 * retrain trigger and the CLI alike. Each operation changes the registry
 * (the champion only by compare-and-set), records the change in its history
 * and returns the ModelEvent that announces it on control.models, so scorers
 * swap at once instead of at their next registry poll. Event ids are
 * deterministic (`<pipeline>/<model>/<action>/<cause or version>`), so a
 * retried or replayed change yields the same event.
 *
 * A promotion keeps the old champion scoring as shadow, whoever promotes, so
 * the retrain trigger's rollback guard can compare the two live and restore
 * the old one if the new one does worse.
 *
 * A staged rollout (promotion.rollout) goes shadow → A/B → champion: the
 * evaluator starts it (`startShadowStage`), the retrain trigger moves it on
 * (`startAbStage`, `promoteRollout`) or ends it (`rejectRollout`); every step
 * is compare-and-set on the champion it was judged against.
 *
 *   const event = await promote(registry, { pipeline, modelName, version: 7, expected: 6, actor: 'cli', reason: 'by hand', cause: 'manual-1733' });
 */
import type { PipelineSpec } from '../pipelines/spec.js';
import type { ModelAction, ModelEvent } from '../schemas/types.js';
import type { ModelRegistry, ServingState } from './registry.js';

export interface Change {
  pipeline: string;
  modelName: string;
  actor: string;
  reason: string;
  /** What caused the change (a report id, `manual-<ms>`): part of the event id; omitted where the version alone identifies it (an evaluator's promotion). */
  cause?: string;
  /** Event time of the change (ms); defaults to now. */
  at?: number;
}

/** `<pipeline>/<model>/<action>/<cause>`, or `…/<action>/<version>` when no cause is given. */
export function modelEventId(c: Pick<Change, 'pipeline' | 'modelName' | 'cause'>, action: ModelAction, version: number): string {
  return `${c.pipeline}/${c.modelName}/${action.toLowerCase()}/${c.cause ?? version}`;
}

export function modelEvent(c: Change, action: ModelAction, version: number, previous: number | null, share: number | null = null): ModelEvent {
  return {
    event_id: modelEventId(c, action, version),
    pipeline: c.pipeline,
    model_name: c.modelName,
    action,
    model_version: version,
    previous_version: previous,
    traffic_share: share,
    reason: c.reason,
    actor: c.actor,
    created_at: c.at ?? Date.now(),
  };
}

/**
 * Makes `version` champion if the champion is still `expected`, keeps the old
 * champion as shadow and records the reason as the version's verdict. Returns
 * the PROMOTE event, or null when the champion changed meanwhile. Promoting
 * the version that already serves returns its event again (a replay).
 */
export async function promote(registry: ModelRegistry, c: Change & { version: number; expected: number | null }): Promise<ModelEvent | null> {
  const event = modelEvent(c, 'PROMOTE', c.version, c.expected);
  const serving = await registry.serving(c.pipeline, c.modelName);
  if (serving.champion === c.version) {
    await keepShadow(registry, c, serving);
    return { ...event, previous_version: serving.previous };
  }
  const ok = await registry.promote({ ...c, version: c.version, expected: c.expected, eventId: event.event_id });
  if (!ok) return null;
  await Promise.all([registry.setVerdict(c.pipeline, c.modelName, c.version, c.reason), keepShadow(registry, c, { ...serving, champion: c.version, previous: c.expected })]);
  return event;
}

/** The previous champion shadows the new one (completed on a replay if a crash came between). */
async function keepShadow(registry: ModelRegistry, c: Change, s: Pick<ServingState, 'champion' | 'previous' | 'shadow'>): Promise<void> {
  if (s.previous === null || s.previous === s.champion || s.shadow === s.previous) return;
  await registry.setShadow({ ...c, version: s.previous, reason: `previous champion shadows v${s.champion} for the rollback guard`, eventId: modelEventId(c, 'SHADOW_START', s.previous) });
}

/** Restores the previous champion if the champion is still `expected`; the rolled-back version keeps the reason as verdict. */
export async function rollback(registry: ModelRegistry, c: Change & { expected: number }): Promise<ModelEvent | null> {
  const restored = await registry.rollback({ ...c, expected: c.expected, eventId: modelEventId(c, 'ROLLBACK', c.expected) });
  if (restored === null) return null;
  await registry.setVerdict(c.pipeline, c.modelName, c.expected, `rolled back: ${c.reason}`);
  return rollbackEvent({ ...c, from: c.expected, to: restored });
}

/** The ROLLBACK event a decided rollback announces, before (or without) carrying it out. */
export function rollbackEvent(c: Change & { from: number; to: number }): ModelEvent {
  return { ...modelEvent(c, 'ROLLBACK', c.to, c.from), event_id: modelEventId(c, 'ROLLBACK', c.from) };
}

/** Rejects a candidate with its verdict (kept whatever the log level). */
export async function reject(registry: ModelRegistry, c: Omit<Change, 'cause'> & { version: number }): Promise<void> {
  await Promise.all([registry.setStatus(c.pipeline, c.modelName, c.version, 'rejected'), registry.setVerdict(c.pipeline, c.modelName, c.version, c.reason)]);
}

export async function setShadow(registry: ModelRegistry, c: Change & { version: number | null }): Promise<ModelEvent> {
  const action: ModelAction = c.version === null ? 'SHADOW_STOP' : 'SHADOW_START';
  const id = modelEventId(c, action, c.version ?? 0);
  await registry.setShadow({ ...c, version: c.version, eventId: id });
  return modelEvent(c, action, c.version ?? 0, null);
}

export async function setAb(registry: ModelRegistry, c: Change & { version: number | null; share: number }): Promise<ModelEvent> {
  const action: ModelAction = c.version === null ? 'AB_STOP' : 'AB_START';
  await registry.setAb({ ...c, version: c.version, share: c.share, eventId: modelEventId(c, action, c.version ?? 0) });
  return modelEvent(c, action, c.version ?? 0, null, c.version === null ? null : c.share);
}

/** A model's inputs, in order, as one comparable string (what `rolloutNeeded` compares). */
export function modelInputs(m: { spec: { features: ReadonlyArray<{ name: string }> } }): string {
  return m.spec.features.map((f) => f.name).join(',');
}

/**
 * Pure: whether a candidate that passed the offline gate is rolled out in stages (promotion.rollout)
 * instead of promoted: never without a champion; with `new-spec`, when its inputs (`modelInputs`) differ
 * from the champion's, as a model trained on a spec version that added or removed a feature does. Spec
 * version numbers alone do not decide: a bootstrap model registered without one takes the same inputs as
 * the candidates trained on the first version, and a spec change that left the model's features alone
 * gives the live stages nothing new to test.
 */
export function rolloutNeeded(policy: PipelineSpec['promotion']['rollout'], candidateInputs: string, championInputs: string | undefined): boolean {
  if (championInputs === undefined || policy.when === 'never') return false;
  return policy.when === 'always' || candidateInputs !== championInputs;
}

/**
 * Pure: the candidate a staged rollout is running for, as the registry shows it: a shadow or A/B arm
 * newer than the champion and not the previous champion (whom the rollback guard's shadow is); or null.
 */
export function rolloutCandidate(serving: { champion: number | null; previous?: number | null; shadow: number | null; ab?: number | null }): number | null {
  const champ = serving.champion;
  if (champ === null) return null;
  for (const v of [serving.ab ?? null, serving.shadow]) if (v !== null && v > champ && v !== serving.previous) return v;
  return null;
}

/** The margin a rollout stage's window may be worse than the champion's: `rollout.margin`, else `rollbackMargin`. */
export function rolloutMargin(p: PipelineSpec['promotion']): number {
  return p.rollout.margin ?? p.rollbackMargin;
}

/**
 * Rollout stage 1: `version` shadows the champion if the champion is still `expected` (compare-and-set);
 * the reason becomes its verdict. Returns the SHADOW_START event (again, on a replay of a stage already
 * set), or null when the champion changed.
 */
export async function startShadowStage(registry: ModelRegistry, c: Change & { version: number; expected: number }): Promise<ModelEvent | null> {
  const event = modelEvent(c, 'SHADOW_START', c.version, null);
  const serving = await registry.serving(c.pipeline, c.modelName);
  if (serving.champion !== c.expected) return null;
  if (serving.shadow !== c.version && !(await registry.setShadow({ ...c, version: c.version, expectedChampion: c.expected, eventId: event.event_id }))) return null;
  await registry.setVerdict(c.pipeline, c.modelName, c.version, c.reason);
  return event;
}

/** The events of rollout stage 2 (the candidate serves `share` as A/B arm, its shadow stops), before they are carried out. */
export function abStageEvents(c: Change & { version: number; share: number }): ModelEvent[] {
  return [modelEvent(c, 'AB_START', c.version, null, c.share), modelEvent(c, 'SHADOW_STOP', c.version, null)];
}

/** Rollout stage 2, idempotent: the A/B arm set by compare-and-set on the champion, then the candidate's shadow stopped. False when the champion changed. */
export async function startAbStage(registry: ModelRegistry, c: Change & { version: number; expected: number; share: number }): Promise<boolean> {
  const [start, stop] = abStageEvents(c);
  const serving = await registry.serving(c.pipeline, c.modelName);
  if (serving.champion !== c.expected) return false;
  if (serving.ab !== c.version && !(await registry.setAb({ ...c, version: c.version, share: c.share, expectedChampion: c.expected, eventId: start!.event_id }))) return false;
  if (serving.shadow === c.version) await registry.setShadow({ ...c, version: null, eventId: stop!.event_id });
  await registry.setVerdict(c.pipeline, c.modelName, c.version, c.reason);
  return true;
}

/** The events of the rollout's promotion (the A/B arm stops, the candidate becomes champion), before they are carried out. */
export function rolloutPromotionEvents(c: Change & { version: number; expected: number }): ModelEvent[] {
  return [modelEvent(c, 'AB_STOP', c.version, null), modelEvent(c, 'PROMOTE', c.version, c.expected)];
}

/**
 * The rollout's last step, idempotent: stops the candidate's A/B arm and promotes it over `expected`
 * (compare-and-set; the old champion shadows it for the rollback guard, as every promotion). False when
 * the champion changed (the arm is then left as it is).
 */
export async function promoteRollout(registry: ModelRegistry, c: Change & { version: number; expected: number }): Promise<boolean> {
  const [stop] = rolloutPromotionEvents(c);
  const serving = await registry.serving(c.pipeline, c.modelName);
  if (serving.champion === c.version) return (await promote(registry, c)) !== null;
  if (serving.champion !== c.expected) return false;
  if (serving.ab === c.version && !(await registry.setAb({ ...c, version: null, share: 0, expectedChampion: c.expected, eventId: stop!.event_id }))) return false;
  return (await promote(registry, c)) !== null;
}

/** The event a rejected rollout announces: its stage stops. */
export function rolloutRejectionEvent(c: Change & { version: number; stage: 'shadow' | 'ab' }): ModelEvent {
  return modelEvent(c, c.stage === 'shadow' ? 'SHADOW_STOP' : 'AB_STOP', c.version, null);
}

/** Rejects a rolled-out candidate, idempotent: its shadow or A/B arm stops (whichever it still holds) and the reason becomes its verdict. */
export async function rejectRollout(registry: ModelRegistry, c: Change & { version: number; stage: 'shadow' | 'ab' }): Promise<void> {
  const eventId = rolloutRejectionEvent(c).event_id;
  const serving = await registry.serving(c.pipeline, c.modelName);
  if (serving.shadow === c.version) await registry.setShadow({ ...c, version: null, eventId });
  if (serving.ab === c.version) await registry.setAb({ ...c, version: null, share: 0, eventId });
  await reject(registry, c);
}
