import { describe, expect, it } from 'vitest';
import { parseCsv } from './csv.js';

describe('parseCsv', () => {
  it('maps records to the header, keeping raw strings', () => {
    expect(parseCsv('a,b,c\n1,,x\n2,3,\n')).toEqual([
      { a: '1', b: '', c: 'x' },
      { a: '2', b: '3', c: '' },
    ]);
  });

  it('reads quoted fields: commas, line breaks, doubled quotes, empty quotes', () => {
    const text = 'id,note,n\r\n1,"a, b",2\r\n2,"line one\r\nline two",3\r\n3,"say ""hi""",4\r\n4,"",5\r\n"5",x,"6"';
    expect(parseCsv(text)).toEqual([
      { id: '1', note: 'a, b', n: '2' },
      { id: '2', note: 'line one\r\nline two', n: '3' },
      { id: '3', note: 'say "hi"', n: '4' },
      { id: '4', note: '', n: '5' },
      { id: '5', note: 'x', n: '6' },
    ]);
  });

  it('ignores a byte-order mark, empty lines and the final line break', () => {
    expect(parseCsv('\uFEFFa,b\n\n1,2\n\n3,4\n')).toEqual([
      { a: '1', b: '2' },
      { a: '3', b: '4' },
    ]);
  });

  it('keeps spaces and a header-only or empty file has no rows', () => {
    expect(parseCsv('a,b\n 1 , 2 ')).toEqual([{ a: ' 1 ', b: ' 2 ' }]);
    expect(parseCsv('a,b\n')).toEqual([]);
    expect(parseCsv('')).toEqual([]);
  });

  it('a column named like an Object property is an ordinary key', () => {
    const [row] = parseCsv('__proto__,constructor\n1,2');
    expect(Object.keys(row!)).toEqual(['__proto__', 'constructor']);
    expect(row!['__proto__']).toBe('1');
  });

  it.each([
    ['an unterminated quote', 'a,b\n1,"open\n2,3', /line 2: unterminated quoted field/],
    ['text after a closing quote', 'a,b\n1,"x"y', /line 2: text after a closing quote/],
    ['a quote inside an unquoted field', 'a,b\n1,x"y"', /line 2: a quote inside an unquoted field/],
    ['too few fields', 'a,b\n1,2\n3', /line 3: 1 fields, but the header has 2/],
    ['too many fields', 'a,b\n1,2,3', /line 2: 3 fields, but the header has 2/],
    ['a repeated header name', 'a,a\n1,2', /line 1: the header repeats column "a"/],
    ['an empty header name', 'a,\n1,2', /line 1: the header has an empty column name/],
  ])('rejects %s, naming the line', (_what, text, message) => {
    expect(() => parseCsv(text, 'data.csv')).toThrow(message);
    expect(() => parseCsv(text, 'data.csv')).toThrow(/^data\.csv /);
  });

  it('counts lines inside quoted fields when naming a later line', () => {
    expect(() => parseCsv('a,b\n"x\ny",1\n2')).toThrow(/line 4: 1 fields/);
  });
});
