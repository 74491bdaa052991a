// The search parser: every parameter type, modifier and prefix with the exact Condition it gives,
// precision ranges at their boundaries, escapes, OR/AND, chains, _has, result parameters, errors
// (400 naming the parameter as received) and lenient mode.
import t, { type Test } from 'tap';
import { FhirError } from '../../src/base/outcome.js';
import { numberRange, parseCriteria, parseSearch, parseTypes } from '../../src/search/plan.js';
import type { Condition, ParsedSearch } from '../../src/search/types.js';

const NOW = Date.UTC(2024, 0, 1);
const MINUTE = 60_000;
const DAY = 86_400_000;

type Pairs = [string, string][];

function pairs(query: string | Pairs): Pairs {
  return typeof query === 'string' ? ([...new URLSearchParams(query)] as Pairs) : query;
}

function search(types: string | string[], query: string | Pairs, lenient = false): ParsedSearch {
  return parseSearch(Array.isArray(types) ? types : [types], pairs(query), lenient, { now: NOW });
}

function where(type: string | string[], query: string | Pairs): Condition[] {
  return search(type, query).plan.where;
}

function one(type: string | string[], query: string | Pairs): Condition {
  const conditions = where(type, query);
  if (conditions.length !== 1) throw new Error(`expected one condition, got ${JSON.stringify(conditions)}`);
  return conditions[0];
}

/** Asserts a 400 whose issue names `name` (the parameter as received); `pattern` matches the diagnostics. */
function rejects(t: Test, types: string | string[], query: string | Pairs, name: string, pattern?: RegExp): void {
  try {
    const result = search(types, query);
    t.fail(`${JSON.stringify(query)} should be rejected, gave ${JSON.stringify(result.plan.where)}`);
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    t.equal(err.status, 400, `${JSON.stringify(query)}: 400`);
    t.same(err.issues[0].expression, [name], `${JSON.stringify(query)}: names ${name}`);
    if (pattern) t.match(err.issues[0].diagnostics, pattern, `${JSON.stringify(query)}: ${pattern}`);
  }
}

const range = (low: number, high: number) => ({ low, high });

/** Epoch ms of a UTC date, also for years below 100 (which Date.UTC reads as 19xx). */
function utc(year: number, month0: number, day: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month0, day);
  return d.getTime();
}

t.test('token: code, system|code, |code, system|; :not, :text, :of-type; OR and AND', async (t) => {
  t.strictSame(one('Patient', 'gender=female'), { kind: 'token', param: 'gender', values: [{ code: 'female' }] });
  t.strictSame(one('Patient', 'identifier=urn:oid:1.2.250.1.213.1.4.8|277076322082910'), {
    kind: 'token',
    param: 'identifier',
    values: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', code: '277076322082910' }],
  });
  t.strictSame(one('Patient', 'identifier=|277076322082910'), { kind: 'token', param: 'identifier', values: [{ system: null, code: '277076322082910' }] });
  t.strictSame(one('Patient', 'identifier=urn:oid:1.2.250.1.213.1.4.8|'), { kind: 'token', param: 'identifier', values: [{ system: 'urn:oid:1.2.250.1.213.1.4.8' }] });
  t.strictSame(one('Observation', 'code=http://loinc.org|8480-6,http://loinc.org|8462-4'), {
    kind: 'token',
    param: 'code',
    values: [
      { system: 'http://loinc.org', code: '8480-6' },
      { system: 'http://loinc.org', code: '8462-4' },
    ],
  }, 'comma is OR: one condition, several values');
  t.strictSame(where('Observation', 'code=8480-6&code=http://loinc.org|'), [
    { kind: 'token', param: 'code', values: [{ code: '8480-6' }] },
    { kind: 'token', param: 'code', values: [{ system: 'http://loinc.org' }] },
  ], 'a repeated parameter is AND: several conditions');
  t.strictSame(one('Patient', 'gender:not=male,other'), { kind: 'token', param: 'gender', values: [{ code: 'male' }, { code: 'other' }], not: true });
  t.strictSame(one('Observation', 'code:text=Tension  ARTÉRIELLE systolique '), { kind: 'token-text', param: 'code', texts: ['tension arterielle systolique'] });
  t.strictSame(one('DocumentReference', 'type:text=Compte rendu,Lettre'), { kind: 'token-text', param: 'type', texts: ['compte rendu', 'lettre'] });
  t.strictSame(one('Patient', 'identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053'), {
    kind: 'of-type',
    param: 'identifier',
    values: [{ typeSystem: 'http://terminology.hl7.org/CodeSystem/v2-0203', typeCode: 'MR', value: '446053' }],
  });
  t.equal(one('DocumentReference', 'identifier:of-type=s|c|v').kind, 'of-type', 'masterIdentifier | identifier are both Identifiers');
  t.strictSame(one('Patient', '_tag=http://example.org/tags|vip'), { kind: 'token', param: '_tag', values: [{ system: 'http://example.org/tags', code: 'vip' }] });
  t.strictSame(one('Consent', '_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R'), {
    kind: 'token',
    param: '_security',
    values: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
  });
  t.strictSame(one('List', 'code=http://loinc.org|11503-0'), { kind: 'token', param: 'code', values: [{ system: 'http://loinc.org', code: '11503-0' }] });
});

t.test('token errors name the parameter', async (t) => {
  rejects(t, 'Observation', 'code:of-type=a|b|c', 'code:of-type', /Identifier/);
  rejects(t, 'Patient', 'identifier:of-type=a|b', 'identifier:of-type', /typeSystem\|typeCode\|value/);
  rejects(t, 'Patient', 'identifier:of-type=a||c', 'identifier:of-type');
  for (const modifier of ['in', 'not-in', 'above', 'below']) rejects(t, 'Observation', `code:${modifier}=http://example.org/vs`, `code:${modifier}`, /not supported/);
  rejects(t, 'Patient', 'gender:exact=male', 'gender:exact', /modifier/);
  rejects(t, 'Patient', 'gender:not:text=male', 'gender:not:text', /more than one modifier/);
  rejects(t, 'Patient', 'identifier=a|b|c', 'identifier', /escape/);
  rejects(t, 'Patient', 'identifier=|', 'identifier');
  rejects(t, 'Observation', 'code:text=--', 'code:text', /no letters/);
});

