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
import fs from 'node:fs';

/** Parses CSV text into one object per record, keyed by header name; every value is the raw string. */
export function parseCsv(text: string, source = 'CSV'): Array<Record<string, string>> {
  const records = splitRecords(text.startsWith('\uFEFF') ? text.slice(1) : text, source);
  const first = records[0];
  if (!first) return [];
  const header = first.fields;
  const seen = new Set<string>();
  for (const name of header) {
    if (name === '') throw new Error(`${source} line ${first.line}: the header has an empty column name`);
    if (seen.has(name)) throw new Error(`${source} line ${first.line}: the header repeats column "${name}"`);
    seen.add(name);
  }
  return records.slice(1).map(({ fields, line }) => {
    if (fields.length !== header.length) {
      throw new Error(`${source} line ${line}: ${fields.length} fields, but the header has ${header.length}`);
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
    throw new Error(`cannot read CSV ${file}: ${(err as Error).message}`);
  }
  return parseCsv(text, file);
}

interface RawRecord {
  fields: string[];
  /** 1-based line on which the record starts. */
  line: number;
}

function splitRecords(text: string, source: string): RawRecord[] {
  const records: RawRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  let i = 0;
  /** The current record holds nothing yet: an empty line ends no record. */
  let empty = true;

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
    const c = text[i] as string;
    if (c === '"') {
      if (field !== '') throw new Error(`${source} line ${line}: a quote inside an unquoted field`);
      empty = false;
      const start = line;
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`${source} line ${start}: unterminated quoted field`);
        const q = text[i] as string;
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && !(next === '\r' && text[i + 1] === '\n')) {
        throw new Error(`${source} line ${line}: text after a closing quote`);
      }
      continue;
    }
    if (c === ',') {
      empty = false;
      fields.push(field);
      field = '';
      i++;
      continue;
    }
    if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      endRecord();
      i += c === '\n' ? 1 : 2;
      line++;
      recordLine = line;
      continue;
    }
    empty = false;
    field += c;
    i++;
  }
  endRecord();
  return records;
}
