/**
 * `loopline spec check <file>`: validates a pipeline spec and its replay CSV
 * and prints every problem by field path (pipelines/spec-check.ts). Exit
 * code 0 when both are valid, 1 otherwise.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { parseCsv } from '../producers/csv.js';
import { checkReplayRows, checkSpecValue, type SpecProblem } from '../pipelines/spec-check.js';

export function registerSpecCommands(program: Command): void {
  const spec = program.command('spec').description('pipeline specs');
  spec
    .command('check <file>')
    .description('validate a pipeline spec and its replay CSV; print every problem by field path')
    .option('--json', 'print one JSON object alone on stdout')
    .option('--no-csv', 'check the spec alone')
    .action((file: string, o: { json?: boolean; csv: boolean }) => {
      const problems: SpecProblem[] = [];
      let rows: number | null = null;
      let more: Record<string, number> = {};
      let raw: unknown;
      try {
        raw = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (err) {
        problems.push({ path: '(file)', message: (err as Error).message });
      }
      if (problems.length === 0) {
        const r = checkSpecValue(raw);
        problems.push(...r.problems);
        if (r.spec?.replay && o.csv) {
          const csvFile = path.resolve(path.dirname(path.resolve(file)), r.spec.replay.csv);
          try {
            const data = parseCsv(fs.readFileSync(csvFile, 'utf8'), csvFile);
            const c = checkReplayRows(r.spec, data);
            rows = c.rows;
            more = c.more;
            problems.push(...c.problems);
          } catch (err) {
            problems.push({ path: 'replay.csv', message: `${csvFile}: ${(err as Error).message}` });
          }
        }
      }
      if (o.json) console.log(JSON.stringify({ file, valid: problems.length === 0, csvRows: rows, problems, more }));
      else if (problems.length === 0) console.log(`${file}: valid${rows === null ? '' : `; replay CSV ${rows} rows, no problems`}`);
      else {
        console.log(`${file}: ${problems.length + Object.values(more).reduce((a, b) => a + b, 0)} problems`);
        for (const p of problems) console.log(`  ${p.path}: ${p.message}`);
        for (const [kind, n] of Object.entries(more)) console.log(`  … and ${n} more of ${kind}`);
      }
      if (problems.length > 0) process.exitCode = 1;
    });
}
