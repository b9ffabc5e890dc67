/**
 * The loopline command line: one entry for the local stack, set-up, workers,
 * replay, models and the demo. `--help` on every command.
 *
 *   npm start                      # the demo: the whole loop on the local stack (default command)
 *   npm start -- stack up|down|status
 *   npm start -- setup             # topics, migrations, schemas (idempotent)
 */
import { Command } from 'commander';
import { registerStackCommands } from './stack.js';
import { registerSetupCommand } from './setup.js';
import { registerDemoCommand } from './demo.js';
import { registerModelCommands } from './models.js';
import { registerRunCommand } from './workers.js';
import { registerReplayCommand } from './replay.js';
import { redactText } from '../streams/redact.js';

export function buildProgram(): Command {
  const program = new Command('loopline')
    .description('Loopline: keeps an ML model useful in production on Kafka and Cassandra')
    .showHelpAfterError()
    .enablePositionalOptions();
  registerDemoCommand(program);
  registerStackCommands(program);
  registerSetupCommand(program);
  registerModelCommands(program);
  registerRunCommand(program);
  registerReplayCommand(program);
  return program;
}

const program = buildProgram();
program.parseAsync(process.argv).catch((err: unknown) => {
  // Not through the logger, so scrubbed here: a library's message may quote a URL with credentials.
  console.error(`loopline: ${redactText(err instanceof Error ? err.message : String(err))}`);
  process.exit(1);
});
