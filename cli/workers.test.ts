import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerRunCommand } from './workers.js';

describe('loopline run', () => {
  it('binds the ops server to loopback unless --metrics-host says otherwise', () => {
    const program = new Command();
    registerRunCommand(program);
    const run = program.commands.find((c) => c.name() === 'run')!;
    const host = run.options.find((o) => o.long === '--metrics-host')!;
    expect(host.defaultValue).toBe('127.0.0.1');
    expect(run.helpInformation()).toMatch(/--metrics-host <host>/);
  });
});
