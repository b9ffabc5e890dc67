import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { bootstrapInfra } from '../infra/bootstrap.js';
import { createLogger } from '../streams/logger.js';

export function registerSetupCommand(program: Command): void {
  program
    .command('setup')
    .description('create topics, grant worker ACLs (over SASL), apply CQL migrations and register schemas (idempotent; uses LOOPLINE_* settings; run as an admin)')
    .action(async () => {
      const config = loadConfig();
      const r = await bootstrapInfra(config, createLogger({ level: 'warn' }));
      console.log(`topics: ${r.topics.created.length} created, ${r.topics.existing.length} existing`);
      if (config.kafka.sasl) console.log(`worker ACLs: ${r.acls} bindings for prefix "${config.kafka.topicPrefix}" (one principal per worker; streams/acls.ts)`);
      console.log(`migrations: ${r.migrations.applied.length} applied, ${r.migrations.alreadyApplied.length} already applied`);
      console.log(`schemas: ${r.subjects.length} subjects registered`);
    });
}
