/**
 * The demo's spec evolution (`demo --evolve`, issue 11): a version of a
 * pipeline spec that gains one feature, a rolling mean of a numeric event
 * field over each entity's last `window` events, aggregated from the events
 * by the feature-aggregator (feature set `rolling`), which the model then
 * names as its last input. For Elec2 that is the 48-period (one day) mean of
 * the NSW demand, `nswdemand_ma48`. Pure.
 */
import { parseSpec, type PipelineSpec } from './spec.js';

export interface RollingMean {
  /** The event field averaged. */
  field: string;
  /** Events averaged (the entity's newest, before the event). */
  window: number;
}

/** The field the demo averages: Elec2's demand, else the first numeric event field. */
export function defaultRollingMean(spec: PipelineSpec): RollingMean | null {
  const numeric = Object.entries(spec.events.fields).filter(([, k]) => k === 'numeric').map(([f]) => f);
  const field = numeric.includes('nswdemand') ? 'nswdemand' : numeric[0];
  return field ? { field, window: 48 } : null;
}

/** The feature's name: `<field>_ma<window>`. */
export const rollingMeanName = (m: RollingMean): string => `${m.field}_ma${m.window}`;

/** `spec` with the rolling mean as a new events-sourced feature set and the model's last input; `set` patches the set (pointInTime, waits). */
export function withRollingMean(spec: PipelineSpec, m: RollingMean, set: Record<string, unknown> = {}): PipelineSpec {
  const name = rollingMeanName(m);
  const raw = JSON.parse(JSON.stringify(spec)) as { featureSets: unknown[]; model: { features: string[] } };
  raw.featureSets.push({ name: 'rolling', source: 'events', features: { [name]: 'numeric' }, aggregates: { [name]: { field: m.field, op: 'mean', window: m.window } }, ...set });
  raw.model.features.push(name);
  return parseSpec(raw, `${spec.name} with ${name}`);
}
