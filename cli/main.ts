/**
 * The loopline command line: one entry for the local stack, set-up, workers,
 * replay, models, dead letters, status, the dashboard and the demo. `--help`
 * on every command; bare `loopline` prints the help.
 *
 *   npm start                      # the demo (cli/start.ts: `npm start` with no arguments runs `demo`)
 *   npm start -- stack up|down|status
 *   npm start -- status --json
 *
 * Exit codes: 0 done; 1 an error (the message says what failed); 2 a usage
 * error (an unknown command or option, a bad option value), and for `run`, a
 * worker that failed and will not restart; 3 a server that does not answer
 * (`stack status`, `status`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { registerStackCommands } from './stack.js';
import { registerSetupCommand } from './setup.js';
import { registerDemoCommand } from './demo.js';
import { registerModelCommands } from './models.js';
import { registerRunCommand } from './workers.js';
import { registerReplayCommand } from './replay.js';
import { registerStatusCommand } from './status.js';
import { registerDlqCommands } from './dlq.js';
import { registerDashboardCommand } from './dashboard.js';
import { registerCleanCommand } from './clean.js';
import { registerSpecCommands } from './spec-check.js';
import { redactText } from '../streams/redact.js';

export const EXIT = { ok: 0, error: 1, usage: 2, unavailable: 3 } as const;

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
export const VERSION = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command('loopline')
    .description('Loopline: keeps an ML model useful in production on Kafka and Cassandra')
    .version(VERSION, '-V, --version', 'print the version')
    .showHelpAfterError()
    .enablePositionalOptions()
    .exitOverride();
  program.addHelpText('after', '\nExit codes: 0 ok, 1 error, 2 usage error (and `run`: a worker failed), 3 a server does not answer (`status`, `stack status`).');
  registerDemoCommand(program);
  registerStackCommands(program);
  registerSetupCommand(program);
  registerModelCommands(program);
  registerRunCommand(program);
  registerReplayCommand(program);
  registerStatusCommand(program);
  registerDlqCommands(program);
  registerDashboardCommand(program);
  registerSpecCommands(program);
  registerCleanCommand(program);
  return program;
}

/** Runs the CLI on `argv` (node, script, args…) and exits with the documented code. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  if (argv.length <= 2) {
    program.outputHelp();
    return;
  }
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    fail(err);
  }
}

function fail(err: unknown): never {
  if (err instanceof CommanderError) {
    // Help and version exit 0; commander has already printed the problem and the help.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' || err.exitCode === 0) process.exit(EXIT.ok);
    if (err.code.startsWith('commander.')) {
      // An InvalidArgumentError thrown by an action (not by commander's parser) is not printed yet.
      if (!/^error: /.test(err.message)) console.error(`loopline: ${err.message}`);
      process.exit(EXIT.usage);
    }
  }
  // Not through the logger, so scrubbed here: a library's message may quote a URL with credentials.
  console.error(`loopline: ${redactText(err instanceof Error ? err.message : String(err))}`);
  process.exit(EXIT.error);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void main(process.argv);
