import t from 'tap';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isR4ResourceType, schemaIssues } from '../../src/fhir/validate.js';
import { R4_EXAMPLES } from '../fixtures/data-paths.js';

// The official HL7 R4 examples (a subset, test/fixtures/data/PROVENANCE.md); CARNET_R4_EXAMPLES
// names another copy laid out as <Type>/*.json, e.g. the whole package.
const examplesDir = process.env.CARNET_R4_EXAMPLES ?? R4_EXAMPLES;

t.test('every official R4 example resource validates with no issues', async (t) => {
  t.ok(existsSync(examplesDir), `examples folder ${examplesDir} exists`);
  const files = readdirSync(examplesDir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.json'));
  t.ok(files.length >= 200, `found ${files.length} examples`);
  for (const file of files) {
    const resource: unknown = JSON.parse(readFileSync(join(examplesDir, file), 'utf8'));
    t.same(schemaIssues(resource), [], file);
  }
});

t.test('a Medplum-only resource type is not valid FHIR R4', async (t) => {
  t.same(schemaIssues({ resourceType: 'Project' }), [
    { expression: 'resourceType', diagnostics: `Unknown FHIR R4 resource type "Project"` },
  ]);
});

t.test('an unknown resource type is rejected', async (t) => {
  t.same(schemaIssues({ resourceType: 'Nope' }), [
    { expression: 'resourceType', diagnostics: `Unknown FHIR R4 resource type "Nope"` },
  ]);
});

t.test('a resource without resourceType is rejected', async (t) => {
  t.same(schemaIssues({ id: 'x' }), [{ expression: 'resourceType', diagnostics: 'Missing resourceType' }]);
});

t.test('a body that is not a JSON object is rejected', async (t) => {
  t.equal(schemaIssues([]).length, 1);
  t.equal(schemaIssues('Patient').length, 1);
  t.equal(schemaIssues(null).length, 1);
});

t.test('an unknown element is reported at the element itself', async (t) => {
  t.same(schemaIssues({ resourceType: 'Patient', foo: 1 }), [
    { expression: 'Patient.foo', diagnostics: `Unknown element 'foo'` },
  ]);
});

t.test('an unknown element whose name is not an identifier is quoted FHIRPath-style', async (t) => {
  t.same(schemaIssues({ resourceType: 'Patient', 'my field': 1 }), [
    { expression: 'Patient.`my field`', diagnostics: `Unknown element 'my field'` },
  ]);
});

t.test('an unknown element deep inside a datatype is reported with its full path', async (t) => {
  const issues = schemaIssues({ resourceType: 'Patient', name: [{ family: 'Lovelace', nickname: 'Ada' }] });
  t.same(issues, [{ expression: 'Patient.name[0].nickname', diagnostics: `Unknown element 'nickname'` }]);
});

t.test('a primitive of the wrong JSON type says what was expected', async (t) => {
  const issues = schemaIssues({ resourceType: 'Patient', active: 'yes' });
  t.equal(issues.length, 1);
  t.equal(issues[0]?.expression, 'Patient.active');
  t.match(issues[0]?.diagnostics, /^Expected a boolean/);
});

t.test('a wrong JSON type names the FHIR type expected and the value given', async (t) => {
  t.same(schemaIssues({ resourceType: 'Patient', birthDate: 19800101 }), [
    { expression: 'Patient.birthDate', diagnostics: 'Expected a string (FHIR date), got a number (19800101)' },
  ]);
});

t.test('null is not a valid value for an element', async (t) => {
  t.same(schemaIssues({ resourceType: 'Patient', birthDate: null }), [
    { expression: 'Patient.birthDate', diagnostics: 'Expected a string (FHIR date), got null' },
  ]);
});

t.test('long offending values are shortened in diagnostics', async (t) => {
  const issues = schemaIssues({ resourceType: 'Patient', birthDate: '9'.repeat(10_000) });
  t.equal(issues.length, 1);
  t.ok((issues[0]?.diagnostics.length ?? Infinity) < 200, 'diagnostics stay short');
});

t.test('a string element given a number says a string was expected', async (t) => {
  const issues = schemaIssues({ resourceType: 'Patient', name: [{ given: ['Ada', 42] }] });
  t.equal(issues.length, 1);
  t.equal(issues[0]?.expression, 'Patient.name[0].given[1]');
  t.match(issues[0]?.diagnostics, /^Expected a string/);
});

t.test('a malformed date names the FHIR type and the value', async (t) => {
  t.same(schemaIssues({ resourceType: 'Patient', birthDate: '2024-13-45' }), [
    { expression: 'Patient.birthDate', diagnostics: 'Not a valid FHIR date: "2024-13-45"' },
  ]);
});

t.test('a malformed value in a choice element names the FHIR type', async (t) => {
  const issues = schemaIssues({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'weight' },
    effectiveDateTime: '2024-02-30T25:00:00Z',
  });
  t.same(issues, [
    { expression: 'Observation.effectiveDateTime', diagnostics: 'Not a valid FHIR dateTime: "2024-02-30T25:00:00Z"' },
  ]);
});

