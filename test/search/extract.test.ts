import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Resource } from '@medplum/fhirtypes';
import { indexEntries, valueEntries, parseReference, referenceEntries } from '../../src/search/extract.js';
import { dateRange, normalizeString } from '../../src/search/normalize.js';
import { paramsOf, findParam } from '../../src/search/params.js';
import { MAX_TIME, MIN_TIME, type IndexEntry } from '../../src/search/types.js';
import { SERVED_TYPES } from '../../src/base/registry.js';
import { R4_EXAMPLES } from '../fixtures/data-paths.js';

// The official HL7 R4 examples (a subset, test/fixtures/data/PROVENANCE.md); CARNET_R4_EXAMPLES
// names another copy laid out as <Type>/*.json, e.g. the whole package.
const examplesDir = process.env.CARNET_R4_EXAMPLES ?? R4_EXAMPLES;

function example(type: string, name: string): Resource {
  return JSON.parse(readFileSync(join(examplesDir, type, `${type}-${name}.json`), 'utf8')) as Resource;
}

/** The entries of one parameter of a resource built from a plain object. */
function entriesOf(resource: object, param: string): IndexEntry[] {
  return indexEntries(resource as Resource).filter((e) => e.param === param);
}

const ms = (iso: string): number => Date.parse(iso);

// ---------------------------------------------------------------------------------------------
// String normalisation

t.test('accented, upper-case and plain spellings of a French name normalise the same', async (t) => {
  t.equal(normalizeString('Hélène'), 'helene');
  t.equal(normalizeString('HELENE'), 'helene');
  t.equal(normalizeString('helene'), 'helene');
  t.equal(normalizeString('HÉLÈNE'), 'helene');
  t.equal(normalizeString('François Çà'), 'francois ca');
});

t.test('whitespace is collapsed and trimmed, punctuation becomes a space', async (t) => {
  t.equal(normalizeString('  Jean \t  Pierre \n'), 'jean pierre');
  t.equal(normalizeString('Jean-Pierre'), 'jean pierre');
  t.equal(normalizeString("d'Arc"), 'd arc');
  t.equal(normalizeString('\u00a0Noël\u00a0'), 'noel');
});

t.test('ligatures and letters without decomposition are spelled out', async (t) => {
  t.equal(normalizeString('Lætitia Œuvre'), 'laetitia oeuvre');
  t.equal(normalizeString('Straße'), 'strasse');
  t.equal(normalizeString('Søren Łukasz'), 'soren lukasz');
});

// ---------------------------------------------------------------------------------------------
// string parameters

t.test('a HumanName gives family, each given, prefix, suffix and text as separate strings', async (t) => {
  const patient = {
    resourceType: 'Patient',
    name: [{ family: 'Dupont-Lefèvre', given: ['Hélène', 'Marie'], prefix: ['Mme'], suffix: ['PhD'], text: 'Mme Hélène Marie Dupont-Lefèvre' }],
  };
  t.same(entriesOf(patient, 'name'), [
    { kind: 'string', param: 'name', group: 0, value: 'dupont lefevre', exact: 'Dupont-Lefèvre' },
    { kind: 'string', param: 'name', group: 0, value: 'helene', exact: 'Hélène' },
    { kind: 'string', param: 'name', group: 0, value: 'marie', exact: 'Marie' },
    { kind: 'string', param: 'name', group: 0, value: 'mme', exact: 'Mme' },
    { kind: 'string', param: 'name', group: 0, value: 'phd', exact: 'PhD' },
    { kind: 'string', param: 'name', group: 0, value: 'mme helene marie dupont lefevre', exact: 'Mme Hélène Marie Dupont-Lefèvre' },
  ]);
  t.same(entriesOf(patient, 'given'), [
    { kind: 'string', param: 'given', group: 0, value: 'helene', exact: 'Hélène' },
    { kind: 'string', param: 'given', group: 0, value: 'marie', exact: 'Marie' },
  ]);
  t.same(entriesOf(patient, 'family'), [{ kind: 'string', param: 'family', group: 0, value: 'dupont lefevre', exact: 'Dupont-Lefèvre' }]);
});

t.test('"Hélène" and "HELENE" given names index the same normalised value', async (t) => {
  const a = entriesOf({ resourceType: 'Patient', name: [{ given: ['Hélène'] }] }, 'given');
  const b = entriesOf({ resourceType: 'Patient', name: [{ given: ['HELENE'] }] }, 'given');
  t.same(a, [{ kind: 'string', param: 'given', group: 0, value: 'helene', exact: 'Hélène' }]);
  t.same(b, [{ kind: 'string', param: 'given', group: 0, value: 'helene', exact: 'HELENE' }]);
});

