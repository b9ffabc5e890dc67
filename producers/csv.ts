/**
 * A small, strict CSV reader (RFC 4180) for replay datasets: the first record
 * is the header; fields are separated by commas and records by CRLF or LF; a
 * field in double quotes may hold commas, line breaks and doubled quotes
 * (`""` is one `"`). A leading UTF-8 byte-order mark is ignored, and so are
 * empty lines (a file's final line break included).
 *
 * Malformed input is an error naming the line, never a silently shifted row:
 * an unterminated quote, text after a closing quote, a quote inside an
 * unquoted field, a record whose field count differs from the header's, and
 * a blank or repeated header name all throw.
 *
 * Whole-file, not streaming: replay files are a few megabytes.
 */
import { ConfigError } from '../core/errors.js';
import fs from 'node:fs';

/** Parses CSV text into one object per record, keyed by header name; every value is the raw string. */
export function parseCsv(text: string, source = 'CSV'): Array<Record<string, string>> {
  const records = splitRecords(text.startsWith('\uFEFF') ? text.slice(1) : text, source);
  const first = records[0];
  if (!first) return [];
  const header = first.fields;
  const seen = new Set<string>();
  for (const name of header) {
    if (name === '') throw new ConfigError(`${source} line ${first.line}: the header has an empty column name`);
    if (seen.has(name)) throw new ConfigError(`${source} line ${first.line}: the header repeats column "${name}"`);
    seen.add(name);
  }
  return records.slice(1).map(({ fields, line }) => {
    if (fields.length !== header.length) {
      throw new ConfigError(`${source} line ${line}: ${fields.length} fields, but the header has ${header.length}`);
    }
    return Object.fromEntries(header.map((name, i) => [name, fields[i] as string]));
  });
}

/** Reads and parses a UTF-8 CSV file (see parseCsv); errors name the file. */
export function readCsv(file: string): Array<Record<string, string>> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read CSV ${file}: ${(err as Error).message}`);
  }
  return parseCsv(text, file);
}

interface RawRecord {
  fields: string[];
  /** 1-based line on which the record starts. */
  line: number;
}

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;

function splitRecords(text: string, source: string): RawRecord[] {
  const records: RawRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  let i = 0;
  /** The current record holds nothing yet: an empty line ends no record. */
  let empty = true;
  const lineBreakAt = (k: number) => text.charCodeAt(k) === LF || (text.charCodeAt(k) === CR && text.charCodeAt(k + 1) === LF);

  const endRecord = () => {
    if (!empty) {
      fields.push(field);
      records.push({ fields, line: recordLine });
    }
    fields = [];
    field = '';
    empty = true;
  };

  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === COMMA) {
      empty = false;
      fields.push(field);
      field = '';
      i++;
    } else if (lineBreakAt(i)) {
      endRecord();
      i += c === LF ? 1 : 2;
      recordLine = ++line;
    } else if (c === QUOTE) {
      empty = false;
      const start = line;
      i++;
      for (;;) {
        const close = text.indexOf('"', i);
        if (close === -1) throw new ConfigError(`${source} line ${start}: unterminated quoted field`);
        const part = text.slice(i, close);
        for (let k = part.indexOf('\n'); k !== -1; k = part.indexOf('\n', k + 1)) line++;
        field += part;
        i = close + 1;
        if (text.charCodeAt(i) !== QUOTE) break;
        field += '"';
        i++;
      }
      if (i < text.length && text.charCodeAt(i) !== COMMA && !lineBreakAt(i)) throw new ConfigError(`${source} line ${line}: text after a closing quote`);
    } else {
      empty = false;
      let j = i;
      while (j < text.length && text.charCodeAt(j) !== COMMA && !lineBreakAt(j)) {
        if (text.charCodeAt(j) === QUOTE) throw new ConfigError(`${source} line ${line}: a quote inside an unquoted field`);
        j++;
      }
      field = text.slice(i, j);
      i = j;
    }
  }
  endRecord();
  return records;
}
