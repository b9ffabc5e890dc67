/**
 * `loopline spec check`: every problem of a pipeline spec and its replay CSV,
 * by field path, before anything runs. The spec's own problems come from its
 * schema (pipelines/spec.ts); the CSV's are checked here: the columns the
 * spec names, and row by row the event id (present, unique), the event time,
 * the entity, numeric fields, and the label (present, one of the classes).
 * Pure: `checkSpecText` takes the texts, the CLI reads the files.
 */
import { z } from 'zod';
import { eventTimeColumns, compileEventTime } from './replay-time.js';
import { PipelineSpecSchema, type PipelineSpec } from './spec.js';

export interface SpecProblem {
  /** Field path in the spec (`replay.eventTime.column`), or `csv line N` for a row. */
  path: string;
  message: string;
}

export interface CsvCheck {
  rows: number;
  problems: SpecProblem[];
  /** Problems beyond the first few of a kind, counted but not listed. */
  more: Record<string, number>;
}

/** Problems of a parsed spec, by path; the spec when it is valid. Pure. */
export function checkSpecValue(raw: unknown): { spec: PipelineSpec | null; problems: SpecProblem[] } {
  const r = PipelineSpecSchema.safeParse(raw);
  if (r.success) return { spec: r.data, problems: [] };
  return { spec: null, problems: r.error.issues.map((i: z.ZodIssue) => ({ path: i.path.length ? i.path.join('.') : '(root)', message: i.message })) };
}

/** Problems of replay rows against a valid spec. Lists at most `perKind` of each kind. Pure. */
export function checkReplayRows(spec: PipelineSpec, rows: ReadonlyArray<Record<string, string>>, perKind = 5): CsvCheck {
  const problems: SpecProblem[] = [];
  const more: Record<string, number> = {};
  const replay = spec.replay;
  if (!replay) return { rows: rows.length, problems: [{ path: 'replay', message: 'the spec has no replay section, so there is no CSV to check' }], more };
  const header = new Set(Object.keys(rows[0] ?? {}));
  const columnOf = (field: string) => (Object.hasOwn(replay.columns, field) ? replay.columns[field]! : field);
  const needed: Array<[string, string]> = [
    [replay.eventId, 'replay.eventId'],
    ...eventTimeColumns(replay.eventTime),
    [replay.label, 'replay.label'],
    ...Object.keys(spec.events.fields).map((f): [string, string] => [columnOf(f), Object.hasOwn(replay.columns, f) ? `replay.columns.${f}` : `events.fields.${f}`]),
  ];
  if ('column' in replay.entityId) needed.push([replay.entityId.column, 'replay.entityId.column']);
  replay.feeds.forEach((feed, i) => {
    for (const [feature, how] of Object.entries(feed.features)) {
      const at = `replay.feeds.${i}.features.${feature}`;
      needed.push('lag' in how ? [how.lag.column, `${at}.lag.column`] : [how.mean.column, `${at}.mean.column`]);
    }
  });
  if (rows.length === 0) return { rows: 0, problems: [{ path: 'replay.csv', message: 'the CSV has no data rows' }], more };
  const missing = needed.filter(([c]) => !header.has(c));
  for (const [c, p] of missing) problems.push({ path: p, message: `column "${c}" is not in the CSV (it has ${[...header].join(', ')})` });
  if (missing.length > 0) return { rows: rows.length, problems, more };

  const counts = new Map<string, number>();
  const add = (kind: string, line: number, message: string) => {
    const n = (counts.get(kind) ?? 0) + 1;
    counts.set(kind, n);
    if (n <= perKind) problems.push({ path: `csv line ${line}`, message });
    else more[kind] = n - perKind;
  };
  const time = compileEventTime(replay.eventTime);
  const ids = new Map<string, number>();
  const classes = spec.label.type === 'categorical' && spec.label.classes.length > 0 ? new Set(spec.label.classes) : null;
  rows.forEach((row, i) => {
    const line = i + 2; // the header is line 1
    const id = row[replay.eventId] ?? '';
    if (id.trim() === '') add('eventId', line, `${replay.eventId} (replay.eventId) is empty`);
    else if (ids.has(id)) add('eventId', line, `${replay.eventId} "${id}" repeats line ${ids.get(id)} (replay.eventId must be unique)`);
    else ids.set(id, line);
    const t = time(row, i);
    if (!t.ok) add('eventTime', line, `${t.message} (replay.eventTime)`);
    if ('column' in replay.entityId && (row[replay.entityId.column] ?? '').trim() === '') add('entityId', line, `${replay.entityId.column} (replay.entityId.column) is empty`);
    for (const [field, kind] of Object.entries(spec.events.fields)) {
      const v = row[columnOf(field)] ?? '';
      if (kind === 'numeric' && v.trim() !== '' && !Number.isFinite(Number(v))) add(`field:${field}`, line, `${columnOf(field)} "${v}" is not a number (events.fields.${field} is numeric; empty means missing)`);
    }
    const label = row[replay.label] ?? '';
    if (label.trim() === '') add('label', line, `${replay.label} (replay.label) is empty`);
    else if (spec.label.type === 'numeric' && !Number.isFinite(Number(label))) add('label', line, `${replay.label} "${label}" is not a number (label.type is numeric)`);
    else if (classes && !classes.has(label)) add('label', line, `${replay.label} "${label}" is not one of label.classes (${[...classes].join(', ')})`);
  });
  return { rows: rows.length, problems, more };
}
