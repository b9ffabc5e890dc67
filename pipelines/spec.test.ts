import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../streams/errors.js';
import { loadSpec, modelFeatureDefs, parseSpec } from './spec.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const elec2 = () => structuredClone(loadSpec(path.join(here, 'elec2.json')).spec) as Record<string, any>;

describe('pipeline spec', () => {
  it('loads the bundled Elec2 spec', () => {
    const { spec } = loadSpec(path.join(here, 'elec2.json'));
    expect(spec.task).toBe('binary');
    expect(modelFeatureDefs(spec).map((f) => f.name)).toEqual(spec.model.features);
    expect(modelFeatureDefs(spec)[0]).toEqual({ name: 'day', kind: 'categorical', categories: ['1', '2', '3', '4', '5', '6', '7'] });
  });

  it.each([
    ['unknown model feature', (s: any) => s.model.features.push('nope'), /model\.features\.8: "nope" is neither/],
    ['bad name', (s: any) => (s.name = 'Elec 2'), /name: must be lower-case/],
    ['clash', (s: any) => (s.featureSets[0].features.period = 'numeric'), /featureSets\.0\.features\.period: name clashes with an event field/],
    ['binary classes', (s: any) => (s.label.classes = ['A', 'B', 'C']), /label\.classes: a binary task has exactly 2 classes/],
    ['horizon', (s: any) => (s.label.horizonMs = 1000), /label\.horizonMs: must be at least label\.delayMs/],
    ['feed set', (s: any) => (s.replay.feeds[0].featureSet = 'weather'), /replay\.feeds\.0\.featureSet: no feature set named "weather"/],
    ['wrong type', (s: any) => (s.monitoring.windowSize = 'big'), /monitoring\.windowSize: Expected number/],
    ['command trainer', (s: any) => (s.trainer.kind = 'command'), /trainer\.command: required/],
    ['unknown algorithm', (s: any) => (s.trainer.algorithm = 'forest'), /trainer\.algorithm: Invalid discriminator value\. Expected 'linear' \| 'gbdt'/],
    ['gbdt setting on linear', (s: any) => (s.trainer.settings.maxDepth = 4), /trainer\.settings: Unrecognized key\(s\) in object: 'maxDepth'/],
    ['linear setting on gbdt', (s: any) => (s.trainer = { algorithm: 'gbdt', settings: { epochs: 3 } }), /trainer\.settings: Unrecognized key\(s\) in object: 'epochs'/],
    ['gbdt depth', (s: any) => (s.trainer = { algorithm: 'gbdt', settings: { maxDepth: 20 } }), /trainer\.settings\.maxDepth: Number must be less than or equal to 12/],
    ['gbdt subsample', (s: any) => (s.trainer = { algorithm: 'gbdt', settings: { subsample: 0 } }), /trainer\.settings\.subsample: Number must be greater than 0/],
    ['class weight', (s: any) => (s.trainer.settings.classWeight = 'auto'), /trainer\.settings\.classWeight: Invalid enum value/],
  ])('names the field: %s', (_n, mutate, message) => {
    const s = elec2();
    mutate(s);
    expect(() => parseSpec(s)).toThrow(ConfigError);
    expect(() => parseSpec(s)).toThrow(message);
  });

  it('defaults the trainer to the built-in linear algorithm', () => {
    const s = elec2();
    delete s.trainer;
    const spec = parseSpec(s);
    expect(spec.trainer).toEqual({ kind: 'builtin', algorithm: 'linear', settings: {}, bootstrapRows: 5000, windowRows: 2000 });
    const kept = elec2();
    delete kept.trainer.algorithm;
    expect(parseSpec(kept).trainer).toMatchObject({ algorithm: 'linear', settings: { epochs: 30, learningRate: 0.05, seed: 7 } });
  });

  it('takes gbdt with its own settings', () => {
    const s = elec2();
    s.trainer = { algorithm: 'gbdt', settings: { trees: 50, maxDepth: 3, classWeight: 'balanced' }, windowRows: 4000 };
    expect(parseSpec(s).trainer).toEqual({ kind: 'builtin', algorithm: 'gbdt', settings: { trees: 50, maxDepth: 3, classWeight: 'balanced' }, bootstrapRows: 5000, windowRows: 4000 });
  });
});