t.test('an Address gives each line, city, district, state, postal code, country and text', async (t) => {
  const patient = {
    resourceType: 'Patient',
    address: [
      { line: ['12 rue de la Paix', 'Bât. B'], city: 'Saint-Étienne', district: 'Loire', state: 'ARA', postalCode: '42000', country: 'FR', text: '12 rue de la Paix' },
    ],
  };
  t.same(entriesOf(patient, 'address'), [
    { kind: 'string', param: 'address', group: 0, value: '12 rue de la paix', exact: '12 rue de la Paix' },
    { kind: 'string', param: 'address', group: 0, value: 'bat b', exact: 'Bât. B' },
    { kind: 'string', param: 'address', group: 0, value: 'saint etienne', exact: 'Saint-Étienne' },
    { kind: 'string', param: 'address', group: 0, value: 'loire', exact: 'Loire' },
    { kind: 'string', param: 'address', group: 0, value: 'ara', exact: 'ARA' },
    { kind: 'string', param: 'address', group: 0, value: '42000', exact: '42000' },
    { kind: 'string', param: 'address', group: 0, value: 'fr', exact: 'FR' },
  ]);
  t.same(entriesOf(patient, 'address-city'), [{ kind: 'string', param: 'address-city', group: 0, value: 'saint etienne', exact: 'Saint-Étienne' }]);
  t.same(entriesOf(patient, 'address-postalcode'), [{ kind: 'string', param: 'address-postalcode', group: 0, value: '42000', exact: '42000' }]);
});

t.test('a string that normalises to nothing gives no string entry', async (t) => {
  t.same(entriesOf({ resourceType: 'Patient', name: [{ family: ' - ', given: ['  '] }] }, 'name'), []);
});

// ---------------------------------------------------------------------------------------------
// token parameters

t.test('an Identifier gives system, value and its normalised type text', async (t) => {
  const patient = {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '1840575123456', type: { text: 'Numéro INS' } }],
  };
  t.same(indexEntries(patient as Resource).filter((e) => e.param.startsWith('identifier')), [
    { kind: 'token', param: 'identifier', group: 0, system: 'urn:oid:1.2.250.1.213.1.4.8', code: '1840575123456', text: 'numero ins' },
  ]);
});

t.test('an Identifier with type codings gives one :of-type entry per coding', async (t) => {
  const patient = {
    resourceType: 'Patient',
    identifier: [
      {
        system: 'http://hospital.example/mrn',
        value: 'A-42',
        type: {
          coding: [
            { system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' },
            { system: 'http://example.org/local-types', code: 'DOSSIER' },
          ],
        },
      },
    ],
  };
  t.same(indexEntries(patient as Resource).filter((e) => e.param.startsWith('identifier')), [
    { kind: 'token', param: 'identifier', group: 0, system: 'http://hospital.example/mrn', code: 'A-42', text: null },
    { kind: 'token', param: 'identifier:of-type', group: 0, system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR|A-42', text: null },
    { kind: 'token', param: 'identifier:of-type', group: 0, system: 'http://example.org/local-types', code: 'DOSSIER|A-42', text: null },
  ]);
});

t.test('an Identifier with a system but no value gives a system-only entry', async (t) => {
  t.same(entriesOf({ resourceType: 'Patient', identifier: [{ system: 'urn:x' }] }, 'identifier'), [
    { kind: 'token', param: 'identifier', group: 0, system: 'urn:x', code: null, text: null },
  ]);
});

t.test('a CodeableConcept gives each coding with its display, and its text as a text-only entry', async (t) => {
  const observation = {
    resourceType: 'Observation',
    status: 'final',
    code: {
      coding: [
        { system: 'http://loinc.org', code: '8480-6', display: 'Systolic blood pressure' },
        { system: 'http://snomed.info/sct', code: '271649006' },
      ],
      text: 'Pression artérielle systolique',
    },
  };
  t.same(entriesOf(observation, 'code'), [
    { kind: 'token', param: 'code', group: 0, system: 'http://loinc.org', code: '8480-6', text: 'systolic blood pressure' },
    { kind: 'token', param: 'code', group: 0, system: 'http://snomed.info/sct', code: '271649006', text: null },
    { kind: 'token', param: 'code', group: 0, system: null, code: null, text: 'pression arterielle systolique' },
  ]);
});

t.test('a CodeableConcept with only text gives one entry without system and code', async (t) => {
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'Tension' } }, 'code'), [
    { kind: 'token', param: 'code', group: 0, system: null, code: null, text: 'tension' },
  ]);
});

t.test('a Coding gives system, code and its display as text', async (t) => {
  const patient = { resourceType: 'Patient', meta: { tag: [{ system: 'http://example.org/tags', code: 'vip', display: 'Très important' }] } };
  t.same(entriesOf(patient, '_tag'), [{ kind: 'token', param: '_tag', group: 0, system: 'http://example.org/tags', code: 'vip', text: 'tres important' }]);
});

t.test('a ContactPoint gives its value as code without system', async (t) => {
  const patient = {
    resourceType: 'Patient',
    telecom: [
      { system: 'phone', value: '+33 1 23 45 67 89', use: 'home' },
      { system: 'email', value: 'helene@example.fr' },
    ],
  };
  t.same(entriesOf(patient, 'telecom'), [
    { kind: 'token', param: 'telecom', group: 0, system: null, code: '+33 1 23 45 67 89', text: null },
    { kind: 'token', param: 'telecom', group: 0, system: null, code: 'helene@example.fr', text: null },
  ]);
  t.same(entriesOf(patient, 'phone'), [{ kind: 'token', param: 'phone', group: 0, system: null, code: '+33 1 23 45 67 89', text: null }]);
  t.same(entriesOf(patient, 'email'), [{ kind: 'token', param: 'email', group: 0, system: null, code: 'helene@example.fr', text: null }]);
});

