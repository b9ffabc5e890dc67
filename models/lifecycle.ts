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
 *   const event = await promote(registry, { pipeline, modelName, version: 7, expected: 6, actor: 'cli', reason: 'by hand', cause: 'manual-1733' });
 */
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
  await registry.setVerdict(c.pipeline, c.modelName, c.version, c.reason);
  await keepShadow(registry, c, { ...serving, champion: c.version, previous: c.expected });
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
  await registry.setStatus(c.pipeline, c.modelName, c.version, 'rejected');
  await registry.setVerdict(c.pipeline, c.modelName, c.version, c.reason);
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
