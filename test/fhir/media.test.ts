import t from 'tap';
import { MAX_DEPTH, parseJson } from '../../src/fhir/media.js';

const nested = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
const refusedAsDeep = (text: string) => {
  try {
    parseJson(text);
    return false;
  } catch (error) {
    return /nested more than/.test((error as Error).message);
  }
};

t.test('JSON nested up to the limit parses, one level more is refused before parsing', async (t) => {
  t.same(parseJson(nested(MAX_DEPTH)), JSON.parse(nested(MAX_DEPTH)));
  t.ok(refusedAsDeep(nested(MAX_DEPTH + 1)));
  t.ok(refusedAsDeep(`{"a":${nested(MAX_DEPTH)}}`), 'objects count as levels too');
});

t.test('brackets inside strings do not count, whatever the escapes before the closing quote', async (t) => {
  const brackets = '['.repeat(MAX_DEPTH + 5);
  t.same(parseJson(JSON.stringify({ data: brackets })), { data: brackets });
  t.same(parseJson(JSON.stringify({ data: `a"${brackets}\\"` })), { data: `a"${brackets}\\"` }, 'escaped quotes inside, an escaped backslash before the closing quote');
  t.same(parseJson(JSON.stringify({ data: 'x'.repeat(200_000), after: [1] })), { data: 'x'.repeat(200_000), after: [1] }, 'a long string, then more JSON');
  t.ok(refusedAsDeep(`{"s":"\\\\",${nested(MAX_DEPTH)}}`), 'after a string ending in an escaped backslash, the brackets count again');
  t.ok(refusedAsDeep(`{"s":"\\"]]]]",${nested(MAX_DEPTH)}}`), 'an escaped quote does not close the string early');
});

t.test('an unterminated string is malformed JSON, 400', async (t) => {
  t.throws(() => parseJson('{"a":"[[['), /not valid JSON/);
});