t.test('a boolean gives "true" or "false" as code', async (t) => {
  t.same(entriesOf({ resourceType: 'Patient', active: false }, 'active'), [{ kind: 'token', param: 'active', group: 0, system: null, code: 'false', text: null }]);
  t.same(entriesOf({ resourceType: 'Patient', active: true }, 'active'), [{ kind: 'token', param: 'active', group: 0, system: null, code: 'true', text: null }]);
});

t.test('a code primitive gives its value as code without system', async (t) => {
  t.same(entriesOf({ resourceType: 'Patient', gender: 'female' }, 'gender'), [{ kind: 'token', param: 'gender', group: 0, system: null, code: 'female', text: null }]);
});

t.test('identical tokens found twice are indexed once', async (t) => {
  const patient = {
    resourceType: 'Patient',
    identifier: [
      { system: 'urn:x', value: '1' },
      { system: 'urn:x', value: '1', use: 'old' },
    ],
  };
  t.same(entriesOf(patient, 'identifier'), [{ kind: 'token', param: 'identifier', group: 0, system: 'urn:x', code: '1', text: null }]);
});

// ---------------------------------------------------------------------------------------------
// date parameters

t.test('a year covers the whole year', async (t) => {
  t.same(entriesOf({ resourceType: 'Patient', birthDate: '2024' }, 'birthdate'), [
    { kind: 'date', param: 'birthdate', group: 0, low: ms('2024-01-01T00:00:00.000Z'), high: ms('2024-12-31T23:59:59.999Z') },
  ]);
});

t.test('a month of a leap year covers 29 days of February', async (t) => {
  t.same(entriesOf({ resourceType: 'Patient', birthDate: '2024-02' }, 'birthdate'), [
    { kind: 'date', param: 'birthdate', group: 0, low: ms('2024-02-01T00:00:00.000Z'), high: ms('2024-02-29T23:59:59.999Z') },
  ]);
});

t.test('February of a common year has 28 days, and 1900 is not a leap year', async (t) => {
  t.same(dateRange('2023-02'), [ms('2023-02-01T00:00:00.000Z'), ms('2023-02-28T23:59:59.999Z')]);
  t.same(dateRange('1900-02'), [ms('1900-02-01T00:00:00.000Z'), ms('1900-02-28T23:59:59.999Z')]);
  t.same(dateRange('2000-02'), [ms('2000-02-01T00:00:00.000Z'), ms('2000-02-29T23:59:59.999Z')]);
  t.equal(dateRange('2023-02-29'), null);
  t.same(dateRange('2024-02-29'), [ms('2024-02-29T00:00:00.000Z'), ms('2024-02-29T23:59:59.999Z')]);
});

t.test('December ends at the end of the year', async (t) => {
  t.same(dateRange('2024-12'), [ms('2024-12-01T00:00:00.000Z'), ms('2024-12-31T23:59:59.999Z')]);
});

t.test('a day covers its 24 hours in UTC', async (t) => {
  t.same(entriesOf({ resourceType: 'Patient', birthDate: '1974-12-25' }, 'birthdate'), [
    { kind: 'date', param: 'birthdate', group: 0, low: ms('1974-12-25T00:00:00.000Z'), high: ms('1974-12-25T23:59:59.999Z') },
  ]);
});

t.test('a dateTime with seconds and an offset covers that second, converted to UTC', async (t) => {
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectiveDateTime: '2024-03-10T10:20:30+02:00' }, 'date'), [
    { kind: 'date', param: 'date', group: 0, low: ms('2024-03-10T08:20:30.000Z'), high: ms('2024-03-10T08:20:30.999Z') },
  ]);
  t.same(dateRange('2024-03-10T23:30:00-05:30'), [ms('2024-03-11T05:00:00.000Z'), ms('2024-03-11T05:00:00.999Z')]);
});

t.test('a dateTime without time zone is read as UTC', async (t) => {
  t.same(dateRange('2024-03-10T10:20:30'), [ms('2024-03-10T10:20:30.000Z'), ms('2024-03-10T10:20:30.999Z')]);
});

t.test('an instant with milliseconds covers that millisecond', async (t) => {
  t.same(entriesOf({ resourceType: 'Patient', meta: { lastUpdated: '2024-01-02T03:04:05.678Z' } }, '_lastUpdated'), [
    { kind: 'date', param: '_lastUpdated', group: 0, low: ms('2024-01-02T03:04:05.678Z'), high: ms('2024-01-02T03:04:05.678Z') },
  ]);
});