t.test('an element that should be an array given as an object is rejected', async (t) => {
  const issues = schemaIssues({ resourceType: 'Patient', name: { family: 'Lovelace' } });
  t.equal(issues.length, 1);
  t.equal(issues[0]?.expression, 'Patient.name');
  t.match(issues[0]?.diagnostics, /^Expected an array/);
});

t.test('a datatype given as a string is rejected', async (t) => {
  const issues = schemaIssues({ resourceType: 'Patient', name: ['Ada Lovelace'] });
  t.equal(issues.length, 1);
  t.equal(issues[0]?.expression, 'Patient.name[0]');
  t.match(issues[0]?.diagnostics, /^Expected an object/);
});

t.test('a code outside its value set is rejected with the allowed codes', async (t) => {
  const issues = schemaIssues({ resourceType: 'Patient', gender: 'robot' });
  t.equal(issues.length, 1);
  t.equal(issues[0]?.expression, 'Patient.gender');
  t.match(issues[0]?.diagnostics, /male, female, other, unknown/);
});

t.test('a missing required element is reported where it belongs', async (t) => {
  t.same(schemaIssues({ resourceType: 'Observation', status: 'final' }), [
    { expression: 'Observation.code', diagnostics: `Missing required element 'code'` },
  ]);
});

t.test('an integer element given a fraction is rejected', async (t) => {
  const issues = schemaIssues({ resourceType: 'Patient', multipleBirthInteger: 1.5 });
  t.equal(issues.length, 1);
  t.equal(issues[0]?.expression, 'Patient.multipleBirthInteger');
  t.match(issues[0]?.diagnostics, /^Expected an integer/);
});

t.test('a positiveInt of zero is rejected', async (t) => {
  const issues = schemaIssues({
    resourceType: 'Immunization',
    status: 'completed',
    vaccineCode: { text: 'flu' },
    patient: { reference: 'Patient/1' },
    occurrenceDateTime: '2024-01-01',
    protocolApplied: [{ doseNumberPositiveInt: 0 }],
  });
  t.same(issues, [
    { expression: 'Immunization.protocolApplied[0].doseNumberPositiveInt', diagnostics: 'Not a valid FHIR positiveInt: 0' },
  ]);
});

t.test('an error inside a contained resource is reported with its path', async (t) => {
  const issues = schemaIssues({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'weight' },
    contained: [{ resourceType: 'Patient', id: 'p1', birthDate: 'yesterday' }],
    subject: { reference: '#p1' },
  });
  t.same(issues, [{ expression: 'Observation.contained[0].birthDate', diagnostics: 'Not a valid FHIR date: "yesterday"' }]);
});

t.test('a Medplum-only resource type inside contained is rejected', async (t) => {
  t.same(schemaIssues({ resourceType: 'Patient', contained: [{ resourceType: 'Bot', id: 'b' }] }), [
    { expression: 'Patient.contained[0].resourceType', diagnostics: `Unknown FHIR R4 resource type "Bot"` },
  ]);
});

