import { describe, expect, it } from 'vitest';
import { elec2 } from '../test/support/elec2.js';
import { PipelineSpecSchema } from '../pipelines/spec.js';
import { describeChange, evolutionProblems, specChange, type ServingModel } from './spec-evolution.js';
import type { FeatureSpec } from './feature-spec.js';

const champion: ServingModel = {
  role: 'champion',
  version: 3,
  spec: { task: 'binary', classes: ['DOWN', 'UP'], features: elec2.model.features.map((name) => ({ name, kind: name === 'day' ? 'categorical' : 'numeric' })) } as FeatureSpec,
};
const withDemand = PipelineSpecSchema.parse({
  ...elec2,
  featureSets: [...elec2.featureSets, { name: 'demand', source: 'events', features: { nswdemand_ma48: 'numeric' }, aggregates: { nswdemand_ma48: { field: 'nswdemand', op: 'mean', window: 48 } } }],
  model: { ...elec2.model, features: [...elec2.model.features, 'nswdemand_ma48'] },
});

describe('spec evolution', () => {
  it('describes an added aggregate feature, and lets the champion (which takes fewer inputs) keep serving', () => {
    const c = specChange(elec2, withDemand);
    expect(c).toMatchObject({ addedInputs: ['nswdemand_ma48'], removedInputs: [], changedKinds: [], addedFeatureSets: ['demand'], removedFeatureSets: [] });
    expect(describeChange(c)).toMatch(/^added inputs nswdemand_ma48; added feature sets demand; model inputs \[.*\] → \[.*nswdemand_ma48\]$/);
    expect(evolutionProblems(elec2, withDemand, [champion])).toEqual([]);
    expect(describeChange(specChange(elec2, elec2))).toBe('no change to inputs');
  });

  it('refuses a removed input, a kind change, other classes and a renamed model, naming the serving model', () => {
    const { day: _day, ...fields } = elec2.events.fields;
    const noDay = PipelineSpecSchema.parse({ ...elec2, events: { fields }, model: { ...elec2.model, features: elec2.model.features.filter((f) => f !== 'day'), categories: {} } });
    expect(evolutionProblems(elec2, noDay, [champion, { ...champion, role: 'shadow', version: 4 }])).toEqual([
      'champion elec2-updown@3 could not be served: the model needs "day", which the pipeline does not serve',
      'shadow elec2-updown@4 could not be served: the model needs "day", which the pipeline does not serve',
    ]);
    expect(specChange(elec2, noDay).removedInputs).toEqual(['day']);
    const retyped = PipelineSpecSchema.parse({ ...elec2, events: { fields: { ...elec2.events.fields, period: 'categorical' } } });
    expect(evolutionProblems(elec2, retyped, [champion])[0]).toMatch(/takes "period" as numeric, the pipeline serves it as categorical/);
    const classes = PipelineSpecSchema.parse({ ...elec2, label: { ...elec2.label, classes: ['UP', 'DOWN'] } });
    expect(evolutionProblems(elec2, classes, [champion])[0]).toMatch(/classes are \[DOWN, UP\], the pipeline's \[UP, DOWN\]/);
    const renamed = PipelineSpecSchema.parse({ ...elec2, model: { ...elec2.model, name: 'elec2-other' } });
    expect(evolutionProblems(elec2, renamed, [])).toEqual(['the model is named elec2-other, the applied spec\'s elec2-updown: its versions would stop serving']);
  });
});