t.test('fractions of a second shorter than milliseconds widen the range, longer ones truncate', async (t) => {
  t.same(dateRange('2024-01-02T03:04:05.1Z'), [ms('2024-01-02T03:04:05.100Z'), ms('2024-01-02T03:04:05.199Z')]);
  t.same(dateRange('2024-01-02T03:04:05.12Z'), [ms('2024-01-02T03:04:05.120Z'), ms('2024-01-02T03:04:05.129Z')]);
  t.same(dateRange('2024-01-02T03:04:05.123456Z'), [ms('2024-01-02T03:04:05.123Z'), ms('2024-01-02T03:04:05.123Z')]);
});

t.test('a time without seconds covers the minute', async (t) => {
  t.same(dateRange('2024-01-02T03:04Z'), [ms('2024-01-02T03:04:00.000Z'), ms('2024-01-02T03:04:59.999Z')]);
});

t.test('years before 100 are not shifted to the twentieth century', async (t) => {
  t.same(dateRange('0050'), [ms('0050-01-01T00:00:00.000Z'), ms('0050-12-31T23:59:59.999Z')]);
  t.same(dateRange('0004-02'), [ms('0004-02-01T00:00:00.000Z'), ms('0004-02-29T23:59:59.999Z')]);
});

t.test('invalid date strings give no entry and do not throw', async (t) => {
  for (const bad of ['2024-02-30', '2024-13', '2024-00-10', 'not a date', '24-01-01', '2024-01-01T25:00:00Z', '2024-01-01Z', '', '2024-01-01T10:00:00+15:00']) {
    t.equal(dateRange(bad), null, bad);
    t.same(entriesOf({ resourceType: 'Patient', birthDate: bad }, 'birthdate'), [], bad);
  }
});

t.test('a Period without end runs from the low bound of its start to MAX_TIME', async (t) => {
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectivePeriod: { start: '2024-01-15' } }, 'date'), [
    { kind: 'date', param: 'date', group: 0, low: ms('2024-01-15T00:00:00.000Z'), high: MAX_TIME },
  ]);
});

t.test('a Period without start runs from MIN_TIME to the high bound of its end', async (t) => {
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectivePeriod: { end: '2024-01' } }, 'date'), [
    { kind: 'date', param: 'date', group: 0, low: MIN_TIME, high: ms('2024-01-31T23:59:59.999Z') },
  ]);
});

t.test('a Period spans from the low bound of its start to the high bound of its end', async (t) => {
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectivePeriod: { start: '2024-01-15T08:00:00Z', end: '2024-01-16' } }, 'date'), [
    { kind: 'date', param: 'date', group: 0, low: ms('2024-01-15T08:00:00.000Z'), high: ms('2024-01-16T23:59:59.999Z') },
  ]);
});

t.test('an empty Period or one with an invalid bound gives no entry', async (t) => {
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectivePeriod: {} }, 'date'), []);
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectivePeriod: { start: '2024-99' } }, 'date'), []);
});

t.test('a Timing spans from its earliest event to its latest, and its bounds period', async (t) => {
  const timing = { event: ['2024-03-05T10:00:00Z', '2024-03-01', '2024-03-03'], repeat: { boundsPeriod: { start: '2024-02-28', end: '2024-03-04' }, frequency: 1, period: 1, periodUnit: 'd' } };
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectiveTiming: timing }, 'date'), [
    { kind: 'date', param: 'date', group: 0, low: ms('2024-02-28T00:00:00.000Z'), high: ms('2024-03-05T10:00:00.999Z') },
  ]);
});

t.test('a Timing with only an open bounds period runs to MAX_TIME', async (t) => {
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectiveTiming: { repeat: { boundsPeriod: { start: '2024' } } } }, 'date'), [
    { kind: 'date', param: 'date', group: 0, low: ms('2024-01-01T00:00:00.000Z'), high: MAX_TIME },
  ]);
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, effectiveTiming: { code: { text: 'BID' } } }, 'date'), []);
});

t.test('an Observation dateTime value is indexed under value-date', async (t) => {
  t.same(entriesOf(example('Observation', 'date-lastmp'), 'value-date'), [
    { kind: 'date', param: 'value-date', group: 0, low: ms('2016-12-30T00:00:00.000Z'), high: ms('2016-12-30T23:59:59.999Z') },
  ]);
});

// ---------------------------------------------------------------------------------------------
// number parameters (no served type has one in R4; profiles may add some)

t.test('decimal and integer values give number entries', async (t) => {
  t.same(valueEntries('number', 'n', 3.25), [{ kind: 'number', param: 'n', group: 0, value: 3.25 }]);
  t.same(valueEntries('number', 'n', 0), [{ kind: 'number', param: 'n', group: 0, value: 0 }]);
  t.same(valueEntries('number', 'n', '-12'), [{ kind: 'number', param: 'n', group: 0, value: -12 }]);
  t.same(valueEntries('number', 'n', 'twelve'), []);
  t.same(valueEntries('number', 'n', Number.NaN), []);
});

// ---------------------------------------------------------------------------------------------
// quantity parameters

t.test('a Quantity gives value, system, code and unit', async (t) => {
  t.same(entriesOf(example('Observation', 'f001'), 'value-quantity'), [
    { kind: 'quantity', param: 'value-quantity', group: 0, value: 6.3, system: 'http://unitsofmeasure.org', code: 'mmol/L', unit: 'mmol/l' },
  ]);
});

