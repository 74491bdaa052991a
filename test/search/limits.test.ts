// The limits of one search (src/search/limits.ts): each at its value passes and one beyond is a 400
// `too-costly` naming the parameter and the limit, through the size check alone and through the
// parser every search path uses (under Prefer: handling=lenient too); a repeated _include or
// _revinclude counts, and is applied, once.
import t, { type Test } from 'tap';
import { FhirError } from '../../src/base/outcome.js';
import {
  checkSearchSize,
  MAX_DEPTH,
  MAX_INCLUDES,
  MAX_LINKS,
  MAX_NAME_LENGTH,
  MAX_PARAMETERS,
  MAX_SEARCH_LENGTH,
  MAX_SORT_KEYS,
  MAX_TOTAL_VALUES,
  MAX_VALUE_LENGTH,
  MAX_VALUES,
  measureValues,
} from '../../src/search/limits.js';
import { parseCriteria, parseSearch } from '../../src/search/plan.js';

type Pairs = [string, string][];

const repeat = (n: number, pair: [string, string]): Pairs => Array.from({ length: n }, () => [...pair]);
const values = (n: number, value = 'a') => Array.from({ length: n }, () => value).join(',');

/** Asserts that `run` throws the 400 `too-costly` of `limit`, naming `name`. */
function refused(t: Test, run: () => unknown, name: string, limit: string): void {
  try {
    run();
    t.fail(`${limit}: should be refused`);
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    t.equal(err.status, 400, `${limit}: 400`);
    t.match(err.issues[0], { code: 'too-costly', expression: [name] }, `${limit}: too-costly, naming ${name.slice(0, 40)}`);
    t.match(err.issues[0].diagnostics, limit, `${limit}: the diagnostics name the limit`);
  }
}

t.test('measureValues: commas not escaped separate values; the longest keeps its escapes', async (t) => {
  t.same(measureValues(''), { count: 1, longest: 0 });
  t.same(measureValues('abc'), { count: 1, longest: 3 });
  t.same(measureValues('a,bc,'), { count: 3, longest: 2 });
  t.same(measureValues('a\\,b,c'), { count: 2, longest: 4 }, 'an escaped comma is part of a value');
  t.same(measureValues('a\\\\,b'), { count: 2, longest: 3 }, 'an escaped backslash does not escape the comma after it');
});

t.test('checkSearchSize: each limit at its value passes, one beyond is refused', async (t) => {
  t.doesNotThrow(() => checkSearchSize(repeat(MAX_PARAMETERS, ['name', 'a'])));
  refused(t, () => checkSearchSize([...repeat(MAX_PARAMETERS, ['name', 'a']), ['gender', 'male']]), 'gender', 'MAX_PARAMETERS');

  t.doesNotThrow(() => checkSearchSize([['_id', values(MAX_VALUES)]]));
  refused(t, () => checkSearchSize([['_id', values(MAX_VALUES + 1)]]), '_id', 'MAX_VALUES');
  t.doesNotThrow(() => checkSearchSize([['_id', values(MAX_VALUES, 'a\\,b')]]), 'escaped commas do not separate values');

  t.doesNotThrow(() => checkSearchSize([['name', 'x'.repeat(MAX_VALUE_LENGTH)]]));
  refused(t, () => checkSearchSize([['name', 'x'.repeat(MAX_VALUE_LENGTH + 1)]]), 'name', 'MAX_VALUE_LENGTH');
  refused(t, () => checkSearchSize([['name', `a,${'x'.repeat(MAX_VALUE_LENGTH + 1)},b`]]), 'name', 'MAX_VALUE_LENGTH');
  refused(t, () => checkSearchSize([['name', 'x'.repeat(50_000)]]), 'name', 'MAX_VALUE_LENGTH');

  const name = `_has:Observation:patient:${'x'.repeat(MAX_NAME_LENGTH)}`;
  t.doesNotThrow(() => checkSearchSize([[name.slice(0, MAX_NAME_LENGTH), 'a']]));
  refused(t, () => checkSearchSize([[name, 'a']]), `${name.slice(0, MAX_NAME_LENGTH)}...`, 'MAX_NAME_LENGTH');

  const full = MAX_TOTAL_VALUES / MAX_VALUES;
  t.doesNotThrow(() => checkSearchSize(repeat(full, ['_id', values(MAX_VALUES)])));
  refused(t, () => checkSearchSize([...repeat(full, ['_id', values(MAX_VALUES)]), ['gender', 'male']]), 'gender', 'MAX_TOTAL_VALUES');

  // Names of 4 characters and values of MAX_VALUE_LENGTH - 4: each parameter is MAX_VALUE_LENGTH long.
  const long = MAX_SEARCH_LENGTH / MAX_VALUE_LENGTH;
  t.doesNotThrow(() => checkSearchSize(repeat(long, ['name', 'x'.repeat(MAX_VALUE_LENGTH - 4)])));
  refused(t, () => checkSearchSize([...repeat(long, ['name', 'x'.repeat(MAX_VALUE_LENGTH - 4)]), ['_id', 'a']]), '_id', 'MAX_SEARCH_LENGTH');

  t.doesNotThrow(() => checkSearchSize([['_cursor', 'x'.repeat(MAX_SEARCH_LENGTH * 2)]]), 'a page cursor is not measured');
});

