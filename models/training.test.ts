// The off-thread trainer (models/training.ts) must not keep a process alive once its work is done:
// a CLI run (the demo, `npm start`) ends when its last job ends.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

const script = `
import { loadSpec } from '${root}/pipelines/spec.ts';
import { train, trainInProcess, TRAINING_THREADS } from '${root}/models/training.ts';
const { spec } = loadSpec('${root}/pipelines/elec2.json');
const rows = Array.from({ length: 200 }, (_, i) => ({
  values: { day: String(1 + (i % 7)), period: (i % 48) / 48, nswdemand: (i % 10) / 10, vicprice: 0.003, vicdemand: 0.4, transfer: 0.4, nswprice_prev: (i % 13) / 13, nswprice_ma48: 0.05 },
  label: i % 3 === 0 ? 'UP' : 'DOWN',
}));
const artifact = await train(spec, rows);
// More jobs than threads: they queue; one aborted while it waits or fits; the others fit as in-process.
const subsets = [rows.slice(0, 150), rows.slice(20, 170), rows.slice(40, 190), rows.slice(50, 200)];
const abort = new AbortController();
const jobs = subsets.map((rs, i) => train(spec, rs, i === 1 ? { signal: abort.signal } : {}));
abort.abort();
const settled = await Promise.allSettled(jobs);
const same = settled.map((s, i) => s.status === 'fulfilled' ? Buffer.from(s.value.onnx).equals(Buffer.from(trainInProcess(spec, subsets[i]).onnx)) : String(s.reason.message));
console.log(JSON.stringify({ trainer: artifact.trainer, rows: artifact.trainingRows, threads: TRAINING_THREADS, same }));
`;

describe('off-thread training', () => {
  it('lets the process exit on its own once its jobs are done (idle threads hold no reference); queued jobs fit as in-process, an aborted one is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopline-training-'));
    const file = path.join(dir, 'train-once.mts');
    fs.writeFileSync(file, script);
    const outcome = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
      // The kill is a fault guard, not a speed goal: a process kept alive by the thread never exits.
      const child = execFile(process.execPath, ['--import', 'tsx', file], { cwd: root, timeout: 120_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
        resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
      });
    });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(outcome.signal, outcome.stderr).toBeNull();
    expect(outcome.code, outcome.stderr).toBe(0);
    expect(JSON.parse(outcome.stdout.trim())).toEqual({ trainer: 'builtin-gbdt', rows: 200, threads: Math.min(2, os.availableParallelism()), same: [true, 'training aborted', true, true] });
  }, 150_000);
});
