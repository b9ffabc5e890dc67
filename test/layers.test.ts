// The layering of the codebase, checked on every product file's imports. A
// folder may import only its own layer and those below it, bottom first:
//
//   core < schemas < config < pipelines < stats < models < streams < store < consumers < producers < study < infra < ops < dashboard < cli
//
// Imports are read with the TypeScript parser: `import … from`, `export … from`,
// side-effect imports, type-only imports, `import('…')` expressions and types.
// Files under test/ may import anything; a `*.test.ts` file
// follows its folder's layer but may also import test support. Only store/
// talks to Cassandra (cassandra-driver); only streams/, infra/, ops/,
// dashboard/, cli/ and tests talk to Kafka (kafkajs).
//
// Known violations are listed below, each with its reason, for the lead to
// remove; a listed exception that no longer occurs fails the test too, so the
// list never goes stale.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

export const LAYERS = ['core', 'schemas', 'config', 'pipelines', 'stats', 'models', 'streams', 'store', 'consumers', 'producers', 'study', 'infra', 'ops', 'dashboard', 'cli'] as const;
/** Folders whose files may import anything. */
const FREE = ['test'];
/** Folders with no TypeScript of the loop (nothing to check). */
const NOT_CODE = new Set(['node_modules', 'trainers', 'bin', 'pipelines/data']);
/** What a `*.test.ts` file may import from any layer. */
const TEST_SUPPORT = [/^test\/support\//, /^test\/data\//, /^models\/test-support\.ts$/, /^streams\/testing\.ts$/, /^store\/memory\.ts$/];

/** Packages only some folders may import. */
const PACKAGE_HOMES: Record<string, readonly string[]> = {
  'cassandra-driver': ['store', ...FREE],
  kafkajs: ['streams', 'infra', 'ops', 'dashboard', 'cli', ...FREE],
};

/** `importer -> imported` (repository paths), each with why it is tolerated for now. */
const KNOWN_EXCEPTIONS: Record<string, string> = {
  'config/config.ts -> streams/redact.ts': 'redact.ts is a pure helper (no I/O) shared by the logger, config and the registry client; it belongs in core/',
  'schemas/registry-client.ts -> streams/redact.ts': 'as above: redact.ts belongs in core/',
  'schemas/register.ts -> streams/topics.ts': 'registering the schemas walks the topic catalogue (streams/topics.ts); its only user is infra/bootstrap.ts, so it belongs in streams/ or infra/',
  'consumers/drift-monitor/sea.test.ts -> producers/csv.ts': 'the SEA fixture is read with the replayer\'s CSV parser; a CSV reader for tests belongs in test/support',
  'models/external-trainer.test.ts -> producers/csv.ts': 'training rows from the Elec2 replay; belongs in test/support (see test/support/elec2.ts)',
  'models/external-trainer.test.ts -> producers/replay-plan.ts': 'as above',
  'pipelines/feature-keys.test.ts -> consumers/preprocessor/preprocessor.ts': 'checks that the replay, the store and the preprocessor share one key rule: a cross-layer test that belongs in test/',
  'pipelines/feature-keys.test.ts -> producers/csv.ts': 'as above',
  'pipelines/feature-keys.test.ts -> producers/replay-plan.ts': 'as above',
  'pipelines/feature-keys.test.ts -> store/feature-store.ts': 'as above',
  'pipelines/feature-keys.test.ts -> streams/runtime.ts': 'as above',
  'cli/demo-report.ts -> cassandra-driver': 'the demo report runs its own CQL (prediction_log, retrain_requests); the queries belong in store/',
  'infra/local-stack/services.ts -> cassandra-driver': 'the local stack\'s readiness probe connects to Cassandra itself (an admin task)',
  'producers/client.ts -> kafkajs': 'the replay producer wraps a kafkajs producer; producers/ is not a Kafka adapter folder',
};

interface Import {
  file: string;
  specifier: string;
  /** Repository path of a relative import's target, or the package name. */
  target: string;
  kind: 'static' | 'type' | 'dynamic';
  line: number;
}

function productFiles(dir = ROOT, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const full = path.join(dir, e.name);
    const rel = path.relative(ROOT, full).split(path.sep).join('/');
    if (e.isDirectory()) {
      if (!NOT_CODE.has(rel)) productFiles(full, out);
    } else if (/\.(ts|mts|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

function importsOf(file: string): Import[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: Import[] = [];
  const add = (lit: ts.StringLiteralLike, kind: Import['kind']) => {
    const specifier = lit.text;
    let target = specifier;
    if (specifier.startsWith('.')) {
      target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
      // NodeNext: `./x.js` names `./x.ts` in the source tree.
      if (!fs.existsSync(path.join(ROOT, target)) && /\.js$/.test(target)) target = target.replace(/\.js$/, '.ts');
    } else {
      target = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
    }
    found.push({ file, specifier, target, kind, line: source.getLineAndCharacterOfPosition(lit.getStart()).line + 1 });
  };
  const visit = (n: ts.Node) => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) add(n.moduleSpecifier, 'static');
    else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference) && ts.isStringLiteral(n.moduleReference.expression)) add(n.moduleReference.expression, 'static');
    else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && n.arguments[0] && ts.isStringLiteralLike(n.arguments[0])) add(n.arguments[0], 'dynamic');
    else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) add(n.argument.literal, 'type');
    ts.forEachChild(n, visit);
  };
  visit(source);
  return found;
}

