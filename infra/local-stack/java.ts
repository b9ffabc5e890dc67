/**
 * Finds a Java runtime of a supported major version. Cassandra 5.0 runs on
 * Java 11 or 17 only (it installs a SecurityManager, which Java 24+ removed),
 * so the stack never just takes whatever `java` is first on the PATH.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export class JavaNotFoundError extends Error {
  readonly retriable = false;
  constructor(wanted: number[], tried: string[]) {
    super(`no Java ${wanted.join(' or ')} found (tried: ${tried.join(', ') || 'nothing'}); install OpenJDK 17 or set LOOPLINE_JAVA_HOME`);
    this.name = 'JavaNotFoundError';
  }
}

function majorVersion(javaBin: string): number | null {
  const res = spawnSync(javaBin, ['-XshowSettings:properties', '-version'], { encoding: 'utf8' });
  if (res.error) return null;
  return parseMajor(`${res.stdout}${res.stderr}`);
}

function parseMajor(text: string): number | null {
  const m = /java\.specification\.version = (\d+)/.exec(text);
  return m?.[1] ? Number(m[1]) : null;
}

function candidates(): string[] {
  const found: string[] = [];
  if (process.env.LOOPLINE_JAVA_HOME) found.push(path.join(process.env.LOOPLINE_JAVA_HOME, 'bin', 'java'));
  if (process.env.JAVA_HOME) found.push(path.join(process.env.JAVA_HOME, 'bin', 'java'));
  found.push('java');
  const jvmDir = '/usr/lib/jvm';
  if (fs.existsSync(jvmDir)) {
    for (const entry of fs.readdirSync(jvmDir).sort()) found.push(path.join(jvmDir, entry, 'bin', 'java'));
  }
  return found;
}

const cache = new Map<string, string>();

/** The first Java binary whose major version is in `wanted`, in preference order. */
export function findJava(wanted: number[] = [17, 11]): string {
  const key = wanted.join(',');
  const hit = cache.get(key);
  if (hit) return hit;
  const tried: string[] = [];
  for (const bin of candidates()) {
    if (bin !== 'java' && !fs.existsSync(bin)) continue;
    const major = majorVersion(bin);
    tried.push(`${bin}${major ? ` (${major})` : ''}`);
    if (major !== null && wanted.includes(major)) {
      cache.set(key, bin);
      return bin;
    }
  }
  throw new JavaNotFoundError(wanted, tried);
}