t.test('_id, and :not on it', async (t) => {
  t.strictSame(one('Patient', '_id=a1,b-2.c'), { kind: 'id', ids: ['a1', 'b-2.c'] });
  t.strictSame(one('Patient', '_id:not=a1'), { kind: 'id', ids: ['a1'], not: true });
  rejects(t, 'Patient', '_id=not an id', '_id', /not a resource id/);
  rejects(t, 'Patient', `_id=${'x'.repeat(65)}`, '_id');
  rejects(t, 'Patient', '_id:exact=a1', '_id:exact');
  rejects(t, 'Patient', '_id:missing=true', '_id:missing');
});

t.test('string: starts-with by default, :exact, :contains; values folded except for :exact', async (t) => {
  t.strictSame(one('Patient', 'name=Éloïse'), { kind: 'string', param: 'name', match: 'starts', values: ['eloise'] });
  t.strictSame(one('Patient', 'family=  Jean-Pierre   DUPONT '), { kind: 'string', param: 'family', match: 'starts', values: ['jean pierre dupont'] });
  t.strictSame(one('Patient', 'name:exact=Éloïse'), { kind: 'string', param: 'name', match: 'exact', values: ['Éloïse'] });
  t.strictSame(one('Patient', 'name:contains=LOÏ,Ann'), { kind: 'string', param: 'name', match: 'contains', values: ['loi', 'ann'] });
  t.strictSame(one('Patient', 'address-city=Saint-Étienne'), { kind: 'string', param: 'address-city', match: 'starts', values: ['saint etienne'] });
  t.strictSame(one('Immunization', 'lot-number:exact=AB-12'), { kind: 'string', param: 'lot-number', match: 'exact', values: ['AB-12'] });
  t.strictSame(one('DocumentReference', 'description:contains=compte'), { kind: 'string', param: 'description', match: 'contains', values: ['compte'] });
  t.strictSame(one('List', 'title=Allergies'), { kind: 'string', param: 'title', match: 'starts', values: ['allergies'] });
  rejects(t, 'Patient', 'name:text=x', 'name:text', /modifier/);
  rejects(t, 'Patient', 'name=%20%20', 'name', /no letters/);
});

t.test('escapes: \\, \\| \\$ \\\\ (R4 3.1.1.3)', async (t) => {
  t.strictSame(one('Patient', [['name:exact', 'Smith\\,John']]), { kind: 'string', param: 'name', match: 'exact', values: ['Smith,John'] }, '\\, is not a separator');
  t.strictSame(one('Patient', [['name:exact', 'a\\\\,b']]), { kind: 'string', param: 'name', match: 'exact', values: ['a\\', 'b'] }, '\\\\ is a backslash, and the comma after it separates');
  t.strictSame(one('Patient', [['name:exact', 'a\\$b\\|c\\d']]), { kind: 'string', param: 'name', match: 'exact', values: ['a$b|c\\d'] }, 'other backslashes stay');
  t.strictSame(one('Patient', [['identifier', 'urn:x\\|y|a\\|b\\,c']]), { kind: 'token', param: 'identifier', values: [{ system: 'urn:x|y', code: 'a|b,c' }] });
  t.strictSame(one('Observation', [['code-value-string', 'a\\$b$x\\$y']]), {
    kind: 'composite',
    param: 'code-value-string',
    values: [[
      { kind: 'token', param: 'code-value-string#0', values: [{ code: 'a$b' }] },
      { kind: 'string', param: 'code-value-string#1', match: 'starts', values: ['x$y'] },
    ]],
  }, '\\$ inside a composite component; the string component is folded like any string');
});

t.test('empty values are errors', async (t) => {
  rejects(t, 'Patient', 'name=', 'name', /empty/);
  rejects(t, 'Patient', 'name', 'name', /empty/);
  rejects(t, 'Patient', 'name=a,,b', 'name', /empty/);
  rejects(t, 'Patient', 'name=a,', 'name', /empty/);
  rejects(t, 'Patient', 'gender=,male', 'gender', /empty/);
});

