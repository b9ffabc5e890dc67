// One shape for every worker: each worker of consumers/index.ts has a flow
// test beside it that runs its definition on the in-memory harness
// (streams/testing.ts `runFlow`), so a new worker cannot arrive without one.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { WORKER_NAMES, WORKERS } from '../consumers/index.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The exported name of each worker's definition in its index.ts (`export const scorer = defineWorker(…)`). */
function definitionExport(worker: string): string {
  const text = fs.readFileSync(path.join(ROOT, 'consumers', worker, 'index.ts'), 'utf8');
  const m = /export const (\w+) = defineWorker\(/.exec(text);
  if (!m) throw new Error(`consumers/${worker}/index.ts does not export a defineWorker(…) definition`);
  return m[1]!;
}

describe('every worker has a flow test on the in-memory harness', () => {
  it('lists the workers', () => {
    expect(WORKERS.map((w) => w.name)).toEqual(WORKER_NAMES);
    expect(WORKER_NAMES).toHaveLength(9);
  });

  it.each(WORKER_NAMES)('%s', (worker) => {
    const dir = path.join(ROOT, 'consumers', worker);
    const name = definitionExport(worker);
    const flows = fs.readdirSync(dir).filter((f) => f.endsWith('.test.ts')).filter((f) => {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      return /from '\.\.\/\.\.\/streams\/testing\.js'/.test(text) && new RegExp(`runFlow\\(\\s*${name}\\b`).test(text) && /createMemoryStores\(/.test(text);
    });
    expect(flows, `consumers/${worker}/ needs a *.test.ts that runs runFlow(${name}, …) on createMemoryStores()`).not.toEqual([]);
  });
});