t.test('a contained resource without resourceType is reported once', async (t) => {
  t.same(schemaIssues({ resourceType: 'Patient', contained: [{ id: 'x' }] }), [
    { expression: 'Patient.contained[0].resourceType', diagnostics: `Missing required element 'resourceType'` },
  ]);
});

t.test('an error inside a Bundle entry resource is reported with its path', async (t) => {
  const issues = schemaIssues({
    resourceType: 'Bundle',
    type: 'collection',
    entry: [{ resource: { resourceType: 'Patient' } }, { resource: { resourceType: 'Patient', foo: true } }],
  });
  t.same(issues, [{ expression: 'Bundle.entry[1].resource.foo', diagnostics: `Unknown element 'foo'` }]);
});

t.test('Medplum additions to R4 datatypes are unknown elements', async (t) => {
  const issues = schemaIssues({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'x' },
    subject: { reference: 'Patient/1', resource: { resourceType: 'Patient' } },
  });
  t.same(issues, [{ expression: 'Observation.subject.resource', diagnostics: `Unknown element 'resource'` }]);
});

t.test('several problems are all reported, each once', async (t) => {
  const issues = schemaIssues({ resourceType: 'Patient', foo: 1, bar: 2, birthDate: 'x', active: 'x' });
  t.same(issues.map((i) => i.expression).sort(), ['Patient.active', 'Patient.bar', 'Patient.birthDate', 'Patient.foo']);
});

t.test('the number of issues is capped at 50', async (t) => {
  const given = Array.from({ length: 500 }, (_, i) => i);
  const issues = schemaIssues({ resourceType: 'Patient', name: [{ given }] });
  t.equal(issues.length, 50);
  t.equal(issues[0]?.expression, 'Patient.name[0].given[0]');
});

t.test('base64 with whitespace is checked in linear time', async (t) => {
  // The published schema's base64 pattern backtracks exponentially on this input.
  const data = 'AAAA  '.repeat(40) + 'A!';
  const issues = schemaIssues({ resourceType: 'Binary', contentType: 'text/plain', data });
  t.equal(issues.length, 1);
  t.equal(issues[0]?.expression, 'Binary.data');
});

function nestedQuestionnaire(depth: number): object {
  let item: object = { linkId: 'leaf', type: 'string', text: 'What?' };
  for (let i = 0; i < depth; i++) item = { linkId: `g${i}`, type: 'group', item: [item] };
  return { resourceType: 'Questionnaire', status: 'draft', item: [item] };
}

t.test('a deeply nested but valid Questionnaire validates', async (t) => {
  t.same(schemaIssues(nestedQuestionnaire(200)), []);
});

t.test('absurdly deep nesting gives an issue instead of crashing', async (t) => {
  const issues = schemaIssues(nestedQuestionnaire(20_000));
  t.same(issues, [{ expression: 'Questionnaire', diagnostics: 'Resource is nested too deeply to validate' }]);
});

t.test('isR4ResourceType knows the 146 R4 resource types and nothing else', async (t) => {
  t.ok(isR4ResourceType('Patient'));
  t.ok(isR4ResourceType('VisionPrescription'));
  t.notOk(isR4ResourceType('Project'));
  t.notOk(isR4ResourceType('SubscriptionStatus'));
  t.notOk(isR4ResourceType('DomainResource'));
  t.notOk(isR4ResourceType('patient'));
});

t.test('a missing generated validator fails loudly with the command to run', async (t) => {
  // A copy of the module in a tree without generated/, loaded in a child process so this
  // process keeps one instance of the module (and tap its coverage).
  const root = mkdtempSync(join(tmpdir(), 'carnet-validate-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'src', 'fhir'), { recursive: true });
  writeFileSync(join(root, 'package.json'), '{"type":"module"}');
  const copy = join(root, 'src', 'fhir', 'validate.ts');
  copyFileSync(fileURLToPath(new URL('../../src/fhir/validate.ts', import.meta.url)), copy);
  const child = spawnSync(process.execPath, ['--import', 'tsx', copy], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)), // where tsx is installed
    encoding: 'utf8',
  });
  t.not(child.status, 0);
  t.match(child.stderr, /npm run build:validators/);
});