t.test('date: precision ranges [low, high) in epoch ms, UTC without a zone', async (t) => {
  const date = (type: string, query: string | Pairs) => {
    const c = one(type, query);
    if (c.kind !== 'date') throw new Error(`not a date condition: ${JSON.stringify(c)}`);
    return c;
  };
  const value = (query: string | Pairs) => {
    const { low, high } = date('Patient', query).values[0];
    return range(low, high);
  };
  t.strictSame(date('Patient', 'birthdate=2024'), {
    kind: 'date',
    param: 'birthdate',
    values: [{ prefix: 'eq', value: Date.UTC(2024, 0, 1), low: Date.UTC(2024, 0, 1), high: Date.UTC(2025, 0, 1) }],
  });
  // Months of 28, 29, 30 and 31 days; the year boundary.
  t.strictSame(value('birthdate=2024-02'), range(Date.UTC(2024, 1, 1), Date.UTC(2024, 2, 1)), 'February of a leap year: 29 days');
  t.equal(value('birthdate=2024-02').high - value('birthdate=2024-02').low, 29 * DAY);
  t.equal(value('birthdate=2023-02').high - value('birthdate=2023-02').low, 28 * DAY);
  t.equal(value('birthdate=1900-02').high - value('birthdate=1900-02').low, 28 * DAY, '1900 is not a leap year');
  t.equal(value('birthdate=2000-02').high - value('birthdate=2000-02').low, 29 * DAY, '2000 is');
  t.equal(value('birthdate=2024-04').high - value('birthdate=2024-04').low, 30 * DAY);
  t.equal(value('birthdate=2024-01').high - value('birthdate=2024-01').low, 31 * DAY);
  t.strictSame(value('birthdate=2024-12'), range(Date.UTC(2024, 11, 1), Date.UTC(2025, 0, 1)));
  t.strictSame(value('birthdate=2024-12-31'), range(Date.UTC(2024, 11, 31), Date.UTC(2025, 0, 1)));
  t.strictSame(value('birthdate=2024-02-29'), range(Date.UTC(2024, 1, 29), Date.UTC(2024, 2, 1)));
  t.strictSame(value('birthdate=2000-02-29'), range(Date.UTC(2000, 1, 29), Date.UTC(2000, 2, 1)));
  t.strictSame(value('birthdate=2024-04-30'), range(Date.UTC(2024, 3, 30), Date.UTC(2024, 4, 1)));
  t.strictSame(value('birthdate=0050-06-01'), range(utc(50, 5, 1), utc(50, 5, 2)), 'years below 100 are not 19xx');
  // Times: minute, second, fraction precision; time zones, a day and a year boundary crossed.
  t.strictSame(value('birthdate=2024-03-10T10:30'), range(Date.UTC(2024, 2, 10, 10, 30), Date.UTC(2024, 2, 10, 10, 31)), 'no zone: UTC');
  t.strictSame(value('birthdate=2024-03-10T10:30Z'), range(Date.UTC(2024, 2, 10, 10, 30), Date.UTC(2024, 2, 10, 10, 31)));
  t.strictSame(value([['birthdate', '2024-03-10T10:30+02:00']]), range(Date.UTC(2024, 2, 10, 8, 30), Date.UTC(2024, 2, 10, 8, 31)));
  t.strictSame(value('birthdate=2024-03-10T10:30+02:00'), range(Date.UTC(2024, 2, 10, 8, 30), Date.UTC(2024, 2, 10, 8, 31)), 'an unencoded + decoded as a space');
  t.strictSame(value('birthdate=2024-03-10T10:30:15-05:30'), range(Date.UTC(2024, 2, 10, 16, 0, 15), Date.UTC(2024, 2, 10, 16, 0, 16)));
  t.strictSame(value('birthdate=2024-03-10T23:30-01:00'), range(Date.UTC(2024, 2, 11, 0, 30), Date.UTC(2024, 2, 11, 0, 31)), 'the next day in UTC');
  t.strictSame(value('birthdate=2024-12-31T23:59:59-01:00'), range(Date.UTC(2025, 0, 1, 0, 59, 59), Date.UTC(2025, 0, 1, 1, 0, 0)), 'the next year in UTC');
  t.strictSame(value('birthdate=2024-01-01T00:30:00%2B01:00'), range(Date.UTC(2023, 11, 31, 23, 30), Date.UTC(2023, 11, 31, 23, 30, 1)), 'the previous year in UTC');
  t.strictSame(value('birthdate=2024-03-10T10:30:15.5Z'), range(Date.UTC(2024, 2, 10, 10, 30, 15, 500), Date.UTC(2024, 2, 10, 10, 30, 15, 600)));
  t.strictSame(value('birthdate=2024-03-10T10:30:15.25Z'), range(Date.UTC(2024, 2, 10, 10, 30, 15, 250), Date.UTC(2024, 2, 10, 10, 30, 15, 260)));
  t.strictSame(value('birthdate=2024-03-10T10:30:15.123Z'), range(Date.UTC(2024, 2, 10, 10, 30, 15, 123), Date.UTC(2024, 2, 10, 10, 30, 15, 124)));
  t.equal(value('birthdate=2024-03-10T10:30').high - value('birthdate=2024-03-10T10:30').low, MINUTE);
});

t.test('date: every prefix, ap widened around now, OR and AND, every date parameter', async (t) => {
  const low = Date.UTC(2024, 0, 15);
  const high = Date.UTC(2024, 0, 16);
  for (const prefix of ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb'] as const) {
    t.strictSame(one('Observation', `date=${prefix}2024-01-15`), { kind: 'date', param: 'date', values: [{ prefix, value: low, low, high }] }, prefix);
  }
  // ap: 10% of the gap between now (2024-01-01) and the date, on each side.
  const y2014 = Date.UTC(2014, 0, 1);
  const delta = Math.round((NOW - y2014) * 0.1);
  t.strictSame(one('Observation', 'date=ap2014-01-01'), { kind: 'date', param: 'date', values: [{ prefix: 'ap', value: y2014, low: y2014 - delta, high: Date.UTC(2014, 0, 2) + delta }] });
  const future = Date.UTC(2034, 0, 1);
  const after = Math.round((future - NOW) * 0.1);
  t.strictSame(one('Appointment', 'date=ap2034-01-01'), { kind: 'date', param: 'date', values: [{ prefix: 'ap', value: future, low: future - after, high: Date.UTC(2034, 0, 2) + after }] });
  t.strictSame(one('Immunization', 'date=ge2023,lt2020-06'), {
    kind: 'date',
    param: 'date',
    values: [
      { prefix: 'ge', value: Date.UTC(2023, 0, 1), low: Date.UTC(2023, 0, 1), high: Date.UTC(2024, 0, 1) },
      { prefix: 'lt', value: Date.UTC(2020, 5, 1), low: Date.UTC(2020, 5, 1), high: Date.UTC(2020, 6, 1) },
    ],
  });
  t.strictSame(where('DocumentReference', 'date=ge2024-01-01&date=lt2024-02-01'), [
    { kind: 'date', param: 'date', values: [{ prefix: 'ge', value: Date.UTC(2024, 0, 1), low: Date.UTC(2024, 0, 1), high: Date.UTC(2024, 0, 2) }] },
    { kind: 'date', param: 'date', values: [{ prefix: 'lt', value: Date.UTC(2024, 1, 1), low: Date.UTC(2024, 1, 1), high: Date.UTC(2024, 1, 2) }] },
  ]);
  t.equal(one('DocumentReference', 'period=2024').kind, 'date');
  t.equal(one('Consent', 'period=sa2024-06').kind, 'date');
  t.strictSame(one('Patient', '_lastUpdated=gt2024-05-01T12:00:00Z'), {
    kind: 'date',
    param: '_lastUpdated',
    values: [{ prefix: 'gt', value: Date.UTC(2024, 4, 1, 12), low: Date.UTC(2024, 4, 1, 12), high: Date.UTC(2024, 4, 1, 12, 0, 1) }],
  });
});

t.test('date errors: invalid calendar dates and malformed values are 400', async (t) => {
  const bad = ['2024-13-01', '2024-00', '2024-02-30', '2023-02-29', '1900-02-29', '2024-04-31', '2024-06-31', '2024-1-1', '24-01-01', '0000', '2024-03-10T24:00', '2024-03-10T10:60', '2024-03-10T10', '2024-03-10T10:30+15:00', '2024-03-10T10:30+01', 'today', 'ge', 'xx2024', '2024-01-01T10:30:00ZZ'];
  for (const value of bad) rejects(t, 'Patient', [['birthdate', value]], 'birthdate', /not a valid date/);
  rejects(t, 'Observation', 'date:exact=2024', 'date:exact', /modifier/);
});