t.test('an Age is indexed as a quantity', async (t) => {
  const condition = { resourceType: 'Condition', subject: { reference: 'Patient/1' }, onsetAge: { value: 52, unit: 'ans', system: 'http://unitsofmeasure.org', code: 'a' } };
  t.same(entriesOf(condition, 'onset-age'), [{ kind: 'quantity', param: 'onset-age', group: 0, value: 52, system: 'http://unitsofmeasure.org', code: 'a', unit: 'ans' }]);
});

t.test('a Range gives its low and high as two quantities', async (t) => {
  const condition = { resourceType: 'Condition', subject: { reference: 'Patient/1' }, onsetRange: { low: { value: 40, unit: 'a' }, high: { value: 50, unit: 'a' } } };
  t.same(entriesOf(condition, 'onset-age'), [
    { kind: 'quantity', param: 'onset-age', group: 0, value: 40, system: null, code: null, unit: 'a' },
    { kind: 'quantity', param: 'onset-age', group: 0, value: 50, system: null, code: null, unit: 'a' },
  ]);
});

t.test('Money gives its value with the ISO 4217 system and the currency as code', async (t) => {
  t.same(valueEntries('quantity', 'price', Object.defineProperty({ value: 12.5, currency: 'EUR' }, '__path__', { value: { fhirNodeDataType: 'Money' } })), [
    { kind: 'quantity', param: 'price', group: 0, value: 12.5, system: 'urn:iso:std:iso:4217', code: 'EUR', unit: null },
  ]);
  t.same(valueEntries('quantity', 'price', { value: 3, currency: 'USD' }), [
    { kind: 'quantity', param: 'price', group: 0, value: 3, system: 'urn:iso:std:iso:4217', code: 'USD', unit: null },
  ]);
});

t.test('SampledData gives no quantity', async (t) => {
  const observation = { resourceType: 'Observation', status: 'final', code: { text: 'ECG' }, valueSampledData: { origin: { value: 2048 }, period: 10, dimensions: 1, data: '2041 2043' } };
  t.same(entriesOf(observation, 'value-quantity'), []);
});

t.test('a Quantity without value gives no entry', async (t) => {
  t.same(entriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: { unit: 'mg' } }, 'value-quantity'), []);
});

// ---------------------------------------------------------------------------------------------
// reference parameters

function observationWithSubject(subject: object): object {
  return { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject };
}

t.test('a relative reference gives target type and id without url', async (t) => {
  t.same(entriesOf(observationWithSubject({ reference: 'Patient/123' }), 'subject'), [
    { kind: 'reference', param: 'subject', group: 0, targetType: 'Patient', targetId: '123', url: null },
  ]);
});

t.test('a versioned relative reference gives target type and id without the version', async (t) => {
  t.same(entriesOf(observationWithSubject({ reference: 'Patient/123/_history/2' }), 'subject'), [
    { kind: 'reference', param: 'subject', group: 0, targetType: 'Patient', targetId: '123', url: null },
  ]);
});

t.test('an absolute reference gives target type, id and the whole URL', async (t) => {
  t.same(entriesOf(observationWithSubject({ reference: 'http://x.example/fhir/Patient/123' }), 'subject'), [
    { kind: 'reference', param: 'subject', group: 0, targetType: 'Patient', targetId: '123', url: 'http://x.example/fhir/Patient/123' },
  ]);
  t.same(entriesOf(observationWithSubject({ reference: 'http://x.example/fhir/Patient/123' }), 'patient'), [
    { kind: 'reference', param: 'patient', group: 0, targetType: 'Patient', targetId: '123', url: 'http://x.example/fhir/Patient/123' },
  ]);
});

t.test('a versioned absolute reference keeps the whole string as url', async (t) => {
  t.same(entriesOf(observationWithSubject({ reference: 'https://x.example/fhir/Patient/123/_history/4' }), 'subject'), [
    { kind: 'reference', param: 'subject', group: 0, targetType: 'Patient', targetId: '123', url: 'https://x.example/fhir/Patient/123/_history/4' },
  ]);
});

t.test('the patient parameter only takes references to patients', async (t) => {
  t.same(entriesOf(observationWithSubject({ reference: 'Group/g1' }), 'patient'), []);
  t.same(entriesOf(observationWithSubject({ reference: 'Group/g1' }), 'subject'), [
    { kind: 'reference', param: 'subject', group: 0, targetType: 'Group', targetId: 'g1', url: null },
  ]);
});

t.test('a contained reference gives nothing', async (t) => {
  t.same(indexEntries(observationWithSubject({ reference: '#p1' }) as Resource).filter((e) => e.param.startsWith('subject')), []);
});

t.test('a urn:uuid reference gives the URL only', async (t) => {
  t.same(entriesOf(observationWithSubject({ reference: 'urn:uuid:9b4c5f0a-3d1e-4a57-9c1f-2f1b4e0c6d7a' }), 'subject'), [
    { kind: 'reference', param: 'subject', group: 0, targetType: null, targetId: null, url: 'urn:uuid:9b4c5f0a-3d1e-4a57-9c1f-2f1b4e0c6d7a' },
  ]);
});

