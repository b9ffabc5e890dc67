/**
 * `npm run test:faults`: the fault suite, from nothing. Starts its own local
 * stack (test/faults/fault-stack.ts: its own ports and run folder, never the
 * shared stack), runs each case of test/faults/cases.ts with a logged seed on
 * a real multi-process run, checks it, stops the stack, and ends with one
 * stdout line:
 *
 *   FAULTS_JSON {"cases":[{"name","in","logged","deadLettered","lost","duplicates","recoveryMs",…}]}
 *
 * Exit status 1 if any case lost or duplicated a record or failed a check.
 *
 *   npm run test:faults                          # every case, a random suite seed
 *   npm run test:faults -- --seed 42             # the same moments again
 *   npm run test:faults -- --cases kill-9:scorer,zombie-scorer
 *   npm run test:faults -- --keep-stack          # leave the fault stack running afterwards
 *   npm run test:faults -- --cluster             # the cluster cases, on three Kafka and three Cassandra nodes
 *
 * A case's seed is derived from the suite seed and the case's name, so one
 * case can be rerun alone with the same moments (`--seed` plus `--cases`).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../../infra/local-stack/paths.js';
import { CASES, CLUSTER_CASES } from './cases.js';
import { createFaultStack } from './fault-stack.js';
import { runCase, type CaseResult } from './harness.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const suiteSeed = arg('--seed') !== undefined ? Number(arg('--seed')) : crypto.randomInt(1, 2 ** 31 - 1);
const only = arg('--cases')?.split(',').map((s) => s.trim()).filter(Boolean);
const keepStack = process.argv.includes('--keep-stack');
const cluster = process.argv.includes('--cluster');
const suite = cluster ? CLUSTER_CASES : CASES;
const caseSeed = (name: string) => crypto.createHash('sha256').update(`${suiteSeed}/${name}`).digest().readUInt32BE(0);

const stamp = () => new Date().toISOString().slice(11, 19);
const log = (m: string) => console.log(`${stamp()} ${m}`);

async function main(): Promise<number> {
  const unknown = (only ?? []).filter((n) => !suite.some((c) => c.name === n));
  if (unknown.length > 0) throw new Error(`unknown case ${unknown.join(', ')}; the ${cluster ? 'cluster ' : ''}cases are ${suite.map((c) => c.name).join(', ')}`);
  const cases = suite.filter((c) => !only || only.includes(c.name));
  const runId = `${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}-${suiteSeed}`;
  const logDir = path.join(projectRoot, '.infra', 'faults', runId);
  fs.mkdirSync(logDir, { recursive: true });
  log(`fault suite${cluster ? ' (cluster)' : ''}: seed ${suiteSeed}, ${cases.length} cases, ${os.cpus().length} cores, logs in ${logDir}`);

  const stack = createFaultStack((m) => log(`stack: ${m}`), { cluster });
  const started = Date.now();
  const results: CaseResult[] = [];
  try {
    const a = await stack.up();
    log(`fault stack up: kafka ${a.kafkaBrokers.join(',')}, cassandra ${a.cassandraContactPoints.join(',')} (commitlog_sync ${stack.commitlog}), registry ${a.schemaRegistryUrl}`);
    for (const c of cases) {
      const seed = caseSeed(c.name);
      log(`case ${c.name} (seed ${seed}): ${c.summary}`);
      let r: CaseResult;
      try {
        r = await runCase(c, seed, { stack, logDir, metricsPortBase: 25500, log });
      } catch (err) {
        r = { name: c.name, seed, in: 0, logged: 0, deadLettered: 0, lost: 0, duplicates: 0, recoveryMs: null, passed: false, failures: [`harness error: ${(err as Error).stack ?? err}`], wallMs: 0, scoring: null, loop: null, restarts: {}, details: {} };
      }
      results.push(r);
      log(`case ${c.name}: ${r.passed ? 'PASS' : 'FAIL'} in ${Math.round(r.wallMs / 1000)} s — in ${r.in}, logged ${r.logged}, dead-lettered ${r.deadLettered}, lost ${r.lost}, duplicates ${r.duplicates}, recovery ${r.recoveryMs ?? '-'} ms`);
      for (const f of r.failures) log(`  ✗ ${f}`);
      log(`  scoring ${JSON.stringify(r.scoring)}`);
      log(`  loop ${JSON.stringify(r.loop)}`);
      log(`  details ${JSON.stringify(r.details)}`);
      fs.writeFileSync(path.join(logDir, 'results.json'), JSON.stringify({ seed: suiteSeed, results }, null, 2));
      // Make sure the stack is whole for the next case, whatever this one left behind.
      for (const s of stack.serviceNames) {
        const pid = stack.pidOf(s);
        if (pid !== null) process.kill(pid, 'SIGCONT');
      }
      await stack.start();
    }
  } finally {
    if (!keepStack) {
      log('stopping the fault stack');
      await stack.down().catch((err: unknown) => log(`stopping the fault stack failed: ${(err as Error).message}`));
    }
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log('');
  console.log('| case | in | logged | dead-lettered | lost | duplicates | recovery ms | joined once / joinable | reports | aborted predictions | log rows from another attempt | worker process exits | result |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|');
  for (const r of results) {
    const exits = Object.entries(r.details.crashExits as Record<string, unknown[]> ?? {}).map(([p, e]) => `${p}: ${e.join(',')}`).join('; ') || '-';
    console.log(`| ${r.name} | ${r.in} | ${r.logged} | ${r.deadLettered} | ${r.lost} | ${r.duplicates} | ${r.recoveryMs ?? '-'} | ${r.loop ? `${r.loop.joined} / ${r.loop.joinable}` : '-'} | ${r.loop?.reports ?? '-'} | ${r.scoring?.abortedPredictions ?? '-'} | ${r.scoring?.logMismatches ?? '-'} | ${exits} | ${r.passed ? 'pass' : 'FAIL'} |`);
  }
  console.log(`\nfault suite seed ${suiteSeed}: ${results.filter((r) => r.passed).length}/${results.length} passed in ${minutes} min on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown cpu'}), logs in ${logDir}`);
  const json = {
    seed: suiteSeed,
    topology: stack.topology,
    minutes: Number(minutes),
    cases: results.map((r) => ({ name: r.name, seed: r.seed, in: r.in, logged: r.logged, deadLettered: r.deadLettered, lost: r.lost, duplicates: r.duplicates, recoveryMs: r.recoveryMs, passed: r.passed })),
  };
  console.log(`FAULTS_JSON ${JSON.stringify(json)}`);
  return results.every((r) => r.passed) && results.length === cases.length ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    console.log(`FAULTS_JSON ${JSON.stringify({ seed: suiteSeed, error: String((err as Error).message ?? err), cases: [] })}`);
    process.exit(1);
  },
);
