/**
 * The pipeline spec's field reference, generated so it cannot go stale:
 * every field's path, type, bounds and default come from the zod schema
 * (`PipelineSpecSchema`, walked at run time), and its meaning from the doc
 * comment above the field in pipelines/spec.ts (read with the TypeScript
 * parser). `cli/docs.ts` puts the table in the README.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { z } from 'zod';
import { PipelineSpecSchema } from './spec.js';

export interface SpecField {
  /** `featureSets[].aggregates.<name>.op`: `[]` is any list item, `<name>` any map key. */
  path: string;
  type: string;
  required: boolean;
  default: string | null;
  doc: string;
}

const specFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'spec.ts');

/** Doc comments of the schema's object fields, by path, from the source. */
export function fieldDocs(source = fs.readFileSync(specFile, 'utf8')): Map<string, string> {
  const sf = ts.createSourceFile('spec.ts', source, ts.ScriptTarget.Latest, true);
  const consts = new Map<string, ts.Expression>();
  sf.forEachChild((n) => {
    if (ts.isVariableStatement(n)) for (const d of n.declarationList.declarations) if (ts.isIdentifier(d.name) && d.initializer) consts.set(d.name.text, d.initializer);
  });
  const docs = new Map<string, string>();
  const docOf = (node: ts.Node): string => {
    const ranges = ts.getLeadingCommentRanges(source, node.getFullStart()) ?? [];
    const jsdoc = ranges.map((r) => source.slice(r.pos, r.end)).filter((c) => c.startsWith('/**')).at(-1);
    if (!jsdoc) return '';
    return jsdoc.replace(/^\/\*\*|\*\/$/g, '').split('\n').map((l) => l.replace(/^\s*\* ?/, '').trim()).filter(Boolean).join(' ');
  };
  const walk = (node: ts.Node, prefix: string, depth = 0): void => {
    if (depth > 40) return;
    if (ts.isIdentifier(node) && consts.has(node.text)) return walk(consts.get(node.text)!, prefix, depth + 1);
    if (!ts.isCallExpression(node) || !ts.isPropertyAccessExpression(node.expression)) return;
    const callee = node.expression;
    if (ts.isIdentifier(callee.expression) && callee.expression.text === 'z') {
      const [a0, a1] = node.arguments;
      switch (callee.name.text) {
        case 'object':
          if (a0 && ts.isObjectLiteralExpression(a0)) {
            for (const p of a0.properties) {
              if (!ts.isPropertyAssignment(p)) continue;
              const key = p.name.getText(sf);
              const doc = docOf(p);
              if (doc) docs.set(`${prefix}${key}`, doc);
              walk(p.initializer, `${prefix}${key}.`, depth + 1);
            }
          }
          return;
        case 'array':
          if (a0) walk(a0, `${prefix}[].`.replace('.[]', '[]'), depth + 1);
          return;
        case 'record':
          if (a1) walk(a1, `${prefix}<name>.`, depth + 1);
          return;
        case 'union':
          if (a0 && ts.isArrayLiteralExpression(a0)) for (const e of a0.elements) walk(e, prefix, depth + 1);
          return;
        case 'preprocess':
          if (a1) walk(a1, prefix, depth + 1);
          return;
        default:
          return;
      }
    }
    walk(callee.expression, prefix, depth + 1);
  };
  walk(consts.get('PipelineSpecSchema')!, '');
  return docs;
}

function numberType(s: z.ZodNumber): string {
  const checks = s._def.checks;
  const int = checks.some((c) => c.kind === 'int');
  const min = checks.find((c) => c.kind === 'min') as { value: number; inclusive: boolean } | undefined;
  const max = checks.find((c) => c.kind === 'max') as { value: number; inclusive: boolean } | undefined;
  const base = int ? 'integer' : 'number';
  if (min && max) return `${base} in ${min.value}..${max.value}`;
  if (min) return `${base} ${min.inclusive ? '≥' : '>'} ${min.value}`;
  if (max) return `${base} ${max.inclusive ? '≤' : '<'} ${max.value}`;
  return base;
}