t.test('a bare id or a URL whose type is not a resource type gives no target', async (t) => {
  t.same(entriesOf(observationWithSubject({ reference: '123' }), 'subject'), []);
  t.same(parseReference('http://x.example/some/Thing/1'), [null, null, 'http://x.example/some/Thing/1']);
  t.same(parseReference('Thing/1'), null);
});

t.test('a reference identifier gives a token under <code>:identifier', async (t) => {
  const observation = observationWithSubject({ identifier: { system: 'urn:oid:1.2.250.1.213.1.4.8', value: '1840575123456' }, display: 'Hélène' });
  t.same(indexEntries(observation as Resource).filter((e) => e.param.startsWith('subject')), [
    { kind: 'token', param: 'subject:identifier', group: 0, system: 'urn:oid:1.2.250.1.213.1.4.8', code: '1840575123456', text: null },
  ]);
});

t.test('a reference with both a literal reference and an identifier gives both', async (t) => {
  const observation = observationWithSubject({ reference: 'Patient/123', identifier: { system: 'urn:x', value: '9' } });
  t.same(indexEntries(observation as Resource).filter((e) => e.param.startsWith('subject')), [
    { kind: 'reference', param: 'subject', group: 0, targetType: 'Patient', targetId: '123', url: null },
    { kind: 'token', param: 'subject:identifier', group: 0, system: 'urn:x', code: '9', text: null },
  ]);
});

t.test('a canonical gives its URL without the version', async (t) => {
  const history = {
    resourceType: 'FamilyMemberHistory',
    status: 'completed',
    patient: { reference: 'Patient/1' },
    relationship: { text: 'père' },
    instantiatesCanonical: ['http://example.org/Questionnaire/family|2.1', 'http://example.org/PlanDefinition/p'],
  };
  t.same(entriesOf(history, 'instantiates-canonical'), [
    { kind: 'reference', param: 'instantiates-canonical', group: 0, targetType: null, targetId: null, url: 'http://example.org/Questionnaire/family' },
    { kind: 'reference', param: 'instantiates-canonical', group: 0, targetType: null, targetId: null, url: 'http://example.org/PlanDefinition/p' },
  ]);
});

// ---------------------------------------------------------------------------------------------
// uri parameters

t.test('uri values are indexed as they are', async (t) => {
  const patient = { resourceType: 'Patient', meta: { profile: ['http://interopsante.org/fhir/StructureDefinition/FrPatient|1.0'], source: 'urn:carnet:import' } };
  t.same(entriesOf(patient, '_profile'), [{ kind: 'uri', param: '_profile', group: 0, value: 'http://interopsante.org/fhir/StructureDefinition/FrPatient|1.0' }]);
  t.same(entriesOf(patient, '_source'), [{ kind: 'uri', param: '_source', group: 0, value: 'urn:carnet:import' }]);
});

t.test('an attachment url is indexed under DocumentReference location', async (t) => {
  t.same(entriesOf(example('DocumentReference', 'example'), 'location'), [
    { kind: 'uri', param: 'location', group: 0, value: 'http://example.org/xds/mhd/Binary/07a6483f-732b-461e-86b6-edb665c45510' },
  ]);
});

// ---------------------------------------------------------------------------------------------
// composite parameters

t.test('each Observation component is its own composite group of code and quantity', async (t) => {
  const bp = example('Observation', 'blood-pressure');
  t.same(
    indexEntries(bp).filter((e) => e.param.startsWith('component-code-value-quantity#')),
    [
      { kind: 'token', param: 'component-code-value-quantity#0', group: 3, system: 'http://loinc.org', code: '8480-6', text: 'systolic blood pressure' },
      { kind: 'token', param: 'component-code-value-quantity#0', group: 3, system: 'http://snomed.info/sct', code: '271649006', text: 'systolic blood pressure' },
      { kind: 'token', param: 'component-code-value-quantity#0', group: 3, system: 'http://acme.org/devices/clinical-codes', code: 'bp-s', text: 'systolic blood pressure' },
      { kind: 'quantity', param: 'component-code-value-quantity#1', group: 3, value: 107, system: 'http://unitsofmeasure.org', code: 'mm[Hg]', unit: 'mmHg' },
      { kind: 'token', param: 'component-code-value-quantity#0', group: 4, system: 'http://loinc.org', code: '8462-4', text: 'diastolic blood pressure' },
      { kind: 'quantity', param: 'component-code-value-quantity#1', group: 4, value: 60, system: 'http://unitsofmeasure.org', code: 'mm[Hg]', unit: 'mmHg' },
    ],
  );
});

t.test('composite groups are unique within a resource and only composites have groups', async (t) => {
  const entries = indexEntries(example('Observation', 'blood-pressure'));
  const owner = new Map<number, string>();
  for (const e of entries) {
    const composite = e.param.includes('#');
    t.equal(e.group > 0, composite, `${e.param} group ${e.group}`);
    if (!composite) continue;
    const code = e.param.slice(0, e.param.indexOf('#'));
    t.equal(owner.get(e.group) ?? code, code, `group ${e.group} belongs to one parameter`);
    owner.set(e.group, code);
  }
  // combo-code-value-quantity: the panel itself has no value, so only its two components form groups.
  t.same([...owner].sort((a, b) => a[0] - b[0]), [
    [1, 'combo-code-value-quantity'],
    [2, 'combo-code-value-quantity'],
    [3, 'component-code-value-quantity'],
    [4, 'component-code-value-quantity'],
  ]);
});

