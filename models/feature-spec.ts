/** What a model predicts. */
export type Task = 'binary' | 'multiclass' | 'regression';

/** How a feature is fed to the model. */
export type FeatureKind = 'numeric' | 'categorical';

/**
 * One model input. `categories` is required for a categorical feature in a
 * complete spec (the trainer learns it from the training rows when absent) and
 * must be absent or empty for a numeric one. A categorical value is encoded as
 * its index in `categories`.
 */
export interface FeatureDef {
  name: string;
  kind: FeatureKind;
  categories?: string[];
}

/**
 * The contract between feature rows and a model.
 * - `features`: the model's input columns, in input order.
 * - `classes`: label values in output order; `[]` for regression, exactly 2
 *   for binary (`classes[1]` is the "positive" class), at least 2 for multiclass.
 */
export interface FeatureSpec {
  task: Task;
  features: FeatureDef[];
  classes: string[];
}

/** A feature value; `null` (or `NaN`) means missing. */
export type FeatureValue = number | string | null;

/** Feature values keyed by feature name. Absent keys count as missing. */
export type FeatureRow = Record<string, FeatureValue>;

/** Category names reserved by the baseline for unseen and missing values. */
export const OTHER_CATEGORY = '__other__';
export const MISSING_CATEGORY = '__missing__';

const TASKS: readonly string[] = ['binary', 'multiclass', 'regression'];
const KINDS: readonly string[] = ['numeric', 'categorical'];

/**
 * Lists every problem with a complete spec (categorical features must carry
 * their categories). An empty list means the spec is usable.
 */
export function checkFeatureSpec(spec: FeatureSpec): string[] {
  const problems: string[] = [];
  if (!TASKS.includes(spec.task)) problems.push(`unknown task "${String(spec.task)}"`);
  if (spec.features.length === 0) problems.push('spec has no features');

  const names = new Set<string>();
  for (const f of spec.features) {
    if (f.name === '') problems.push('a feature has an empty name');
    if (names.has(f.name)) problems.push(`duplicate feature "${f.name}"`);
    names.add(f.name);
    if (!KINDS.includes(f.kind)) {
      problems.push(`feature "${f.name}" has unknown kind "${String(f.kind)}"`);
    } else if (f.kind === 'categorical') {
      if (!f.categories || f.categories.length === 0) {
        problems.push(`categorical feature "${f.name}" has no categories`);
      } else {
        problems.push(...listProblems(`feature "${f.name}" categories`, f.categories));
        for (const reserved of [OTHER_CATEGORY, MISSING_CATEGORY]) {
          if (f.categories.includes(reserved)) {
            problems.push(`feature "${f.name}" uses reserved category "${reserved}"`);
          }
        }
      }
    } else if (f.categories && f.categories.length > 0) {
      problems.push(`numeric feature "${f.name}" must not have categories`);
    }
  }

  const n = spec.classes.length;
  if (spec.task === 'regression' && n !== 0) problems.push('regression spec must have no classes');
  if (spec.task === 'binary' && n !== 2) problems.push(`binary spec needs exactly 2 classes, got ${n}`);
  if (spec.task === 'multiclass' && n < 2) problems.push(`multiclass spec needs at least 2 classes, got ${n}`);
  problems.push(...listProblems('classes', spec.classes));
  return problems;
}

function listProblems(what: string, values: string[]): string[] {
  const problems: string[] = [];
  if (values.some((v) => typeof v !== 'string' || v === '')) problems.push(`${what} must be non-empty strings`);
  if (new Set(values).size !== values.length) problems.push(`${what} contain duplicates`);
  return problems;
}

/**
 * Describes the first difference between two specs (task, class order,
 * feature order/name/kind, category order), or returns null when they are
 * equivalent. A missing `categories` equals an empty list.
 */
export function featureSpecDifference(expected: FeatureSpec, actual: FeatureSpec): string | null {
  if (expected.task !== actual.task) return `task is "${actual.task}", expected "${expected.task}"`;
  if (!sameList(expected.classes, actual.classes)) {
    return `classes are [${actual.classes.join(', ')}], expected [${expected.classes.join(', ')}]`;
  }
  if (expected.features.length !== actual.features.length) {
    return `${actual.features.length} features, expected ${expected.features.length}`;
  }
  for (const [i, e] of expected.features.entries()) {
    const a = actual.features[i];
    if (!a) return `feature ${i} is missing`;
    if (a.name !== e.name) return `feature ${i} is "${a.name}", expected "${e.name}"`;
    if (a.kind !== e.kind) return `feature "${e.name}" is ${a.kind}, expected ${e.kind}`;
    if (!sameList(e.categories ?? [], a.categories ?? [])) return `feature "${e.name}" has different categories`;
  }
  return null;
}

/** True when two specs are equivalent (see {@link featureSpecDifference}). */
export function featureSpecsEqual(a: FeatureSpec, b: FeatureSpec): boolean {
  return featureSpecDifference(a, b) === null;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Whether a model can be served by a pipeline: every input the model takes is
 * one the pipeline serves, with the same kind (a model may take fewer inputs,
 * in any order: each model gets exactly the inputs its spec names), and its
 * task and classes are the pipeline's. The reason, or null when it fits.
 */
export function pipelineFitProblem(served: ReadonlyArray<{ name: string; kind: FeatureKind }>, pipeline: { task: Task; classes: readonly string[] }, model: FeatureSpec): string | null {
  if (model.task !== pipeline.task) return `the model is ${model.task}, the pipeline ${pipeline.task}`;
  if (pipeline.classes.length > 0 && !sameList([...pipeline.classes], model.classes)) return `the model's classes are [${model.classes.join(', ')}], the pipeline's [${pipeline.classes.join(', ')}]`;
  const kinds = new Map(served.map((f) => [f.name, f.kind]));
  for (const f of model.features) {
    const kind = kinds.get(f.name);
    if (kind === undefined) return `the model needs "${f.name}", which the pipeline does not serve`;
    if (kind !== f.kind) return `the model takes "${f.name}" as ${f.kind}, the pipeline serves it as ${kind}`;
  }
  return null;
}