/** Every field of the spec with its type, default and meaning, in schema order. */
export function specFields(): SpecField[] {
  const docs = fieldDocs();
  const out: SpecField[] = [];
  const visit = (schema: z.ZodTypeAny, p: string, required: boolean, def: unknown): void => {
    let s = schema;
    let req = required;
    let dflt = def;
    for (;;) {
      if (s instanceof z.ZodDefault) {
        dflt = s._def.defaultValue();
        req = false;
        s = s._def.innerType;
      } else if (s instanceof z.ZodOptional) {
        req = false;
        s = s._def.innerType;
      } else if (s instanceof z.ZodEffects) s = s._def.schema;
      else break;
    }
    let type: string;
    const children: Array<[z.ZodTypeAny, string]> = [];
    if (s instanceof z.ZodObject) {
      type = 'object';
      for (const [k, v] of Object.entries(s.shape as Record<string, z.ZodTypeAny>)) children.push([v, p ? `${p}.${k}` : k]);
    } else if (s instanceof z.ZodArray) {
      const item = s._def.type as z.ZodTypeAny;
      type = item instanceof z.ZodObject ? 'list of objects' : `list of ${shortType(item)}`;
      const min = s._def.minLength?.value;
      if (min) type += ` (at least ${min})`;
      if (item instanceof z.ZodObject) children.push([item, `${p}[]`]);
    } else if (s instanceof z.ZodRecord) {
      const value = s._def.valueType as z.ZodTypeAny;
      type = value instanceof z.ZodObject || value instanceof z.ZodUnion ? 'map of name → object' : `map of name → ${shortType(value)}`;
      if (value instanceof z.ZodObject || value instanceof z.ZodUnion) children.push([value, `${p}.<name>`]);
    } else if (s instanceof z.ZodUnion) {
      const options = s._def.options as z.ZodTypeAny[];
      type = `one of: ${options.map((o) => (o instanceof z.ZodObject ? `{ ${Object.keys(o.shape).join(', ')} }` : shortType(o))).join(' or ')}`;
      for (const o of options) if (o instanceof z.ZodObject) for (const [k, v] of Object.entries(o.shape as Record<string, z.ZodTypeAny>)) children.push([v, `${p}.${k}`]);
    } else type = shortType(s);
    // A list item or map value without a doc of its own adds a row only through its fields.
    const container = p.endsWith('[]') || p.endsWith('<name>');
    if (p && !(container && !docs.get(p) && children.length > 0)) out.push({ path: p, type, required: req, default: dflt === undefined ? null : JSON.stringify(dflt), doc: docs.get(p.replace(/\.<name>/g, '.<name>')) ?? '' });
    const seen = new Set<string>();
    for (const [c, cp] of children) {
      if (seen.has(cp)) continue;
      seen.add(cp);
      visit(c, cp, true, undefined);
    }
  };
  visit(PipelineSpecSchema, '', true, undefined);
  return out;
}

function shortType(s: z.ZodTypeAny): string {
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodEffects) s = s instanceof z.ZodEffects ? s._def.schema : s._def.innerType;
  if (s instanceof z.ZodString) {
    const regex = s._def.checks.find((c) => c.kind === 'regex') as { regex: RegExp } | undefined;
    return regex ? `string matching \`${regex.regex.source}\`` : 'string';
  }
  if (s instanceof z.ZodNumber) return numberType(s);
  if (s instanceof z.ZodBoolean) return 'boolean';
  if (s instanceof z.ZodEnum) return (s._def.values as string[]).map((v) => `\`${v}\``).join(', ');
  if (s instanceof z.ZodObject) return 'object';
  if (s instanceof z.ZodArray) return `list of ${shortType(s._def.type)}`;
  return s.constructor.name.replace(/^Zod/, '').toLowerCase();
}

/** The reference as a Markdown table. */
export function specReferenceTable(): string {
  const esc = (t: string) => t.replaceAll('|', '\\|');
  const rows = specFields().map((f) => `| \`${f.path}\` | ${esc(f.type)} | ${f.required ? 'required' : f.default === null ? '(optional)' : `\`${esc(f.default)}\``} | ${esc(f.doc)} |`);
  return ['| field | type | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
