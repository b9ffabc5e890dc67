import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { bootstrapInfra } from '../infra/bootstrap.js';
import { createLogger } from '../streams/logger.js';

export function registerSetupCommand(program: Command): void {
  program
    .command('setup')
    .description('create topics, apply CQL migrations and register schemas (idempotent; uses LOOPLINE_* settings)')
    .action(async () => {
      const config = loadConfig();
      const r = await bootstrapInfra(config, createLogger({ level: 'warn' }));
      console.log(`topics: ${r.topics.created.length} created, ${r.topics.existing.length} existing`);
      console.log(`migrations: ${r.migrations.applied.length} applied, ${r.migrations.alreadyApplied.length} already applied`);
      console.log(`schemas: ${r.subjects.length} subjects registered`);
    });
}
