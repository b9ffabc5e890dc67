import fs from 'node:fs';
import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { bootstrapInfra } from '../infra/bootstrap.js';
import { setupSpec } from '../infra/spec-setup.js';
import { loadSpec } from '../pipelines/spec.js';
import { createLogger } from '../streams/logger.js';

export function registerSetupCommand(program: Command): void {
  program
    .command('setup')
    .description('create topics, grant worker ACLs (over SASL), apply CQL migrations and register schemas (idempotent; uses LOOPLINE_* settings; run as an admin)')
    .option('--spec <file>', 'also apply this version of a pipeline spec: refused (exit 1, with the reasons) when a serving model would no longer fit it, else recorded as the next spec version (infra/spec-setup.ts)')
    .action(async (o: { spec?: string }) => {
      const config = loadConfig();
      if (o.spec) {
        const { spec } = loadSpec(o.spec);
        const s = await setupSpec(config, spec, fs.readFileSync(o.spec, 'utf8'), createLogger({ level: 'warn' }));
        console.log(`spec ${spec.name}: ${s.summary}`);
        if (s.outcome === 'refused') {
          console.log(`refused (spec version ${s.appliedVersion ?? 'none'} stays applied; the loop keeps serving):`);
          for (const p of s.problems) console.log(`  ${p}`);
          process.exitCode = 1;
        } else console.log(s.created ? `recorded as spec version ${s.version}; restart the workers to serve it` : `unchanged: spec version ${s.version}`);
        return;
      }
      const r = await bootstrapInfra(config, createLogger({ level: 'warn' }));
      console.log(`topics: ${r.topics.created.length} created, ${r.topics.existing.length} existing`);
      if (config.kafka.sasl) console.log(`worker ACLs: ${r.acls} bindings for prefix "${config.kafka.topicPrefix}" (one principal per worker; streams/acls.ts)`);
      console.log(`migrations: ${r.migrations.applied.length} applied, ${r.migrations.alreadyApplied.length} already applied`);
      console.log(`schemas: ${r.subjects.length} subjects registered`);
    });
}
