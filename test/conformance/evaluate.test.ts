// The conformance runner's assert evaluator and variable substitution, on plain values: every
// operator both ways, each assert element, warningOnly, unsupported elements, ${var} resolution.
import t from 'tap';
import { compare, containsMinimum, evaluateAssert } from '../../src/conformance/asserts.js';
import { substitute, substituteDeep, UnresolvedVariable, Variables } from '../../src/conformance/variables.js';
import type { Assert, Exchange } from '../../src/conformance/types.js';

const patient = { resourceType: 'Patient', id: 'p1', name: [{ family: 'Chalmers', given: ['Peter', 'James'] }], active: true };
const exchange = (over: Partial<Exchange> = {}): Exchange => ({
  method: 'GET',
  url: 'http://x/fhir/Patient/p1',
  status: 200,
  requestHeaders: { accept: 'application/fhir+json', 'content-type': 'application/fhir+json' },
  headers: { 'content-type': 'application/fhir+json; charset=utf-8', etag: 'W/"1"', location: 'http://x/fhir/Patient/p1/_history/1' },
  body: JSON.stringify(patient),
  json: patient,
  ...over,
});
const fixtures: Record<string, unknown> = { min: { resourceType: 'Patient', name: [{ family: 'Chalmers' }] }, other: { resourceType: 'Patient', name: [{ family: 'Smith' }] } };
const run = (a: Partial<Assert>, x: Exchange | undefined = exchange()) => evaluateAssert({ warningOnly: false, ...a }, { exchange: x, body: (id) => fixtures[id] });

t.test('compare: every operator holds and fails', async (t) => {
  const cases: Array<[Parameters<typeof compare>, boolean]> = [
    [['equals', 'a', 'a'], true],
    [['equals', 'a', 'b'], false],
    [['equals', '1.0', '1'], true],
    [['equals', undefined, 'a'], false],
    [['notEquals', 'a', 'b'], true],
    [['notEquals', 'a', 'a'], false],
    [['in', '204', '200,204'], true],
    [['in', '404', '200,204'], false],
    [['notIn', '404', '200, 204'], true],
    [['notIn', '200', '200,204'], false],
    [['greaterThan', '10', '9'], true],
    [['greaterThan', '9', '10'], false],
    [['greaterThan', undefined, '1'], false],
    [['lessThan', '9', '10'], true],
    [['lessThan', 'b', 'a'], false],
    [['empty', undefined, undefined], true],
    [['empty', 'x', undefined], false],
    [['notEmpty', 'x', undefined], true],
    [['notEmpty', '', undefined], false],
    [['contains', 'W/"1"', 'W/'], true],
    [['contains', 'abc', 'z'], false],
    [['notContains', 'abc', 'z'], true],
    [['notContains', 'abc', 'b'], false],
    [['eval', 'true', undefined], true],
    [['eval', 'false', undefined], false],
    [['equals', 'a', undefined], false],
  ];
  for (const [args, holds] of cases) t.equal(compare(...args) === undefined, holds, `${args[0]}(${args[1]}, ${args[2]}) ${holds ? 'holds' : 'fails'}`);
  t.match(compare('in', '404', '200,204'), /expected one of 200,204, got "404"/);
});

t.test('containsMinimum: a deep subset, arrays matched item by item', async (t) => {
  t.ok(containsMinimum(patient, fixtures.min));
  t.notOk(containsMinimum(patient, fixtures.other));
  t.ok(containsMinimum(patient, { resourceType: 'Patient', id: 'ignored', name: [{ given: ['James'] }] }), 'id and meta are not compared');
  t.notOk(containsMinimum(patient, { gender: 'male' }));
});

t.test('response, responseCode, resource, contentType, headerField', async (t) => {
  t.equal(run({ response: 'okay' }).result, 'pass');
  t.equal(run({ response: 'notFound' }).result, 'fail');
  t.match(run({ response: 'created' }).message, /expected "201", got "200"/);
  t.equal(run({ responseCode: '200,204' }).result, 'pass', 'a list means in');
  t.equal(run({ responseCode: '201' }).result, 'fail');
  t.equal(run({ responseCode: '400', operator: 'lessThan' }).result, 'pass');
  t.equal(run({ resource: 'Patient' }).result, 'pass');
  t.equal(run({ resource: 'Bundle' }).result, 'fail');
  t.equal(run({ contentType: 'json' }).result, 'pass', 'json stands for application/fhir+json; parameters ignored');
  t.equal(run({ contentType: 'application/pdf' }).result, 'fail');
  t.equal(run({ headerField: 'ETag', operator: 'contains', value: 'W/' }).result, 'pass');
  t.equal(run({ headerField: 'Last-Modified' }).result, 'fail', 'no value: the header must be present');
  t.equal(run({ headerField: 'Last-Modified', operator: 'empty' }).result, 'pass');
  t.equal(run({ direction: 'request', headerField: 'Accept', value: 'application/fhir+json' }).result, 'pass', 'direction request reads the request');
  t.equal(run({ requestMethod: 'get' }).result, 'pass');
  t.equal(evaluateAssert({ response: 'okay', warningOnly: false }, { exchange: undefined, body: () => undefined }).result, 'fail', 'no exchange yet');
});