t.test('number ranges: significant figures as written (R4 3.1.1.4.1)', async (t) => {
  t.strictSame(numberRange('100'), { value: 100, low: 99.5, high: 100.5 });
  t.strictSame(numberRange('100.00'), { value: 100, low: 99.995, high: 100.005 });
  t.strictSame(numberRange('1e2'), { value: 100, low: 95, high: 105 }, "the spec's table");
  t.strictSame(numberRange('1.1E2'), { value: 110, low: 109.5, high: 110.5 });
  t.strictSame(numberRange('1.5e-1'), { value: 0.15, low: 0.1495, high: 0.1505 });
  t.strictSame(numberRange('-100'), { value: -100, low: -100.5, high: -99.5 });
  t.strictSame(numberRange('0'), { value: 0, low: -0.5, high: 0.5 });
  t.strictSame(numberRange('0.1'), { value: 0.1, low: 0.05, high: 0.15 }, 'decimal arithmetic, no 0.1 + 0.05 drift');
  t.strictSame(numberRange('5.4'), { value: 5.4, low: 5.35, high: 5.45 });
  for (const bad of ['abc', '1.', '.5', '1e', '--1', '0x10', 'Infinity', '1,5', '']) t.equal(numberRange(bad), undefined, bad);
  t.equal(numberRange('1e400'), undefined, 'out of the double range');
  t.equal(numberRange('1e-400'), undefined, 'below the double range');
});

