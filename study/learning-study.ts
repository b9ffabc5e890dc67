/**
 * Learning study: the "refit on a schedule" protocol (models/periodic-baseline.ts)
 * on a dataset, for several trainers and cadences. Not product code; reads
 * only the CSV it is given.
 *
 *   npx tsx study/learning-study.ts --dataset elec2 --csv /path/elec2.csv
 *     [--trainers old,linear,gbdt] [--cadences none,1000/2000,500/2000,1000/4000]
 *     [--trainer name=algorithm:{json settings}]... [--json out.json]
 *
 * Datasets (inputs, label, delay, bootstrap rows):
 * - elec2: the inputs of pipelines/elec2.json, rows served exactly as its
 *   replay feeds them (nswprice_prev = the previous period's nswprice and
 *   nswprice_ma48 = its 48-period mean up to the previous period, known
 *   30 min after their event); label known 24 h (48 rows) later; bootstrap 5,000.
 * - bike: season, weathersit, weekday and hour-of-day categorical; yr, mnth,
 *   hr, holiday, workingday, temp, atemp, hum, windspeed numeric (same-hour
 *   weather: a mild look-ahead, as the data notes say); label cnt 1 row (hour)
 *   later; bootstrap 5,000.
 * - outdoor: f0..f20; label known 10 rows later (labels come in runs of 10);
 *   bootstrap 1,000.
 * - credit: every column but ID; SEX, EDUCATION, MARRIAGE categorical; rows in
 *   ID order; label known 500 rows later; bootstrap 5,000.
 * Event time is the row index except for elec2 (the spec's times).
 *
 * Trainers: `old` = the linear trainer before this work (legacy-linear.ts),
 * `linear` = the current linear trainer, `gbdt` = gradient-boosted trees,
 * each with its defaults; more with --trainer. A cadence N/W refits every N
 * fresh labels on the newest W; `none` = the bootstrap model only.
 * Training time is process CPU time (user + system) per refit, which stays
 * meaningful on a shared machine.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCsv } from '../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../producers/replay-plan.js';
import { loadSpec, modelFeatureDefs } from '../pipelines/spec.js';
import type { FeatureDef, FeatureRow, Task } from '../models/feature-spec.js';
import { periodicBaseline } from '../models/periodic-baseline.js';
import type { PeriodicRow, Refit } from '../models/periodic-baseline.js';
import { trainBuiltin } from '../models/builtin-trainer.js';
import type { TrainerChoice } from '../models/builtin-trainer.js';
import { fitLegacyLinear } from '../models/legacy-linear.js';

interface Dataset {
  name: string;
  task: Task;
  features: FeatureDef[];
  classes: string[];
  bootstrapRows: number;
  delayRows: number;
  rows: PeriodicRow[];
}

const here = path.dirname(fileURLToPath(import.meta.url));

function loadDataset(name: string, csv: string): Dataset {
  const records = readCsv(csv);
  const num = (v: string | undefined): number | null => (v === undefined || v.trim() === '' ? null : Number(v));
  const byRow = (values: FeatureRow[], labels: Array<string | number>, delayRows: number): PeriodicRow[] =>
    values.map((v, i) => ({ eventTime: i, values: v, label: labels[i] ?? null, labelTime: i + delayRows }));
  switch (name) {
    case 'elec2': {
      const { spec } = loadSpec(path.join(here, '../pipelines/elec2.json'));
      const served = pointInTimeRows(spec, buildReplayPlan(spec, records));
      const rows = served.map((r) => ({ eventTime: r.event.event_time, values: r.values, label: r.label, labelTime: r.event.event_time + spec.label.delayMs }));
      return { name, task: 'binary', features: modelFeatureDefs(spec), classes: spec.label.classes, bootstrapRows: 5000, delayRows: 48, rows };
    }
    case 'bike': {
      const categorical = ['season', 'weathersit', 'weekday', 'hour'];
      const numeric = ['yr', 'mnth', 'hr', 'holiday', 'workingday', 'temp', 'atemp', 'hum', 'windspeed'];
      const values = records.map((r) => ({
        ...Object.fromEntries(numeric.map((c) => [c, num(r[c])])),
        season: r.season ?? null,
        weathersit: r.weathersit ?? null,
        weekday: r.weekday ?? null,
        hour: r.hr ?? null,
      }));
      const features = [...categorical.map((n) => ({ name: n, kind: 'categorical' as const })), ...numeric.map((n) => ({ name: n, kind: 'numeric' as const }))];
      return { name, task: 'regression', features, classes: [], bootstrapRows: 5000, delayRows: 1, rows: byRow(values, records.map((r) => Number(r.cnt)), 1) };
    }
    case 'outdoor': {
      const numeric = Array.from({ length: 21 }, (_, i) => `f${i}`);
      const values = records.map((r) => Object.fromEntries(numeric.map((c) => [c, num(r[c])])));
      const classes = Array.from({ length: 40 }, (_, i) => String(i));
      return { name, task: 'multiclass', features: numeric.map((n) => ({ name: n, kind: 'numeric' })), classes, bootstrapRows: 1000, delayRows: 10, rows: byRow(values, records.map((r) => r.label ?? ''), 10) };
    }
    case 'credit': {
      const categorical = ['SEX', 'EDUCATION', 'MARRIAGE'];
      const numeric = ['LIMIT_BAL', 'AGE', 'PAY_0', 'PAY_2', 'PAY_3', 'PAY_4', 'PAY_5', 'PAY_6', ...[1, 2, 3, 4, 5, 6].map((i) => `BILL_AMT${i}`), ...[1, 2, 3, 4, 5, 6].map((i) => `PAY_AMT${i}`)];
      const values = records.map((r) => ({ ...Object.fromEntries(numeric.map((c) => [c, num(r[c])])), ...Object.fromEntries(categorical.map((c) => [c, r[c] ?? null])) }));
      const features = [...categorical.map((n) => ({ name: n, kind: 'categorical' as const })), ...numeric.map((n) => ({ name: n, kind: 'numeric' as const }))];
      return { name, task: 'binary', features, classes: ['0', '1'], bootstrapRows: 5000, delayRows: 500, rows: byRow(values, records.map((r) => r.next_payment ?? ''), 500) };
    }
    default:
      throw new Error(`unknown dataset "${name}" (elec2, bike, outdoor, credit)`);
  }
}

type StudyTrainer = { name: string; refit: (d: Dataset) => Refit };

function builtin(name: string, choice: TrainerChoice): StudyTrainer {
  return { name, refit: (d) => (rows, labels) => trainBuiltin(choice, { spec: { task: d.task, features: d.features, classes: d.classes }, rows, labels }).predict };
}

const TRAINERS: Record<string, StudyTrainer> = {
  old: { name: 'old', refit: (d) => (rows, labels) => fitLegacyLinear({ spec: { task: d.task, features: d.features, classes: d.classes }, rows, labels }).predict },
  linear: builtin('linear', { algorithm: 'linear' }),
  gbdt: builtin('gbdt', { algorithm: 'gbdt' }),
};

function parseArgs(argv: string[]): { dataset: string; csv: string; trainers: StudyTrainer[]; cadences: Array<{ label: string; every: number; window: number }>; json: string | null } {
  const get = (flag: string): string[] => argv.flatMap((a, i) => (a === flag && argv[i + 1] !== undefined ? [argv[i + 1] as string] : []));
  const dataset = get('--dataset')[0];
  const csv = get('--csv')[0];
  if (!dataset || !csv) throw new Error('usage: learning-study.ts --dataset elec2|bike|outdoor|credit --csv FILE [--trainers old,linear,gbdt] [--cadences none,1000/2000] [--trainer name=algorithm:{json}] [--json out.json]');
  const extra = Object.fromEntries(
    get('--trainer').map((t) => {
      const m = /^([\w.-]+)=(linear|gbdt):(.*)$/.exec(t);
      if (!m) throw new Error(`--trainer ${t}: expected name=linear|gbdt:{json settings}`);
      return [m[1], builtin(m[1] as string, { algorithm: m[2] as 'linear', settings: JSON.parse(m[3] as string) })];
    }),
  );
  const all = { ...TRAINERS, ...extra };
  const trainerNames = (get('--trainers')[0] ?? ['old', 'linear', 'gbdt', ...Object.keys(extra)].join(',')).split(',');
  const trainers = trainerNames.map((n) => {
    const t = all[n];
    if (!t) throw new Error(`unknown trainer "${n}" (${Object.keys(all).join(', ')})`);
    return t;
  });
  const cadences = (get('--cadences')[0] ?? 'none,1000/2000,500/2000,1000/4000').split(',').map((c) => {
    if (c === 'none') return { label: 'bootstrap only', every: Number.MAX_SAFE_INTEGER, window: 1 };
    const [every, window] = c.split('/').map(Number);
    if (!every || !window) throw new Error(`cadence "${c}": expected N/W`);
    return { label: `${every}/${window}`, every, window };
  });
  return { dataset, csv, trainers, cadences, json: get('--json')[0] ?? null };
}

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const d = loadDataset(args.dataset, args.csv);
  const history = d.rows.slice(0, d.bootstrapRows);
  const scored = d.rows.slice(d.bootstrapRows);
  const labeledHistory = history.filter((r) => r.label !== null);
  console.log(`# ${d.name}: ${d.rows.length} rows, bootstrap ${d.bootstrapRows}, ${scored.length} scored, labels ${d.delayRows} rows late, ${d.features.length} inputs, task ${d.task}`);
  const results: Array<Record<string, unknown>> = [];
  const metricNames = d.task === 'regression' ? ['mae', 'rmse'] : d.task === 'binary' ? ['accuracy', 'balancedAccuracy', 'auc'] : ['accuracy', 'macroF1', 'balancedAccuracy'];
  console.log(`| trainer | cadence | ${metricNames.join(' | ')} | refits | CPU ms per refit (mean / max) | bootstrap CPU ms |`);
  console.log(`|---|---|${metricNames.map(() => '---|').join('')}---|---|---|`);
  for (const trainer of args.trainers) {
    const refit = trainer.refit(d);
    const started = cpuMs();
    const bootstrap = refit(labeledHistory.map((r) => r.values), labeledHistory.map((r) => r.label as string | number));
    const bootstrapMs = cpuMs() - started;
    for (const cadence of args.cadences) {
      const result = periodicBaseline({
        spec: { task: d.task, features: d.features, classes: d.classes },
        rows: scored,
        history,
        bootstrap,
        trainer: refit,
        everyLabels: cadence.every,
        windowRows: cadence.window,
        clock: cpuMs,
      });
      const ms = result.refits.map((r) => r.ms);
      const mean = ms.length ? ms.reduce((a, b) => a + b, 0) / ms.length : null;
      const max = ms.length ? Math.max(...ms) : null;
      const fmt = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3));
      console.log(`| ${trainer.name} | ${cadence.label} | ${metricNames.map((m) => fmt(result.metrics[m])).join(' | ')} | ${result.refits.length} | ${mean === null ? '–' : `${mean.toFixed(0)} / ${max?.toFixed(0)}`} | ${bootstrapMs.toFixed(0)} |`);
      results.push({ dataset: d.name, trainer: trainer.name, cadence: cadence.label, metrics: result.metrics, refits: result.refits.length, refitCpuMsMean: mean, refitCpuMsMax: max, bootstrapCpuMs: bootstrapMs });
    }
  }
  if (args.json) fs.writeFileSync(args.json, JSON.stringify(results, null, 2));
}

main();