t.test('a composite on the Observation itself groups its code with its value', async (t) => {
  t.same(
    indexEntries(example('Observation', 'f001')).filter((e) => e.param.startsWith('code-value-quantity#')),
    [
      { kind: 'token', param: 'code-value-quantity#0', group: 1, system: 'http://loinc.org', code: '15074-8', text: 'glucose moles volume in blood' },
      { kind: 'quantity', param: 'code-value-quantity#1', group: 1, value: 6.3, system: 'http://unitsofmeasure.org', code: 'mmol/L', unit: 'mmol/l' },
    ],
  );
});

t.test('a composite value missing a component gives no group', async (t) => {
  const entries = indexEntries(example('Observation', 'blood-pressure'));
  t.same(entries.filter((e) => e.param.startsWith('code-value-quantity#') || e.param.startsWith('component-code-value-concept#')), []);
});

t.test('several components with quantities index every quantity under combo-value-quantity', async (t) => {
  // The R4 expression "(Observation.component.value as Quantity)" is an error in fhirpath.js as
  // soon as there are two components; extraction reads it as ofType(Quantity).
  t.same(entriesOf(example('Observation', 'blood-pressure'), 'combo-value-quantity'), [
    { kind: 'quantity', param: 'combo-value-quantity', group: 0, value: 107, system: 'http://unitsofmeasure.org', code: 'mm[Hg]', unit: 'mmHg' },
    { kind: 'quantity', param: 'combo-value-quantity', group: 0, value: 60, system: 'http://unitsofmeasure.org', code: 'mm[Hg]', unit: 'mmHg' },
  ]);
});

t.test('code-value-date groups the code with a dateTime value', async (t) => {
  t.same(
    indexEntries(example('Observation', 'date-lastmp')).filter((e) => e.param === 'code-value-date#1'),
    [{ kind: 'date', param: 'code-value-date#1', group: 1, low: ms('2016-12-30T00:00:00.000Z'), high: ms('2016-12-30T23:59:59.999Z') }],
  );
});

// ---------------------------------------------------------------------------------------------
// Parameters without entries, robustness

t.test('_id gives no entry (engines read it off the envelope)', async (t) => {
  t.same(entriesOf({ resourceType: 'Patient', id: 'p1' }, '_id'), []);
});

t.test('odd but schema-valid elements give no entry and do not throw', async (t) => {
  // Only the usable parts remain: the given name, address use, and deceased, which the R4
  // expression "Patient.deceased.exists() and Patient.deceased != false" makes false when absent.
  const patient = {
    resourceType: 'Patient',
    identifier: [{ use: 'usual' }, { type: { text: 'only a type' } }],
    name: [{ use: 'official' }, { given: ['Jean'], _given: [{ extension: [{ url: 'http://x', valueString: 'y' }] }] }],
    telecom: [{ system: 'phone' }],
    address: [{ use: 'home' }],
    birthDate: '2024-02-30',
    _birthDate: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '2024-02-10T10:00:00Z' }] },
    managingOrganization: { display: 'Hôpital' },
    generalPractitioner: [{ reference: '#gp' }, { type: 'Practitioner' }],
    contact: [{ name: {} }],
    meta: { tag: [{ display: 'display only' }] },
  };
  let entries: IndexEntry[] = [];
  t.doesNotThrow(() => {
    entries = indexEntries(patient as Resource);
  });
  t.same(entries, [
    { kind: 'token', param: 'address-use', group: 0, system: null, code: 'home', text: null },
    { kind: 'token', param: 'deceased', group: 0, system: null, code: 'false', text: null },
    { kind: 'string', param: 'given', group: 0, value: 'jean', exact: 'Jean' },
    { kind: 'string', param: 'name', group: 0, value: 'jean', exact: 'Jean' },
    { kind: 'string', param: 'phonetic', group: 0, value: 'jean', exact: 'Jean' },
  ]);
});

t.test('a frozen resource is indexed like any other', async (t) => {
  const deepFreeze = <T>(v: T): T => {
    if (typeof v === 'object' && v !== null) {
      for (const child of Object.values(v)) deepFreeze(child);
      Object.freeze(v);
    }
    return v;
  };
  const patient = deepFreeze({ resourceType: 'Patient', gender: 'female', name: [{ family: 'Hélène' }] });
  t.same(indexEntries(patient as Resource), [
    { kind: 'token', param: 'deceased', group: 0, system: null, code: 'false', text: null },
    { kind: 'string', param: 'family', group: 0, value: 'helene', exact: 'Hélène' },
    { kind: 'token', param: 'gender', group: 0, system: null, code: 'female', text: null },
    { kind: 'string', param: 'name', group: 0, value: 'helene', exact: 'Hélène' },
    { kind: 'string', param: 'phonetic', group: 0, value: 'helene', exact: 'Hélène' },
  ]);
});

