/**
 * Event time of a replayed CSV row, as the spec's `replay.eventTime` says
 * (every form is documented on `EventTimeSchema` in spec.ts):
 *
 * - `{ column, format: 'iso' }`: an ISO 8601 date or date-time; one without a
 *   zone is read as UTC, so a local wall clock stays a wall clock;
 * - `{ column, format: 'epoch-s' | 'epoch-ms' }`: a number of seconds or
 *   milliseconds since 1970-01-01T00:00Z (fractions allowed, rounded to ms);
 * - either of those `plus` numeric columns in a unit (`dteday` + `hr` hours);
 * - `{ rowOrder: { start, stepMs } }`: `start + i × stepMs` for the i-th data
 *   row of the file (0-based, whatever the replay's offset).
 *
 *   const timeOf = compileEventTime(spec.replay.eventTime);
 *   timeOf(row, i) // → { ok: true, ms } or { ok: false, message }
 *
 * Pure: no I/O, no clock.
 */

/** Milliseconds per `plus` unit. */
export const TIME_UNIT_MS = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export type TimeUnit = keyof typeof TIME_UNIT_MS;
export type TimeFormat = 'iso' | 'epoch-s' | 'epoch-ms';

/** The compiled (parsed) form of `replay.eventTime`. */
export type EventTimeSpec =
  | { column: string; format: TimeFormat; plus: Array<{ column: string; unit: TimeUnit }> }
  | { rowOrder: { start: string; stepMs: number } };

export type TimeResult = { ok: true; ms: number } | { ok: false; message: string };

/** Epoch ms of an ISO 8601 date or date-time; one without a zone is UTC. Null when unparseable. */
export function parseIsoUtc(raw: string): number | null {
  const s = raw.trim();
  if (!/^\d{4}-\d{2}-\d{2}/.test(s)) return null;
  const zoned = /^\d{4}-\d{2}-\d{2}$/.test(s) || /(Z|[+-]\d{2}:?\d{2})$/i.test(s);
  const ms = Date.parse(zoned ? s : `${s}Z`);
  return Number.isFinite(ms) ? ms : null;
}

/** The CSV columns an event-time spec reads, with the spec path of each. */
export function eventTimeColumns(spec: EventTimeSpec, at = 'replay.eventTime'): Array<[column: string, path: string]> {
  if ('rowOrder' in spec) return [];
  return [[spec.column, `${at}.column`], ...spec.plus.map((p, i): [string, string] => [p.column, `${at}.plus.${i}.column`])];
}

/** Compiles an event-time spec once into a function of a row and its 0-based index in the file. */
export function compileEventTime(spec: EventTimeSpec): (row: Record<string, string>, index: number) => TimeResult {
  if ('rowOrder' in spec) {
    const start = parseIsoUtc(spec.rowOrder.start);
    const step = spec.rowOrder.stepMs;
    return (_row, index) => (start === null ? { ok: false, message: `rowOrder.start "${spec.rowOrder.start}" is not a date-time` } : { ok: true, ms: start + index * step });
  }
  const { column, format, plus } = spec;
  return (row) => {
    const raw = row[column] ?? '';
    let ms: number | null;
    if (format === 'iso') ms = parseIsoUtc(raw);
    else {
      const n = raw.trim() === '' ? Number.NaN : Number(raw);
      ms = Number.isFinite(n) ? Math.round(format === 'epoch-s' ? n * 1000 : n) : null;
    }
    if (ms === null) return { ok: false, message: `${column} "${raw}" is not ${format === 'iso' ? 'a date-time' : `an ${format} number`}` };
    for (const p of plus) {
      const v = row[p.column] ?? '';
      const n = v.trim() === '' ? Number.NaN : Number(v);
      if (!Number.isFinite(n)) return { ok: false, message: `${p.column} "${v}" is not a number (of ${p.unit} added to ${column})` };
      ms += Math.round(n * TIME_UNIT_MS[p.unit]);
    }
    return { ok: true, ms };
  };
}
