/**
 * How much a delay between "refit due" and "refit serving" costs: the periodic
 * yardstick (models/periodic-baseline.ts) with each refit taking effect
 * `lag` scored rows after it was due. The closed loop's eventsToServe is that lag.
 *
 *   npx tsx study/serving-lag.ts --csv pipelines/data/elec2.csv [--lags 0,100,300,1000] [--every 500] [--window 2000]
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCsv } from '../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../producers/replay-plan.js';
import { loadSpec, modelFeatureDefs } from '../pipelines/spec.js';
import { periodicBaseline, type PeriodicRow, type RowScorer } from '../models/periodic-baseline.js';
import { trainBuiltin, trainerChoiceOf } from '../models/builtin-trainer.js';
import { qualityMetrics } from '../models/metrics.js';
import type { FeatureRow } from '../models/feature-spec.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const { spec } = loadSpec(path.join(here, '../pipelines/elec2.json'));
const served = pointInTimeRows(spec, buildReplayPlan(spec, readCsv(arg('csv', path.join(here, '../pipelines/data/elec2.csv')))));
const rows: PeriodicRow[] = served.map((r) => ({ eventTime: r.event.event_time, values: r.values, label: r.label, labelTime: r.event.event_time + spec.label.delayMs }));
const history = rows.slice(0, spec.trainer.bootstrapRows);
const scored = rows.slice(spec.trainer.bootstrapRows);
const fspec = { task: spec.task, features: modelFeatureDefs(spec), classes: spec.label.classes };
const choice = trainerChoiceOf(spec.trainer);
const fit = (values: FeatureRow[], labels: Array<string | number>): RowScorer => trainBuiltin(choice, { spec: fspec, rows: values, labels }).predict;
const labeledHistory = history.filter((r) => r.label !== null);
const bootstrap = fit(labeledHistory.map((r) => r.values), labeledHistory.map((r) => r.label as string | number));
const scorers: RowScorer[] = [bootstrap];
const every = Number(arg('every', String(spec.retrain.everyLabels ?? 1000)));
const window = Number(arg('window', String(spec.trainer.windowRows)));
const base = periodicBaseline({
  spec: fspec, rows: scored, history, bootstrap, everyLabels: every, windowRows: window,
  trainer: (v, l) => {
    const s = fit(v, l);
    scorers.push(s);
    return s;
  },
});
const truth = scored.map((r) => r.label as string);
console.log(`| serving lag (rows) | accuracy |\n|---|---|`);
for (const lag of arg('lags', '0,50,100,200,300,500,1000,1500,3000').split(',').map(Number)) {
  const outputs = scored.map((r, i) => {
    let m = 0;
    for (let k = 0; k < base.refits.length && base.refits[k]!.fromRow + lag <= i; k++) m = k + 1;
    return scorers[m]!([r.values])[0]!;
  });
  const q = qualityMetrics({ task: spec.task, classes: spec.label.classes }, truth, outputs);
  console.log(`| ${lag} | ${(q as { accuracy: number }).accuracy.toFixed(4)} |`);
}