t.test('quantity: [prefix]number|system|code, number||code, number', async (t) => {
  t.strictSame(one('Observation', 'value-quantity=5.4|http://unitsofmeasure.org|mg'), {
    kind: 'quantity',
    param: 'value-quantity',
    values: [{ prefix: 'eq', value: 5.4, low: 5.35, high: 5.45, system: 'http://unitsofmeasure.org', code: 'mg' }],
  });
  t.strictSame(one('Observation', 'value-quantity=5.4||mg'), { kind: 'quantity', param: 'value-quantity', values: [{ prefix: 'eq', value: 5.4, low: 5.35, high: 5.45, code: 'mg' }] }, 'no system: the code matches code or unit');
  t.strictSame(one('Observation', 'value-quantity=gt5.4'), { kind: 'quantity', param: 'value-quantity', values: [{ prefix: 'gt', value: 5.4, low: 5.35, high: 5.45 }] });
  t.strictSame(one('Observation', 'value-quantity=le100.00|http://unitsofmeasure.org|mm[Hg],ne1e2||mm[Hg]'), {
    kind: 'quantity',
    param: 'value-quantity',
    values: [
      { prefix: 'le', value: 100, low: 99.995, high: 100.005, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' },
      { prefix: 'ne', value: 100, low: 95, high: 105, code: 'mm[Hg]' },
    ],
  });
  t.strictSame(one('Observation', 'value-quantity=ap100'), { kind: 'quantity', param: 'value-quantity', values: [{ prefix: 'ap', value: 100, low: 90, high: 110 }] }, 'ap: 10% either side');
  t.strictSame(one('Observation', 'value-quantity=ap0.1'), { kind: 'quantity', param: 'value-quantity', values: [{ prefix: 'ap', value: 0.1, low: 0.05, high: 0.15 }] }, 'ap never narrower than the precision');
  t.strictSame(one('Condition', 'onset-age=lt-2'), { kind: 'quantity', param: 'onset-age', values: [{ prefix: 'lt', value: -2, low: -2.5, high: -1.5 }] });
  for (const prefix of ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb'] as const) {
    t.strictSame(one('Observation', `component-value-quantity=${prefix}7`), { kind: 'quantity', param: 'component-value-quantity', values: [{ prefix, value: 7, low: 6.5, high: 7.5 }] }, prefix);
  }
  for (const bad of ['5.4|mg', '5.4|http://unitsofmeasure.org|', 'abc', 'gt', '5.4|a|b|c', 'zz5']) rejects(t, 'Observation', [['value-quantity', bad]], 'value-quantity', /quantity|number|unit/);
  rejects(t, 'Observation', 'value-quantity:missing=maybe', 'value-quantity:missing', /true or false/);
  rejects(t, 'Observation', 'value-quantity:exact=5', 'value-quantity:exact', /modifier/);
});

t.test('reference: Type/id, id, absolute URL, :Type, :identifier', async (t) => {
  t.strictSame(one('Observation', 'subject=Patient/123'), { kind: 'reference', param: 'subject', values: [{ targetType: 'Patient', targetId: '123' }] });
  t.strictSame(one('Observation', 'patient=123'), { kind: 'reference', param: 'patient', values: [{ targetType: 'Patient', targetId: '123' }] }, 'the only target');
  t.strictSame(one('Observation', 'subject=123'), { kind: 'reference', param: 'subject', values: [{ targetId: '123' }] }, 'several targets: any type');
  t.strictSame(one('Observation', 'subject:Patient=123'), { kind: 'reference', param: 'subject', values: [{ targetType: 'Patient', targetId: '123' }] });
  t.strictSame(one('Observation', 'subject:Patient=Patient/123'), { kind: 'reference', param: 'subject', values: [{ targetType: 'Patient', targetId: '123' }] });
  t.strictSame(one('Observation', 'subject=Patient/123/_history/4'), { kind: 'reference', param: 'subject', values: [{ targetType: 'Patient', targetId: '123' }] }, 'a version is dropped');
  t.strictSame(one('Observation', 'subject=http://other.example/fhir/Patient/123'), {
    kind: 'reference',
    param: 'subject',
    values: [{ url: 'http://other.example/fhir/Patient/123', targetType: 'Patient', targetId: '123' }],
  });
  t.strictSame(one('Observation', 'subject=urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0'), { kind: 'reference', param: 'subject', values: [{ url: 'urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0' }] });
  t.strictSame(one('Patient', 'general-practitioner=Practitioner/1,Organization/2'), {
    kind: 'reference',
    param: 'general-practitioner',
    values: [
      { targetType: 'Practitioner', targetId: '1' },
      { targetType: 'Organization', targetId: '2' },
    ],
  });
  t.strictSame(one('Patient', 'organization=org-1'), { kind: 'reference', param: 'organization', values: [{ targetType: 'Organization', targetId: 'org-1' }] });
  t.strictSame(one('DocumentReference', 'relatesto=DocumentReference/d1'), { kind: 'reference', param: 'relatesto', values: [{ targetType: 'DocumentReference', targetId: 'd1' }] });
  t.strictSame(one('DocumentReference', 'subject:Patient=p1'), { kind: 'reference', param: 'subject', values: [{ targetType: 'Patient', targetId: 'p1' }] });
  t.strictSame(one('Consent', 'actor=RelatedPerson/rp1'), { kind: 'reference', param: 'actor', values: [{ targetType: 'RelatedPerson', targetId: 'rp1' }] });
  t.strictSame(one('List', 'subject=Patient/p1'), { kind: 'reference', param: 'subject', values: [{ targetType: 'Patient', targetId: 'p1' }] });
  t.strictSame(one('Observation', 'subject:identifier=urn:oid:1.2.250.1.213.1.4.8|277076322082910'), {
    kind: 'token',
    param: 'subject:identifier',
    values: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', code: '277076322082910' }],
  });
  rejects(t, 'Observation', 'subject=Practitioner/1', 'subject', /cannot refer to a Practitioner/);
  rejects(t, 'Observation', 'subject:Practitioner=1', 'subject:Practitioner', /cannot refer to a Practitioner/);
  rejects(t, 'Observation', 'subject:Patient=Group/1', 'subject:Patient', /not a reference to a Patient/);
  rejects(t, 'Observation', 'subject=not an id', 'subject', /not a reference/);
  rejects(t, 'Observation', 'subject=Patient/', 'subject', /not a reference/);
  rejects(t, 'Observation', 'subject:below=Patient/1', 'subject:below', /modifier/);
});

t.test('uri: exact by default, :below, :above', async (t) => {
  t.strictSame(one('Patient', '_profile=http://interopsante.org/fhir/StructureDefinition/FrPatient'), {
    kind: 'uri',
    param: '_profile',
    match: 'exact',
    values: ['http://interopsante.org/fhir/StructureDefinition/FrPatient'],
  });
  t.strictSame(one('Patient', '_profile:below=http://interopsante.org/fhir/'), { kind: 'uri', param: '_profile', match: 'below', values: ['http://interopsante.org/fhir/'] });
  t.strictSame(one('Observation', '_source:above=http://example.org/fhir/Device/1'), { kind: 'uri', param: '_source', match: 'above', values: ['http://example.org/fhir/Device/1'] });
  t.strictSame(one('DocumentReference', 'location=https://docs.example/a.pdf,https://docs.example/b.pdf'), {
    kind: 'uri',
    param: 'location',
    match: 'exact',
    values: ['https://docs.example/a.pdf', 'https://docs.example/b.pdf'],
  });
  rejects(t, 'Patient', '_profile:contains=Fr', '_profile:contains', /modifier/);
});

t.test(':missing on every parameter type', async (t) => {
  t.strictSame(one('Patient', 'birthdate:missing=true'), { kind: 'missing', param: 'birthdate', missing: true });
  t.strictSame(one('Patient', 'name:missing=false'), { kind: 'missing', param: 'name', missing: false });
  t.strictSame(one('Patient', 'gender:missing=true'), { kind: 'missing', param: 'gender', missing: true });
  t.strictSame(one('Observation', 'subject:missing=true'), { kind: 'missing', param: 'subject', missing: true });
  t.strictSame(one('Observation', 'value-quantity:missing=false'), { kind: 'missing', param: 'value-quantity', missing: false });
  t.strictSame(one('Observation', 'code-value-quantity:missing=true'), { kind: 'missing', param: 'code-value-quantity', missing: true });
  t.strictSame(one('Patient', '_profile:missing=true'), { kind: 'missing', param: '_profile', missing: true });
  rejects(t, 'Patient', 'birthdate:missing=yes', 'birthdate:missing', /true or false/);
  rejects(t, 'Patient', 'birthdate:missing=true,false', 'birthdate:missing', /true or false/);
});

t.test('composite: one Condition[] per OR value, components as <code>#<i>', async (t) => {
  t.strictSame(one('Observation', 'code-value-quantity=http://loinc.org|8480-6$gt100'), {
    kind: 'composite',
    param: 'code-value-quantity',
    values: [[
      { kind: 'token', param: 'code-value-quantity#0', values: [{ system: 'http://loinc.org', code: '8480-6' }] },
      { kind: 'quantity', param: 'code-value-quantity#1', values: [{ prefix: 'gt', value: 100, low: 99.5, high: 100.5 }] },
    ]],
  });
  t.strictSame(one('Observation', 'component-code-value-quantity=http://loinc.org|8480-6$ge140|http://unitsofmeasure.org|mm[Hg],http://loinc.org|8462-4$lt60||mm[Hg]'), {
    kind: 'composite',
    param: 'component-code-value-quantity',
    values: [
      [
        { kind: 'token', param: 'component-code-value-quantity#0', values: [{ system: 'http://loinc.org', code: '8480-6' }] },
        { kind: 'quantity', param: 'component-code-value-quantity#1', values: [{ prefix: 'ge', value: 140, low: 139.5, high: 140.5, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' }] },
      ],
      [
        { kind: 'token', param: 'component-code-value-quantity#0', values: [{ system: 'http://loinc.org', code: '8462-4' }] },
        { kind: 'quantity', param: 'component-code-value-quantity#1', values: [{ prefix: 'lt', value: 60, low: 59.5, high: 60.5, code: 'mm[Hg]' }] },
      ],
    ],
  });
  t.strictSame(one('Observation', 'code-value-date=http://loinc.org|21112-8$le2000-06'), {
    kind: 'composite',
    param: 'code-value-date',
    values: [[
      { kind: 'token', param: 'code-value-date#0', values: [{ system: 'http://loinc.org', code: '21112-8' }] },
      { kind: 'date', param: 'code-value-date#1', values: [{ prefix: 'le', value: Date.UTC(2000, 5, 1), low: Date.UTC(2000, 5, 1), high: Date.UTC(2000, 6, 1) }] },
    ]],
  });
  t.strictSame(one('DocumentReference', 'relationship=DocumentReference/d1$replaces'), {
    kind: 'composite',
    param: 'relationship',
    values: [[
      { kind: 'reference', param: 'relationship#0', values: [{ targetType: 'DocumentReference', targetId: 'd1' }] },
      { kind: 'token', param: 'relationship#1', values: [{ code: 'replaces' }] },
    ]],
  });
  rejects(t, 'Observation', 'code-value-quantity=http://loinc.org|8480-6', 'code-value-quantity', /2 components/);
  rejects(t, 'Observation', 'code-value-quantity=a$1$2', 'code-value-quantity', /2 components/);
  rejects(t, 'Observation', 'code-value-quantity=$100', 'code-value-quantity', /empty component/);
  rejects(t, 'Observation', 'code-value-quantity=a$heavy', 'code-value-quantity', /not a number/);
  rejects(t, 'DocumentReference', 'relationship=Patient/1$replaces', 'relationship', /cannot refer to a Patient/);
  rejects(t, 'Observation', 'code-value-quantity:not=a$1', 'code-value-quantity:not', /modifier/);
});

t.test('chains: :Type, the targets defining the next parameter, two and three levels deep', async (t) => {
  t.strictSame(one('Observation', 'patient.identifier=urn:oid:1.2.250.1.213.1.4.8|277076322082910'), {
    kind: 'chain',
    param: 'patient',
    targetTypes: ['Patient'],
    where: [{ kind: 'token', param: 'identifier', values: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', code: '277076322082910' }] }],
  });
  t.strictSame(one('Observation', 'subject:Patient.name=peter'), {
    kind: 'chain',
    param: 'subject',
    targetTypes: ['Patient'],
    where: [{ kind: 'string', param: 'name', match: 'starts', values: ['peter'] }],
  });
  t.strictSame(one('Observation', 'subject.birthdate=ge2000'), {
    kind: 'chain',
    param: 'subject',
    targetTypes: ['Patient'],
    where: [{ kind: 'date', param: 'birthdate', values: [{ prefix: 'ge', value: Date.UTC(2000, 0, 1), low: Date.UTC(2000, 0, 1), high: Date.UTC(2001, 0, 1) }] }],
  }, 'Group, Device and Location are not served: Patient is the only target left');
  t.strictSame(one('Patient', 'general-practitioner.name=smith'), {
    kind: 'chain',
    param: 'general-practitioner',
    targetTypes: ['Practitioner', 'Organization'],
    where: [{ kind: 'string', param: 'name', match: 'starts', values: ['smith'] }],
  }, 'PractitionerRole has no name parameter');
  t.strictSame((one('Patient', 'general-practitioner.identifier=x') as { targetTypes: string[] }).targetTypes, ['Practitioner', 'Organization', 'PractitionerRole']);
  t.strictSame(one('Observation', 'subject:Patient.organization.name=acme'), {
    kind: 'chain',
    param: 'subject',
    targetTypes: ['Patient'],
    where: [{ kind: 'chain', param: 'organization', targetTypes: ['Organization'], where: [{ kind: 'string', param: 'name', match: 'starts', values: ['acme'] }] }],
  }, 'two levels');
  t.strictSame(one('Observation', 'patient.general-practitioner:Practitioner.name:exact=Smith,Jones'), {
    kind: 'chain',
    param: 'patient',
    targetTypes: ['Patient'],
    where: [{ kind: 'chain', param: 'general-practitioner', targetTypes: ['Practitioner'], where: [{ kind: 'string', param: 'name', match: 'exact', values: ['Smith', 'Jones'] }] }],
  }, 'a :Type inside, a modifier and OR at the end');
  t.strictSame(one('DocumentReference', 'subject:Patient.organization.partof.name=ars'), {
    kind: 'chain',
    param: 'subject',
    targetTypes: ['Patient'],
    where: [{
      kind: 'chain',
      param: 'organization',
      targetTypes: ['Organization'],
      where: [{ kind: 'chain', param: 'partof', targetTypes: ['Organization'], where: [{ kind: 'string', param: 'name', match: 'starts', values: ['ars'] }] }],
    }],
  }, 'three levels');
  t.strictSame(where('Observation', 'subject.name=a&subject.name=b').length, 2, 'repeated chains are separate conditions');
  rejects(t, 'Observation', 'code.name=x', 'code.name', /only reference parameters can be chained/);
  rejects(t, 'Observation', 'subject:Group.name=x', 'subject:Group.name', /Group has no search parameter "name"/);
  rejects(t, 'Observation', 'subject:Practitioner.name=x', 'subject:Practitioner.name', /cannot refer to a Practitioner/);
  rejects(t, 'Observation', 'subject.foo=x', 'subject.foo', /"foo"/);
  rejects(t, 'Observation', 'encounter.status=finished', 'encounter.status', /"status"/);
  rejects(t, 'Observation', 'subject:identifier.name=x', 'subject:identifier.name', /resource type modifier/);
  rejects(t, 'Observation', 'subject.=x', 'subject.', /ends with/);
  rejects(t, 'Observation', 'subject.name=', 'subject.name', /empty/);
  rejects(t, 'Observation', 'subject.birthdate=2024-02-30', 'subject.birthdate', /not a valid date/);
  rejects(t, 'DocumentReference', 'subject:Patient.organization.partof.partof.name=x', 'subject:Patient.organization.partof.partof.name', /levels deep/);
});

t.test('_has: reverse chaining, nested', async (t) => {
  t.strictSame(one('Patient', '_has:Observation:patient:code=1234'), {
    kind: 'has',
    sourceType: 'Observation',
    param: 'patient',
    where: [{ kind: 'token', param: 'code', values: [{ code: '1234' }] }],
  });
  t.strictSame(one('Patient', '_has:Observation:patient:_has:AuditEvent:entity:subtype=read'), {
    kind: 'has',
    sourceType: 'Observation',
    param: 'patient',
    where: [{ kind: 'has', sourceType: 'AuditEvent', param: 'entity', where: [{ kind: 'token', param: 'subtype', values: [{ code: 'read' }] }] }],
  });
  t.strictSame(one('Patient', '_has:Observation:subject:code:text=Pression'), {
    kind: 'has',
    sourceType: 'Observation',
    param: 'subject',
    where: [{ kind: 'token-text', param: 'code', texts: ['pression'] }],
  });
  t.strictSame(one('Patient', '_has:DocumentReference:subject:author.name=smith'), {
    kind: 'has',
    sourceType: 'DocumentReference',
    param: 'subject',
    where: [{ kind: 'chain', param: 'author', targetTypes: ['Practitioner', 'Organization', 'Patient', 'RelatedPerson'], where: [{ kind: 'string', param: 'name', match: 'starts', values: ['smith'] }] }],
  }, 'a chain inside _has');
  t.strictSame(one('Organization', 'partof._has:Patient:organization:gender=female'), {
    kind: 'chain',
    param: 'partof',
    targetTypes: ['Organization'],
    where: [{ kind: 'has', sourceType: 'Patient', param: 'organization', where: [{ kind: 'token', param: 'gender', values: [{ code: 'female' }] }] }],
  }, '_has inside a chain');
  rejects(t, 'Patient', '_has:Observation:patient=1', '_has:Observation:patient', /_has:Type/);
  rejects(t, 'Patient', '_has=1', '_has', /_has:Type/);
  rejects(t, 'Patient', '_has:Provenance:target:agent=1', '_has:Provenance:target:agent', /not a resource type Carnet serves/);
  rejects(t, 'Patient', '_has:Observation:code:code=1', '_has:Observation:code:code', /not a reference parameter/);
  rejects(t, 'Patient', '_has:Observation:nope:code=1', '_has:Observation:nope:code', /"nope"/);
  rejects(t, 'Patient', '_has:Observation:patient:nope=1', '_has:Observation:patient:nope', /"nope" is not a search parameter of Observation/);
  rejects(t, 'Practitioner', '_has:Observation:patient:code=1', '_has:Observation:patient:code', /cannot refer to a Practitioner/);
  rejects(t, 'Patient', '_has:Observation:patient:_has:AuditEvent:entity:_has:AuditEvent:entity:_has:AuditEvent:entity:type=x', '_has:Observation:patient:_has:AuditEvent:entity:_has:AuditEvent:entity:_has:AuditEvent:entity:type', /levels deep/);
});

t.test('_sort, _count, _cursor, _total, _summary, _elements', async (t) => {
  const parsed = search('Observation', '_sort=-date,_id,_lastUpdated,code&_count=25&_cursor=opaque%2Bcursor&_total=accurate&_summary=data&_elements=status,Observation.code,value[x]');
  t.strictSame(parsed.plan.sort, [
    { param: 'date', descending: true },
    { param: '_id', descending: false },
    { param: '_lastUpdated', descending: false },
    { param: 'code', descending: false },
  ]);
  t.equal(parsed.count, 25);
  t.equal(parsed.cursor, 'opaque+cursor');
  t.equal(parsed.total, 'accurate');
  t.equal(parsed.summary, 'data');
  t.strictSame(parsed.elements, ['status', 'code', 'value[x]']);
  t.strictSame(parsed.applied, [
    ['_sort', '-date,_id,_lastUpdated,code'],
    ['_total', 'accurate'],
    ['_summary', 'data'],
    ['_elements', 'status,Observation.code,value[x]'],
  ], '_count and _cursor are not in applied');
  t.equal(search('Patient', '_count=0').count, 0);
  t.equal(search('Patient', '_summary=count').summary, 'count');
  for (const mode of ['none', 'estimate']) t.equal(search('Patient', `_total=${mode}`).total, mode);
  for (const bad of ['-1', 'abc', '1.5', '', '1e3']) rejects(t, 'Patient', [['_count', bad]], '_count');
  rejects(t, 'Patient', '_count=1&_count=2', '_count', /more than once/);
  rejects(t, 'Patient', '_sort=foo', '_sort', /"foo"/);
  rejects(t, 'Patient', '_sort=name:exact', '_sort', /modifiers/);
  rejects(t, 'Patient', '_sort=-', '_sort', /empty sort key/);
  rejects(t, 'Patient', '_sort=name,', '_sort', /empty sort key/);
  rejects(t, 'Observation', '_sort=code-value-quantity', '_sort', /composite/);
  rejects(t, 'Patient', '_sort=name&_sort=birthdate', '_sort', /more than once/);
  rejects(t, 'Patient', '_total=maybe', '_total');
  rejects(t, 'Patient', '_summary=yes', '_summary');
  rejects(t, 'Patient', '_elements=name.given', '_elements', /top-level/);
  rejects(t, 'Patient', '_elements=', '_elements', /empty/);
  rejects(t, 'Patient', '_cursor=', '_cursor', /empty/);
});

t.test('_include and _revinclude: Type:param[:Target], *, :iterate and :recurse', async (t) => {
  const parsed = search('Observation', [
    ['_include', 'Observation:patient'],
    ['_include', 'Observation:subject:Patient'],
    ['_include:iterate', 'Patient:general-practitioner'],
    ['_include:recurse', 'Patient:organization'],
    ['_include', 'Observation:*'],
    ['_revinclude', 'DocumentReference:related'],
    ['_revinclude:iterate', 'List:item:Observation'],
  ]);
  t.strictSame(parsed.include, [
    { sourceType: 'Observation', param: 'patient', iterate: false },
    { sourceType: 'Observation', param: 'subject', targetType: 'Patient', iterate: false },
    { sourceType: 'Patient', param: 'general-practitioner', iterate: true },
    { sourceType: 'Patient', param: 'organization', iterate: true },
    { sourceType: 'Observation', param: '*', iterate: false },
  ]);
  t.strictSame(parsed.revinclude, [
    { sourceType: 'DocumentReference', param: 'related', iterate: false },
    { sourceType: 'List', param: 'item', targetType: 'Observation', iterate: true },
  ]);
  t.equal(parsed.applied.length, 7);
  t.strictSame(search('Patient', '_include=*').include, [{ sourceType: '*', param: '*', iterate: false }]);
  t.strictSame(search('Patient', '_revinclude:iterate=*').revinclude, [{ sourceType: '*', param: '*', iterate: true }]);
  rejects(t, 'Patient', '_revinclude=Provenance:target', '_revinclude', /not a resource type Carnet serves/);
  rejects(t, 'Observation', '_include=Observation:code', '_include', /not a reference parameter/);
  rejects(t, 'Observation', '_include=Observation:nope', '_include', /"nope"/);
  rejects(t, 'Observation', '_include=Observation', '_include', /Type:parameter/);
  rejects(t, 'Observation', '_include=Observation:subject:Practitioner', '_include', /cannot refer to a Practitioner/);
  rejects(t, 'Observation', '_include=Observation:subject:Group', '_include', /not a resource type Carnet serves/);
  rejects(t, 'Observation', '_include=Observation:*:Patient', '_include', /\*/);
  rejects(t, 'Observation', '_include=Observation:subject:', '_include', /Type:parameter/);
  rejects(t, 'Observation', '_include:foo=Observation:subject', '_include:foo', /:iterate/);
  rejects(t, 'Observation', '_include=', '_include', /empty/);
});

t.test('other parameters: _format and _pretty left to HTTP, the unsupported ones rejected', async (t) => {
  const parsed = search('Patient', '_format=json&_pretty=true&gender=male');
  t.strictSame(parsed.applied, [['gender', 'male']]);
  t.strictSame(parsed.ignored, []);
  rejects(t, 'Patient', '_contained=true', '_contained', /contained/);
  rejects(t, 'Patient', '_containedType=container', '_containedType', /contained/);
  for (const name of ['_text', '_content', '_list', '_filter', '_query', 'foo', 'Name']) rejects(t, 'Patient', [[name, 'x']], name, /not a search parameter of Patient/);
  rejects(t, 'Patient', [[':exact', 'x']], ':exact', /empty/);
});

t.test('applied keeps every applied parameter as received, in order', async (t) => {
  const query: Pairs = [
    ['name:contains', 'Éva'],
    ['birthdate', 'ge2000,lt1950'],
    ['_count', '5'],
    ['identifier', 'urn:x\\|y|1'],
    ['_sort', '-birthdate'],
  ];
  t.strictSame(search('Patient', query).applied, [
    ['name:contains', 'Éva'],
    ['birthdate', 'ge2000,lt1950'],
    ['identifier', 'urn:x\\|y|1'],
    ['_sort', '-birthdate'],
  ]);
});

t.test('system search: parameters defined on every type, _type', async (t) => {
  const parsed = search(['Patient', 'Practitioner'], '_type=Patient,Practitioner&name=smith&gender=female&_lastUpdated=ge2024&_tag=urn:t|a&_sort=-_lastUpdated,family');
  t.strictSame(parsed.plan.types, ['Patient', 'Practitioner']);
  t.strictSame(parsed.plan.where.map((c) => c.kind), ['string', 'token', 'date', 'token']);
  t.strictSame(parsed.plan.sort, [
    { param: '_lastUpdated', descending: true },
    { param: 'family', descending: false },
  ]);
  t.strictSame(parsed.applied[0], ['_type', 'Patient,Practitioner']);
  t.strictSame(one(['Patient', 'Observation'], '_id=a,b'), { kind: 'id', ids: ['a', 'b'] });
  t.strictSame(one(['Patient', 'Observation', 'Consent'], '_profile:below=http://example.org/'), { kind: 'uri', param: '_profile', match: 'below', values: ['http://example.org/'] });
  rejects(t, ['Patient', 'Practitioner'], 'birthdate=2000', 'birthdate', /defined on all of them/);
  rejects(t, ['Patient', 'Practitioner'], '_sort=birthdate', '_sort', /defined on all of them/);
  rejects(t, ['Patient', 'Practitioner'], '_type=Organization', '_type', /not among the types searched/);
  t.strictSame(parseTypes('Patient,Observation,Patient'), ['Patient', 'Observation']);
  for (const bad of ['Foo', 'Patient,', '', 'patient']) {
    try {
      parseTypes(bad);
      t.fail(`_type=${bad} should be rejected`);
    } catch (err) {
      t.ok(err instanceof FhirError && err.status === 400 && err.issues[0].expression?.[0] === '_type', `_type=${bad}`);
    }
  }
});

t.test('lenient: bad parameters are skipped and listed, good ones applied', async (t) => {
  const query: Pairs = [
    ['foo', '1'],
    ['name', 'smith'],
    ['birthdate', '2024-13-01'],
    ['_count', 'abc'],
    ['gender:in', 'http://example.org/vs'],
    ['_contained', 'true'],
    ['identifier', ''],
    ['general-practitioner.nope', 'x'],
    ['_sort', 'nope'],
    ['_include', 'Patient:name'],
    ['_count', '10'],
    ['_count', '20'],
    ['gender', 'female'],
  ];
  const parsed = search('Patient', query, true);
  t.strictSame(parsed.plan.where, [
    { kind: 'string', param: 'name', match: 'starts', values: ['smith'] },
    { kind: 'token', param: 'gender', values: [{ code: 'female' }] },
  ]);
  t.equal(parsed.count, 10, 'the first valid _count; a second one is ignored');
  t.strictSame(parsed.ignored, ['foo', 'birthdate', '_count', 'gender:in', '_contained', 'identifier', 'general-practitioner.nope', '_sort', '_include', '_count']);
  t.strictSame(parsed.applied, [
    ['name', 'smith'],
    ['gender', 'female'],
  ]);
  t.strictSame(parsed.plan.sort, []);
  t.strictSame(parsed.include, []);
  t.throws(() => search('Patient', query, false), 'not lenient: the first bad parameter is a 400');
});

t.test('parseCriteria: conditional criteria, never lenient, no result parameters', async (t) => {
  t.strictSame(parseCriteria('Patient', 'identifier=urn:oid:1.2.250.1.213.1.4.8|277076322082910'), {
    types: ['Patient'],
    where: [{ kind: 'token', param: 'identifier', values: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', code: '277076322082910' }] }],
    sort: [],
  });
  t.strictSame(parseCriteria('Patient', 'Patient?_id=p1'), { types: ['Patient'], where: [{ kind: 'id', ids: ['p1'] }], sort: [] }, 'a leading Type? is stripped');
  t.strictSame(parseCriteria('Observation', 'patient.identifier=urn:x|1&code=8480-6').where.map((c) => c.kind), ['chain', 'token']);
  const criteria = (type: string, query: string, name: string | undefined, pattern: RegExp) => {
    try {
      parseCriteria(type, query);
      t.fail(`${query} should be rejected`);
    } catch (err) {
      if (!(err instanceof FhirError)) throw err;
      t.equal(err.status, 400);
      t.same(err.issues[0].expression, name === undefined ? undefined : [name], query);
      t.match(err.issues[0].diagnostics, pattern, query);
    }
  };
  criteria('Patient', '', undefined, /select nothing/);
  criteria('Patient', 'Patient?', undefined, /select nothing/);
  criteria('Patient', '_format=json', undefined, /select nothing/);
  criteria('Patient', 'identifier=x&_count=1', '_count', /result parameters/);
  criteria('Patient', 'identifier=x&_sort=name', '_sort', /result parameters/);
  criteria('Patient', 'identifier=x&_include=Patient:organization', '_include', /result parameters/);
  criteria('Patient', 'identifier=x&_summary=true', '_summary', /result parameters/);
  criteria('Patient', 'foo=1&identifier=x', 'foo', /not a search parameter/);
  criteria('Patient', 'birthdate=2024-02-30', 'birthdate', /not a valid date/);
});
