/**
 * Generates `schemas/types.ts` from the .avsc files. Run `npm run gen:types`
 * after changing a schema; a unit test fails while the file is stale.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { allRecordSchemas } from './catalogue.js';

type Schema = string | Schema[] | { [k: string]: unknown };

const PRIMITIVES: Record<string, string> = {
  null: 'null', boolean: 'boolean', int: 'number', long: 'number', float: 'number', double: 'number',
  bytes: 'Buffer', string: 'string',
};

export function generateTypes(): string {
  const emitted = new Map<string, string>();

  function tsType(s: Schema): string {
    if (typeof s === 'string') return PRIMITIVES[s] ?? s.split('.').pop()!;
    if (Array.isArray(s)) return s.map(tsType).join(' | ');
    const type = s.type as Schema;
    if (typeof type === 'string') {
      switch (type) {
        case 'record': {
          const name = s.name as string;
          if (!emitted.has(name)) {
            emitted.set(name, ''); // reserve, for recursion
            const fields = (s.fields as Array<{ name: string; type: Schema; doc?: string }>).map(
              (f) => `${f.doc ? `  /** ${f.doc} */\n` : ''}  ${f.name}: ${tsType(f.type)};`,
            );
            emitted.set(name, `${s.doc ? `/** ${s.doc as string} */\n` : ''}export interface ${name} {\n${fields.join('\n')}\n}`);
          }
          return name;
        }
        case 'enum': {
          const name = s.name as string;
          emitted.set(name, `export type ${name} = ${(s.symbols as string[]).map((x) => `'${x}'`).join(' | ')};`);
          return name;
        }
        case 'array':
          return `Array<${tsType(s.items as Schema)}>`;
        case 'map':
          return `Record<string, ${tsType(s.values as Schema)}>`;
        default:
          return PRIMITIVES[type] ?? type;
      }
    }
    return tsType(type);
  }

  for (const rs of allRecordSchemas()) tsType(rs.schema as Schema);
  const body = [...emitted.values()].join('\n\n');
  return `// Generated from schemas/avro/*.avsc by schemas/generate-types.ts. Do not edit: run \`npm run gen:types\`.\n\n${body}\n`;
}

export const typesFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'types.ts');

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  fs.writeFileSync(typesFile, generateTypes());
  console.log(`wrote ${typesFile}`);
}