const top = (p: string) => p.split('/')[0]!;
const layerOf = (p: string) => (LAYERS as readonly string[]).indexOf(top(p));
const isTest = (p: string) => p.endsWith('.test.ts');
const isBuiltin = (name: string) => name.startsWith('node:');

const files = productFiles();
const imports = files.flatMap(importsOf);

/** Every import that breaks a rule, as `importer -> imported` with where and why. */
function violations(): Array<{ key: string; where: string; why: string }> {
  const out: Array<{ key: string; where: string; why: string }> = [];
  for (const i of imports) {
    const from = top(i.file);
    const where = `${i.file}:${i.line} imports '${i.specifier}'${i.kind === 'static' ? '' : ` (${i.kind})`}`;
    if (!i.specifier.startsWith('.')) {
      const homes = PACKAGE_HOMES[i.target];
      if (homes && !homes.includes(from)) out.push({ key: `${i.file} -> ${i.target}`, where, why: `only ${homes.join(', ')} may import ${i.target}` });
      continue;
    }
    if (FREE.includes(from) || !i.file.includes('/')) continue;
    if (isTest(i.file) && TEST_SUPPORT.some((re) => re.test(i.target))) continue;
    const a = layerOf(i.file);
    const b = layerOf(i.target);
    if (b < 0) {
      out.push({ key: `${i.file} -> ${i.target}`, where, why: `${top(i.target)}/ is not a layer a product file may import` });
      continue;
    }
    if (b > a) out.push({ key: `${i.file} -> ${i.target}`, where, why: `${top(i.target)} is above ${from}` });
  }
  return out;
}

describe('layering', () => {
  it('reads the imports of every product file', () => {
    expect(files.length).toBeGreaterThan(150);
    // Every folder holding product files is a layer (or free): a new folder must be placed in the order.
    const unplaced = [...new Set(files.filter((f) => f.includes('/')).map(top))].filter((d) => layerOf(d) < 0 && !FREE.includes(d));
    expect(unplaced, `folders with TypeScript that are not in the layer order: ${unplaced.join(', ')}`).toEqual([]);
    // The parser sees static, type-only and re-exports alike.
    const index = importsOf('consumers/index.ts').map((i) => i.target);
    expect(index).toEqual(expect.arrayContaining(['streams/definition.ts', 'consumers/joiner/index.ts', 'consumers/scorer/index.ts', 'consumers/evaluator/index.ts']));
    expect(importsOf('models/training-thread.mjs').map((i) => [i.target, i.kind])).toEqual([['tsx', 'static'], ['models/training-thread-impl.ts', 'dynamic']]);
    // Every relative import resolves to a file.
    const missing = imports.filter((i) => i.specifier.startsWith('.') && !fs.existsSync(path.join(ROOT, i.target)) && !i.target.endsWith('.json'));
    expect(missing.map((i) => `${i.file}:${i.line} '${i.specifier}'`)).toEqual([]);
  });

  it('no import points up the layer order, and cassandra-driver and kafkajs stay in their folders (known exceptions listed with a reason)', () => {
    const found = violations();
    const unexpected = found.filter((v) => !(v.key in KNOWN_EXCEPTIONS));
    const report = unexpected.map((v) => `  ${v.where}: ${v.why}`).join('\n');
    expect(unexpected.map((v) => v.where), `imports that break the layering:\n${report}`).toEqual([]);
  });

  it('every listed exception still occurs (remove it once fixed)', () => {
    const keys = new Set(violations().map((v) => v.key));
    expect(Object.keys(KNOWN_EXCEPTIONS).filter((k) => !keys.has(k))).toEqual([]);
  });

  it('packages other than node built-ins are declared in package.json', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const declared = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)]);
    const undeclared = imports.filter((i) => !i.specifier.startsWith('.') && !isBuiltin(i.target) && !declared.has(i.target));
    expect(undeclared.map((i) => `${i.file}:${i.line} '${i.specifier}'`)).toEqual([]);
  });
});
