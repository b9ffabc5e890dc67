/**
 * Fetches the servers' runtime classpaths from Maven Central with the
 * project's own poms (infra/kafka/pom.xml, infra/cassandra/pom.xml) and the
 * schema registry distribution. Artifacts are cached twice: in ~/.m2 by Maven
 * and under .infra by us, with a marker holding the pom's hash, so a second
 * run does nothing and a changed pom re-fetches.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { StackPaths } from './paths.js';

const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.6.1';
/** Apicurio Registry, a Confluent-compatible schema registry (API under /apis/ccompat/v7). */
export const REGISTRY_ARTIFACT = 'io.apicurio:apicurio-registry-app:2.6.13.Final:zip:all';

export type ProgressFn = (message: string) => void;

export class ArtifactFetchError extends Error {
  readonly retriable = true;
  constructor(what: string, detail: string) {
    super(`fetching ${what} from Maven Central failed: ${detail}`);
    this.name = 'ArtifactFetchError';
  }
}

interface Fetch {
  name: string;
  target: string;
  fingerprint: string;
  args: string[];
}

function fetches(paths: StackPaths): Fetch[] {
  const list: Fetch[] = [];
  for (const server of ['kafka', 'cassandra'] as const) {
    const pom = path.join(paths.templates, server, 'pom.xml');
    list.push({
      name: server,
      target: paths.lib(server),
      fingerprint: sha256(fs.readFileSync(pom)),
      args: ['-f', pom, `${DEPENDENCY_PLUGIN}:copy-dependencies`, '-DincludeScope=runtime', `-DoutputDirectory=${paths.lib(server)}`],
    });
  }
  list.push({
    name: 'schema-registry',
    target: paths.registryDist,
    fingerprint: sha256(REGISTRY_ARTIFACT),
    args: [
      `${DEPENDENCY_PLUGIN}:unpack`,
      `-Dartifact=${REGISTRY_ARTIFACT}`,
      `-DoutputDirectory=${paths.registryDist}`,
      // Unpack markers default to ./target of the working directory: keep them with the output.
      `-DmarkersDirectory=${path.join(paths.registryDist, '.markers')}`,
    ],
  });
  return list;
}

function sha256(data: string | Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

const MARKER = '.loopline-complete';

function readMarker(dir: string): string | null {
  try {
    return fs.readFileSync(path.join(dir, MARKER), 'utf8').trim();
  } catch {
    return null;
  }
}

/** Fetches whatever is missing; reports progress as artifacts download. */
export async function ensureArtifacts(paths: StackPaths, progress: ProgressFn = () => {}): Promise<void> {
  const missing = fetches(paths).filter((f) => readMarker(f.target) !== f.fingerprint);
  // In parallel: downloads are network-bound, and the three sets share little.
  await Promise.all(
    missing.map(async (f) => {
      fs.rmSync(f.target, { recursive: true, force: true });
      fs.mkdirSync(f.target, { recursive: true });
      progress(`${f.name}: fetching from Maven Central (first run only)`);
      await runMaven(f, paths.home, progress);
      fs.writeFileSync(path.join(f.target, MARKER), f.fingerprint);
      progress(`${f.name}: ${fs.readdirSync(f.target).length - 1} files ready`);
    }),
  );
}

function runMaven(f: Fetch, cwd: string, progress: ProgressFn): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('mvn', ['-B', '-ntp', ...f.args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    let files = 0;
    let lastReport = 0;
    const onLine = (line: string): void => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      if (/Copying |Unpacking /.test(line)) files += 1;
      const now = Date.now();
      if (files > 0 && now - lastReport > 5000) {
        lastReport = now;
        progress(`${f.name}: ${files} artifacts copied`);
      }
    };
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      lines.forEach(onLine);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => reject(new ArtifactFetchError(f.name, `cannot run mvn (${err.message}); is Maven installed?`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new ArtifactFetchError(f.name, `mvn exited with ${code}:\n${tail.filter((l) => /ERROR/.test(l)).join('\n')}`));
    });
  });
}
