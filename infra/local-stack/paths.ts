/**
 * Where the local stack keeps its artifacts, data and logs. Everything lives
 * under `<project>/.infra` (git-ignored) unless LOOPLINE_STACK_HOME says otherwise.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface StackPaths {
  /** Root of all generated state. */
  home: string;
  /** Maven-fetched runtime classpaths, one folder per server. */
  lib: (server: 'kafka' | 'cassandra') => string;
  /** The unpacked schema registry distribution. */
  registryDist: string;
  /** Root of the run folders (a second stack, e.g. in a test, uses its own). */
  runRoot: string;
  /** Per-server run folder: generated config, data, logs, pid file. */
  run: (service: string) => string;
  /** Checked-in templates (poms, logging configs). */
  templates: string;
}

export function stackPaths(
  home = process.env.LOOPLINE_STACK_HOME ?? path.join(projectRoot, '.infra'),
  runRoot = path.join(home, 'run'),
): StackPaths {
  return {
    runRoot,
    home,
    lib: (server) => path.join(home, server, 'lib'),
    registryDist: path.join(home, 'apicurio'),
    run: (service) => path.join(runRoot, service),
    templates: path.join(projectRoot, 'infra'),
  };
}