t.test('a resource of a type without parameters gives no entries', async (t) => {
  t.same(indexEntries({ resourceType: 'Basic', code: { text: 'x' } } as Resource), []);
});

// ---------------------------------------------------------------------------------------------
// Every official example

/** Whether an element found by a parameter's FHIRPath can be searched (so must give an entry). */
function indexable(type: string, value: unknown): boolean {
  // Immunization.occurrenceString ("January 2012") is found by the date parameter.
  if (type === 'date' && typeof value === 'string') return /^\d{4}(-\d{2}(-\d{2})?)?(T|$)/.test(value);
  // value-quantity also finds SampledData (R4: "value as SampledData"), which R4 search leaves unindexed.
  if (type === 'quantity' && typeof value === 'object' && value !== null && 'data' in value && 'period' in value) return false;
  if (type !== 'reference' || typeof value !== 'object' || value === null) return true;
  const ref = value as { reference?: unknown; identifier?: unknown };
  const literal = typeof ref.reference === 'string' && !ref.reference.startsWith('#');
  return literal || ref.identifier !== undefined;
}

t.test('every official example of a served type extracts, with entries for each parameter that finds a value', async (t) => {
  t.ok(existsSync(examplesDir), `examples folder ${examplesDir} exists`);
  const typesWithExamples = SERVED_TYPES.filter((type) => existsSync(join(examplesDir, type)));
  t.ok(typesWithExamples.length >= 17, `${typesWithExamples.length} served types have examples`);
  let resources = 0;
  let checked = 0;
  for (const type of typesWithExamples) {
    for (const file of readdirSync(join(examplesDir, type)).filter((f) => f.endsWith('.json'))) {
      const resource = JSON.parse(readFileSync(join(examplesDir, type, file), 'utf8')) as Resource;
      let entries: IndexEntry[] = [];
      t.doesNotThrow(() => {
        entries = indexEntries(resource);
      }, file);
      resources++;
      const params = new Set(entries.map((e) => e.param.replace(/[#:].*$/, '')));
      for (const param of paramsOf(type)) {
        if (!param.evaluate || param.type === 'id' || param.type === 'special') continue;
        let found: unknown[];
        try {
          found = param.evaluate(resource);
        } catch {
          continue; // "x as T" over several items: covered by the combo-value-quantity test
        }
        let expected = found.some((v) => indexable(param.type, v));
        if (param.type === 'composite') {
          expected = found.some((v) => (param.components ?? []).every((c) => c.evaluate(v).length > 0));
        }
        if (!expected) continue;
        checked++;
        t.ok(params.has(param.code), `${file}: ${param.code} (${param.type}) has entries`);
      }
    }
  }
  t.ok(resources >= 180, `${resources} examples`);
  t.ok(checked >= 1000, `${checked} parameter values checked`);
});

t.test('every entry is well formed', async (t) => {
  for (const type of SERVED_TYPES.filter((ty) => existsSync(join(examplesDir, ty)))) {
    for (const file of readdirSync(join(examplesDir, type)).filter((f) => f.endsWith('.json'))) {
      const resource = JSON.parse(readFileSync(join(examplesDir, type, file), 'utf8')) as Resource;
      const entries = indexEntries(resource);
      const keys = new Set(entries.map((e) => JSON.stringify(e)));
      t.equal(keys.size, entries.length, `${file}: no duplicates`);
      for (const e of entries) {
        const base = e.param.replace(/[#:].*$/, '');
        if (!findParam(type, base)) t.fail(`${file}: ${e.param} is not a parameter of ${type}`);
        if (e.kind === 'date' && !(e.low <= e.high)) t.fail(`${file}: ${e.param} range ${e.low}..${e.high}`);
        if (e.kind === 'string' && e.value !== normalizeString(e.exact)) t.fail(`${file}: ${e.param} value not normalised`);
        if ((e.kind === 'number' || e.kind === 'quantity') && !Number.isFinite(e.value)) t.fail(`${file}: ${e.param} value`);
      }
    }
  }
});

t.test('referenceEntries: the reference entries of one parameter (or all) as indexEntries files them, on every official example', async (t) => {
  let compared = 0;
  for (const type of SERVED_TYPES.filter((ty) => existsSync(join(examplesDir, ty)))) {
    const codes = ['*', ...paramsOf(type).filter((p) => p.type === 'reference').map((p) => p.code)];
    for (const file of readdirSync(join(examplesDir, type)).filter((f) => f.endsWith('.json'))) {
      const resource = JSON.parse(readFileSync(join(examplesDir, type, file), 'utf8')) as Resource;
      const references = indexEntries(resource).filter((e) => e.kind === 'reference' && e.group === 0);
      for (const code of codes) {
        const expected = references.filter((e) => code === '*' || e.param === code);
        t.same(referenceEntries(resource, code), expected, `${file}: ${code}`);
        compared += expected.length;
      }
    }
  }
  t.ok(compared >= 300, `${compared} reference entries compared`);
});
