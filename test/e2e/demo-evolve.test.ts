// `demo --evolve` end to end on the real stack (issue 11), paced as a backtest over 10,000 Elec2 events
// (a staged rollout takes up to about 3,000 events: a shadow window, then an A/B window at half the
// traffic, each judged once the champion's windows cover it):
// halfway, a spec version adding the rolling demand mean (nswdemand_ma48) is applied while every worker
// runs; the loop picks it up live, retrains onto it, the evaluator's gate passes a model taking it, and
// its staged rollout (promotion.rollout: its inputs differ from the champion's) takes it through shadow
// and A/B to champion. Asserted from the report and by reading Cassandra: nothing lost or doubled, the model on
// the new version in the registry with its spec version and inputs, its promotion in model_events, and
// every prediction it logged recording exactly its inputs.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDemo, type DemoRun } from '../../cli/demo.js';
import { createCassandraClient } from '../../store/cassandra.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { removeDemoRun } from '../support/demo-run.js';
import { ROOT } from '../support/elec2.js';

let run: DemoRun | null = null;

afterAll(() => removeDemoRun(run));

describe('demo --evolve', () => {
  it('applies a spec version halfway, promotes a model on its new feature through the gate, and every logged prediction records its model\'s inputs', async () => {
    run = await runDemo({ spec: path.join(ROOT, 'pipelines', 'elec2.json'), rows: 10000, eventsPerSecond: 600, backtest: true, backtestStep: 100, report: 'json', metricsPort: 0, evolve: true });
    const r = run.report;
    console.log(`[demo-evolve] ${JSON.stringify({ ...r, timeline: undefined, promotionsAt: undefined })}`);
    expect(r.events).toBe(10000);
    expect(r.lost).toBe(0);
    expect(r.duplicates).toBe(0);
    expect(r.predictionsLogged).toBe(r.events);
    const ev = r.evolution!;
    expect(ev).toBeDefined();
    expect(ev.toFeatures).toEqual([...ev.fromFeatures, 'nswdemand_ma48']);
    expect(ev).toMatchObject({ specVersion: 2, appliedAtEvent: 5000, modelFeaturesMismatched: 0 });
    expect(ev.loggedPredictions).toBeGreaterThanOrEqual(r.events);
    expect(ev.promotedVersion).not.toBeNull();
    expect(ev.promotedAtEvent!).toBeGreaterThan(ev.appliedAtEvent);
    // Staged: the first model on the new version shadowed, then served as A/B arm (its promotion is checked in
    // the registry's history below: a newer model on the same inputs can take over before it logs as champion),
    // and a model on the new version serves as champion by the end.
    const stages = ev.stages.filter((s) => s.version === ev.promotedVersion);
    expect(stages.map((s) => s.stage).slice(0, 2)).toEqual(['shadow', 'ab']);
    expect(stages[0]!.atEvent).toBeLessThan(stages[1]!.atEvent);
    expect(ev.stages.some((s) => s.stage === 'champion')).toBe(true);

    const cql = createCassandraClient(run.config.cassandra);
    try {
      const registry = createModelRegistry(cql);
      const model = await registry.get('elec2', 'elec2-updown', ev.promotedVersion!);
      expect(model.specVersion).toBe(2);
      expect(model.spec.features.map((f) => f.name)).toEqual(ev.toFeatures);
      const history = await registry.history('elec2', 'elec2-updown', 1000);
      // The rollout's steps for that model, in order: staged as shadow by the evaluator's gate, moved to A/B and then
      // promoted by the retrain trigger on its live windows.
      const steps = history.filter((h) => h.version === ev.promotedVersion).sort((a, b) => a.at - b.at);
      const at = (action: string) => steps.find((h) => h.action === action);
      expect(at('SHADOW_START')?.actor).toBe('evaluator');
      expect(at('AB_START')?.actor).toBe('retrain-trigger');
      expect(at('PROMOTE')?.actor).toBe('retrain-trigger');
      expect(at('SHADOW_START')!.at).toBeLessThanOrEqual(at('AB_START')!.at);
      expect(at('AB_START')!.at).toBeLessThanOrEqual(at('PROMOTE')!.at);
      // Every model built before the switch was on version 1, after it on version 2 (or, built from a request taken before, 1).
      for (const m of await registry.list('elec2', 'elec2-updown')) if (m.version > 1) expect([1, 2]).toContain(m.specVersion);
      // The analysts' table: every prediction of the promoted version records its inputs, the new feature served to it.
      // (Served a value, or listed as missing had the aggregator been more than its 10 s wait behind: never silently absent.)
      const rows = (await cql.execute('SELECT model_features, features_num, missing FROM predictions_by_time WHERE model_version = ? ALLOW FILTERING', [ev.promotedVersion], { prepare: true, fetchSize: 10_000 })).rows;
      expect(rows.length).toBeGreaterThan(0);
      const valued = (row: (typeof rows)[number]) => typeof (row.get('features_num') as Record<string, number>).nswdemand_ma48 === 'number';
      for (const row of rows) {
        expect(row.get('model_features')).toEqual(ev.toFeatures);
        expect(valued(row) || ((row.get('missing') as string[] | null) ?? []).includes('nswdemand_ma48')).toBe(true);
      }
      expect(rows.some(valued)).toBe(true);
    } finally {
      await cql.shutdown();
    }
  }, 900_000);
});