t.test('the parser applies the limits on every search and on conditional criteria, lenient or not', async (t) => {
  const search = (query: Pairs, lenient = false) => parseSearch(['Patient'], query, lenient);
  for (const lenient of [false, true]) {
    refused(t, () => search(repeat(MAX_PARAMETERS + 1, ['name', 'a']), lenient), 'name', 'MAX_PARAMETERS');
    refused(t, () => search([['name', values(MAX_VALUES + 1)]], lenient), 'name', 'MAX_VALUES');
    refused(t, () => search([['name', 'x'.repeat(MAX_VALUE_LENGTH + 1)]], lenient), 'name', 'MAX_VALUE_LENGTH');
  }
  refused(t, () => parseCriteria('Patient', new URLSearchParams(repeat(MAX_PARAMETERS + 1, ['identifier', 'a'])).toString()), 'identifier', 'MAX_PARAMETERS');
  refused(t, () => parseCriteria('Patient', `identifier=${values(MAX_VALUES + 1)}`), 'identifier', 'MAX_VALUES');
  refused(t, () => parseCriteria('Patient', `name=${'x'.repeat(MAX_VALUE_LENGTH + 1)}`), 'name', 'MAX_VALUE_LENGTH');
});

t.test('chain and _has links in all parameters together', async (t) => {
  t.equal(MAX_LINKS, 8, 'the chains below are written for 8 links');
  const links: Pairs = [
    ['subject:Patient.organization.partof.name', 'x'],
    ['subject:Patient.organization.partof.name', 'y'],
    ['subject:Patient.organization.name', 'z'],
  ];
  t.equal(parseSearch(['Observation'], links, false).plan.where.length, 3);
  refused(t, () => parseSearch(['Observation'], [...links, ['_has:Observation:has-member:code', 'x']], false), '_has:Observation:has-member:code', 'MAX_LINKS');
  refused(t, () => parseSearch(['Observation'], [...links, ['patient.name', 'x']], true), 'patient.name', 'MAX_LINKS');
  refused(t, () => parseCriteria('Observation', `${new URLSearchParams(links).toString()}&patient.name=x`), 'patient.name', 'MAX_LINKS');
  t.equal(parseSearch(['Observation'], [...links, ['code', 'x'], ['patient', 'p1']], false).plan.where.length, 5, 'other parameters are no links');
});

t.test('_sort keys, and chains and _has levels', async (t) => {
  const keys = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 ? '-' : '') + ['name', 'birthdate', 'family', 'given', '_id', '_lastUpdated', 'gender', 'address', 'phone'][i % 9]).join(',');
  t.equal(parseSearch(['Patient'], [['_sort', keys(MAX_SORT_KEYS)]], false).plan.sort.length, MAX_SORT_KEYS);
  refused(t, () => parseSearch(['Patient'], [['_sort', keys(MAX_SORT_KEYS + 1)]], false), '_sort', 'MAX_SORT_KEYS');
  refused(t, () => parseSearch(['Patient'], [['_sort', keys(MAX_SORT_KEYS + 1)]], true), '_sort', 'MAX_SORT_KEYS');
  t.equal(MAX_DEPTH, 4, 'the chains below are written for 4 levels');
  t.equal(parseSearch(['Observation'], [['subject:Patient.organization.partof.name', 'x']], false).plan.where.length, 1);
  refused(t, () => parseSearch(['Observation'], [['subject:Patient.organization.partof.partof.name', 'x']], true), 'subject:Patient.organization.partof.partof.name', 'MAX_DEPTH');
});

t.test('a repeated _include or _revinclude is applied once; distinct ones are limited', async (t) => {
  const parsed = parseSearch(
    ['Observation'],
    [
      ...repeat(10, ['_include', 'Observation:patient']),
      ['_include:iterate', 'Patient:organization'],
      ['_include:recurse', 'Patient:organization'],
      ...repeat(10, ['_revinclude', 'DocumentReference:related']),
      ['_include', 'Observation:subject:Patient'],
      ['_include', 'Observation:subject'],
    ],
    false,
  );
  t.same(parsed.include, [
    { sourceType: 'Observation', param: 'patient', iterate: false },
    { sourceType: 'Patient', param: 'organization', iterate: true },
    { sourceType: 'Observation', param: 'subject', targetType: 'Patient', iterate: false },
    { sourceType: 'Observation', param: 'subject', iterate: false },
  ]);
  t.same(parsed.revinclude, [{ sourceType: 'DocumentReference', param: 'related', iterate: false }]);
  t.same(parsed.applied, [
    ['_include', 'Observation:patient'],
    ['_include:iterate', 'Patient:organization'],
    ['_revinclude', 'DocumentReference:related'],
    ['_include', 'Observation:subject:Patient'],
    ['_include', 'Observation:subject'],
  ], 'the self link lists each once');

  // MAX_INCLUDES distinct values (each given twice) pass; one more is refused.
  t.ok(MAX_INCLUDES * 2 + 1 <= MAX_PARAMETERS, 'the includes below fit in a search');
  const distinct: Pairs = ['subject', 'patient', 'performer', 'encounter', 'based-on', 'part-of', 'has-member', 'derived-from', 'specimen', 'device', 'focus']
    .flatMap((param) => [['_include', `Observation:${param}`], ['_include:iterate', `Observation:${param}`]] as Pairs)
    .slice(0, MAX_INCLUDES);
  t.equal(distinct.length, MAX_INCLUDES);
  t.equal(parseSearch(['Observation'], [...distinct, ...distinct], false).include.length, MAX_INCLUDES);
  refused(t, () => parseSearch(['Observation'], [...distinct, ['_revinclude', 'DocumentReference:related']], false), '_revinclude', 'MAX_INCLUDES');
  refused(t, () => parseSearch(['Observation'], [...distinct, ['_revinclude', 'DocumentReference:related']], true), '_revinclude', 'MAX_INCLUDES');
});