t.test('expression: FHIRPath on the response or a fixture, with a value, a comparison source, or alone', async (t) => {
  t.equal(run({ expression: 'Patient.name.family', value: 'Chalmers' }).result, 'pass');
  t.equal(run({ expression: 'Patient.name.family', value: 'Smith' }).result, 'fail');
  t.equal(run({ expression: 'Patient.name.given.count()', operator: 'greaterThan', value: '1' }).result, 'pass');
  t.equal(run({ expression: 'Patient.active' }).result, 'pass', 'no value: the expression must be true');
  t.equal(run({ expression: 'Patient.active.not()' }).result, 'fail');
  t.equal(run({ expression: 'Patient.birthDate' }).result, 'fail', 'empty is not true');
  t.equal(run({ expression: 'Patient.birthDate', operator: 'empty' }).result, 'pass');
  t.equal(run({ expression: 'Patient.name', operator: 'notEmpty' }).result, 'pass');
  t.equal(run({ expression: 'Patient.name.family', sourceId: 'other', value: 'Smith' }).result, 'pass', 'sourceId reads a fixture');
  t.equal(run({ expression: 'Patient.name.family', compareToSourceId: 'min', compareToSourceExpression: 'Patient.name.family' }).result, 'pass');
  t.equal(run({ expression: 'Patient.name.family', compareToSourceId: 'other', compareToSourceExpression: 'Patient.name.family' }).result, 'fail');
  t.equal(run({ expression: 'Patient.name.(' }).result, 'error', 'a broken expression is an error');
  t.equal(run({ expression: 'token_endpoint', value: 'http://x/auth/token' }, exchange({ json: { token_endpoint: 'http://x/auth/token' } })).result, 'pass', 'any JSON, not only FHIR');
});

t.test('minimumId, warningOnly, unsupported elements', async (t) => {
  t.equal(run({ minimumId: 'min' }).result, 'pass');
  t.equal(run({ minimumId: 'other' }).result, 'fail');
  t.equal(run({ response: 'notFound', warningOnly: true }).result, 'warning', 'a failed warningOnly assert is a warning');
  t.equal(run({ path: 'fhir:Patient/fhir:name' }).result, 'error', 'XPath is refused, never passed');
  t.equal(run({ validateProfileId: 'p' }).result, 'error');
  t.equal(run({ description: 'nothing' }).result, 'error', 'an assert checking nothing is an error');
  t.equal(run({ response: 'okay', resource: 'Bundle' }).result, 'fail', 'every element of an assert must hold');
});

t.test('substitution', async (t) => {
  const values: Record<string, string> = { a: 'A', 'token-x': 'T' };
  const lookup = async (name: string) => values[name];
  t.equal(await substitute('x${a}y${a}${token-x}', lookup), 'xAyAT');
  t.equal(await substitute('no variables', lookup), 'no variables');
  await t.rejects(substitute('${missing}', lookup), new UnresolvedVariable('missing'));
  t.same(await substituteDeep({ s: '${a}', n: 1, list: ['${a}', true], nested: { b: 'Patient/${a}' } }, lookup), { s: 'A', n: 1, list: ['A', true], nested: { b: 'Patient/A' } });
});

t.test('variables: supplied, defaultValue (itself substituted), expression, headerField, token fallback', async (t) => {
  const latest = exchange();
  let assertions = 0;
  const vars = new Variables(
    [
      { name: 'pid', expression: 'Patient.id', sourceId: 'read' },
      { name: 'ref', defaultValue: 'Patient/${pid}' },
      { name: 'family', expression: 'Patient.name.family' },
      { name: 'etag', headerField: 'ETag' },
      { name: 'overridden', defaultValue: 'script' },
      { name: 'absent', expression: 'Patient.gender', defaultValue: 'unknown' },
      { name: 'xpath', path: 'fhir:Patient/fhir:id' },
    ],
    { overridden: 'runner', fresh: () => `assertion-${++assertions}` },
    { body: (id) => (id === 'read' ? patient : undefined), exchange: () => latest, latest: () => latest },
    'fallback-token',
  );
  t.equal(await vars.lookup('pid'), 'p1');
  t.equal(await vars.lookup('ref'), 'Patient/p1');
  t.equal(await vars.lookup('family'), 'Chalmers', 'no sourceId: the latest response');
  t.equal(await vars.lookup('etag'), 'W/"1"');
  t.equal(await vars.lookup('overridden'), 'runner', 'a supplied value wins');
  t.equal(await vars.lookup('absent'), 'unknown', 'an empty result falls back to the default');
  t.equal(await vars.lookup('fresh'), 'assertion-1');
  t.equal(await vars.lookup('fresh'), 'assertion-2', 'a computed value is computed at each use');
  t.equal(await vars.lookup('token-anyone'), 'fallback-token');
  t.equal(await vars.lookup('nothing'), undefined);
  await t.rejects(vars.lookup('xpath'), /path .* is not supported/);
});
