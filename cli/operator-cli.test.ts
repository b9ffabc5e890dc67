import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from 'commander';
import { checkReplayRows, checkSpecValue } from '../pipelines/spec-check.js';
import { loadSpec } from '../pipelines/spec.js';
import { parseOffsets } from './dlq.js';
import { choiceOption, intOption, numberOption } from './options.js';
import { buildProgram } from './main.js';

describe('option parsers', () => {
  it('name the option in the error', () => {
    expect(intOption('--rows', 1)('40')).toBe(40);
    expect(() => intOption('--rows', 1)('0')).toThrow(/--rows must be an integer in 1\.\./);
    expect(() => intOption('--rows', 1)('4e3')).toThrow(InvalidArgumentError);
    expect(numberOption('--events-per-second', 0, 1e6, true)('2.5')).toBe(2.5);
    expect(() => numberOption('--events-per-second', 0, 1e6, true)('0')).toThrow(/--events-per-second must be a number above 0/);
    expect(() => choiceOption('--report', ['text', 'json'])('xml')).toThrow(/--report must be one of text, json/);
  });

  it('dlq offsets: partition/offset, ranges, lists', () => {
    expect(parseOffsets('3,1/7-9')).toEqual([{ partition: 0, from: 3n, to: 3n }, { partition: 1, from: 7n, to: 9n }]);
    expect(() => parseOffsets('x')).toThrow(/not an offset/);
    expect(() => parseOffsets('0/9-7')).toThrow(/ends before/);
  });
});

describe('the command tree', () => {
  it('has the operator commands, and every hint in a message names a command that exists', () => {
    const program = buildProgram();
    const names = program.commands.map((c) => c.name());
    expect(names).toEqual(expect.arrayContaining(['demo', 'status', 'dlq', 'dashboard', 'spec', 'clean', 'models', 'run', 'replay', 'stack', 'setup', 'train']));
    const paths = new Set<string>();
    const walk = (c: typeof program, prefix: string) => {
      for (const s of c.commands) {
        paths.add(`${prefix}${s.name()}`);
        walk(s, `${prefix}${s.name()} `);
      }
    };
    walk(program, '');
    // Every `loopline …` and `npm start -- …` the sources quote (error hints, help texts) names a command that exists.
    const files = ['cli', 'ops', 'consumers', 'models', 'store', 'streams', 'schemas', 'infra', 'producers', 'pipelines', 'dashboard'].flatMap((d) =>
      (fs.readdirSync(d, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => path.join(d, f)));
    const hints = new Set<string>();
    for (const f of files) {
      for (const m of fs.readFileSync(f, 'utf8').matchAll(/`(?:loopline|npm start --) ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?/g)) hints.add(m[2] && paths.has(`${m[1]} ${m[2]}`) ? `${m[1]} ${m[2]}` : m[1]!);
    }
    expect(hints.size).toBeGreaterThan(5);
    for (const hint of hints) expect(paths, hint).toContain(hint);
  });
});

describe('spec check', () => {
  it('names every spec problem by its path', () => {
    const { problems } = checkSpecValue({ name: 'Bad Name', task: 'binary' });
    expect(problems.map((p) => p.path)).toEqual(expect.arrayContaining(['name', 'entity', 'events', 'model', 'label']));
  });

  it('names CSV problems by line and spec path', () => {
    const { spec } = loadSpec('pipelines/elec2.json');
    const good = { event_id: 'e1', event_time: '1996-05-07T00:00:00', day: '2', period: '0', nswprice: '0.05', nswdemand: '0.4', vicprice: '0.003', vicdemand: '0.4', transfer: '0.4', class: 'UP' };
    const missing = checkReplayRows(spec, [{ ...good, class: undefined } as unknown as Record<string, string>].map(({ class: _c, ...r }) => r));
    expect(missing.problems[0]?.path).toBe('replay.label');
    const rows = checkReplayRows(spec, [good, { ...good, event_time: 'yesterday', period: 'noon', class: 'SIDEWAYS' }, { ...good }]);
    const messages = rows.problems.map((p) => `${p.path}: ${p.message}`);
    expect(messages.some((m) => m.startsWith('csv line 3') && m.includes('replay.eventTime'))).toBe(true);
    expect(messages.some((m) => m.startsWith('csv line 3') && m.includes('events.fields.period is numeric'))).toBe(true);
    expect(messages.some((m) => m.startsWith('csv line 3') && m.includes('label.classes'))).toBe(true);
    expect(messages.some((m) => m.startsWith('csv line 4') && m.includes('repeats line 2'))).toBe(true);
  });
});
