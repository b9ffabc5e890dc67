/**
 * The README's generated sections, from the worker definitions and the topic
 * catalogue, so they cannot go stale: the topology (each worker's input and
 * outputs), the worker table (state, tables, what it does) and the worker
 * settings with their environment variables and defaults.
 *
 *   npm run gen:docs        # rewrites the marked sections of README.md
 *
 * `cli/docs.test.ts` fails while README.md differs from what this writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WORKERS } from '../consumers/index.js';
import { envKey, RUNTIME_SETTINGS, type Setting } from '../streams/definition.js';
import { TOPICS } from '../streams/topics.js';
import { Registry } from 'prom-client';
import type { Command } from 'commander';
import { specReferenceTable } from '../pipelines/spec-docs.js';
import { DEAD_LETTER_HEADERS } from '../ops/dead-letters.js';
import { createWorkerMetrics } from '../streams/metrics.js';
import { buildProgram } from './main.js';

const inputsOf = (d: (typeof WORKERS)[number]) => d.input.topics.map((t) => t.topic);

export function topologyText(): string {
  const lines = WORKERS.map((d) => {
    const input = inputsOf(d).join(' + ');
    const outs = d.outputs.length ? ` ──▶ ${d.outputs.join(', ')}` : '';
    const tables = d.tables.writes.length ? `   (Cassandra: ${d.tables.writes.join(', ')})` : '';
    return `${input} ──▶ [${d.name}]${outs}${tables}`;
  });
  return ['```', ...lines, '```'].join('\n');
}

export function workerTable(): string {
  const rows = WORKERS.map((d) => `| ${d.name} | ${inputsOf(d).map((t) => `\`${t}\``).join(', ')}${d.input.copartitioned ? ' (co-partitioned)' : ''} | ${d.outputs.map((t) => `\`${t}\``).join(', ') || '—'} | ${d.tables.writes.map((t) => `\`${t}\``).join(', ') || '—'} | ${d.state} | ${d.doc} |`);
  return ['| worker | reads | writes (topics) | writes (tables) | state | what it does |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

function range(s: Setting<unknown>): string {
  if (s.choices) return s.choices.join(', ');
  if (s.kind === 'boolean') return 'true, false';
  return `${s.min}..${s.max}`;
}

export function settingsTable(): string {
  const rows: string[] = [];
  for (const [k, s] of Object.entries(RUNTIME_SETTINGS)) {
    const overrides = WORKERS.filter((d) => d.runtime?.[k as keyof typeof RUNTIME_SETTINGS] !== undefined).map((d) => `${d.name} ${d.runtime![k as keyof typeof RUNTIME_SETTINGS]}`);
    rows.push(`| \`${envKey('worker', k)}\` (or \`LOOPLINE_<WORKER>_${envKey('x', k).slice('LOOPLINE_X_'.length)}\`) | ${s.default}${overrides.length ? ` (${overrides.join(', ')})` : ''} | ${range(s)} | every worker: ${s.doc} |`);
  }
  for (const d of WORKERS) for (const [k, s] of Object.entries(d.settings as Record<string, Setting<unknown>>)) rows.push(`| \`${envKey(d.name, k)}\` | ${String(s.default)} | ${range(s)} | ${d.name}: ${s.doc} |`);
  return ['| variable | default | allowed | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

export function topicTable(): string {
  const rows = TOPICS.filter((t) => !t.name.endsWith('.dlq')).map((t) => `| \`${t.name}\` | ${t.partitions} | ${t.key} | ${t.values.join(', ')} | ${t.deadLetter ? `\`${t.deadLetter}\`` : '—'} | ${t.doc} |`);
  return ['| topic | partitions | key | records | dead letters | what it carries |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

/** Every metric the runtime and the workers register, from a registry they register on. */
export function metricsTable(): string {
  const registry = new Registry();
  createWorkerMetrics(registry);
  for (const d of WORKERS) d.createMetrics(registry);
  const rows = registry.getMetricsAsArray().map((m) => {
    const labels = ((m as unknown as { labelNames?: string[] }).labelNames ?? []).map((l) => `\`${l}\``).join(', ');
    return `| \`${m.name}\` | ${m.type} | ${labels || '—'} | ${m.help} |`;
  });
  return ['| metric | type | labels | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

export function deadLetterHeaderTable(): string {
  return ['| header | what it holds |', '|---|---|', ...Object.entries(DEAD_LETTER_HEADERS).map(([h, d]) => `| \`${h}\` | ${d} |`)].join('\n');
}

/** Every command with its arguments and options, from the CLI's own definitions. */
export function commandTable(): string {
  const rows: string[] = [];
  const walk = (c: Command, prefix: string) => {
    for (const s of c.commands) {
      const name = `${prefix}${s.name()}`;
      if (s.commands.length === 0) {
        const args = s.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)).join(' ');
        const opts = s.options.map((o) => `\`${o.flags}\``).join(' ');
        rows.push(`| \`loopline ${name}${args ? ` ${args}` : ''}\` | ${opts || '—'} | ${s.description().replaceAll('|', '\\|')} |`);
      }
      walk(s, `${name} `);
    }
  };
  walk(buildProgram(), '');
  return ['| command | options | what it does |', '|---|---|---|', ...rows].join('\n');
}

export const SECTIONS: Record<string, () => string> = {
  topology: topologyText, workers: workerTable, 'worker-settings': settingsTable, topics: topicTable,
  'spec-reference': specReferenceTable, metrics: metricsTable, 'dead-letter-headers': deadLetterHeaderTable, commands: commandTable,
};

/** README text with every `<!-- generated:X -->…<!-- /generated:X -->` section rewritten. */
export function renderReadme(readme: string): string {
  let out = readme;
  for (const [name, fn] of Object.entries(SECTIONS)) {
    const re = new RegExp(`(<!-- generated:${name} -->\\n)[\\s\\S]*?(\\n<!-- /generated:${name} -->)`);
    if (!re.test(out)) throw new Error(`README.md has no <!-- generated:${name} --> section`);
    out = out.replace(re, (_m, a: string, b: string) => `${a}${fn()}${b}`);
  }
  return out;
}

export const readmePath = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md');

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const before = fs.readFileSync(readmePath, 'utf8');
  const after = renderReadme(before);
  fs.writeFileSync(readmePath, after);
  console.log(after === before ? 'README.md is up to date' : 'README.md sections rewritten');
}
