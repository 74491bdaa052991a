// Profiles over HTTP: $validate?profile= (query and Parameters forms), and writes whose
// meta.profile names a profile Carnet knows (422 and nothing stored when they do not conform).
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Bundle, DocumentReference, Identifier, List, OperationOutcome, Practitioner, Resource } from '@medplum/fhirtypes';
import { fhir, json, FIXTURE_DATA, testServer } from '../helpers.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

const MHD = 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/';
const COMPREHENSIVE = `${MHD}IHE.MHD.Comprehensive.DocumentReference`;
const SUBMISSION_SET = `${MHD}IHE.MHD.Minimal.SubmissionSet`;
const RPPS = 'urn:carnet:fhir:StructureDefinition:carnet-practitioner-rpps';

function read<T extends Resource>(relative: string): T {
  const resource = JSON.parse(fs.readFileSync(path.join(FIXTURE_DATA, relative), 'utf8')) as T;
  delete resource.id;
  return resource;
}
/** The examples below all carry identifiers, which the broken cases change. */
type Identified<T extends Resource> = T & { identifier: Identifier[] };
const documentReference = read<Identified<DocumentReference>>('mhd/DocumentReference-ex-DocumentReferenceComprehensive.json');
const submissionSet = read<Identified<List>>('mhd/List-ex-minimalSubmissionSet.json');
const practitioner = read<Identified<Practitioner>>('fr/fr-core/examples/Practitioner-FRCorePractitionerExample.json');

async function count(type: string): Promise<number | undefined> {
  return json<Bundle>(await fhir(app, 'GET', `${type}?_summary=count`)).total;
}

/** One broken resource per kind of rule, the profile it breaks, and where the error is. */
const cases: { rule: string; profile: string; resource: () => Resource; expression: string; code: string }[] = [
  {
    rule: 'a required element is missing',
    profile: COMPREHENSIVE,
    resource: () => {
      const r = structuredClone(documentReference);
      delete r.masterIdentifier;
      return r;
    },
    expression: 'DocumentReference.masterIdentifier',
    code: 'required',
  },
  {
    rule: 'a fixed value differs',
    profile: SUBMISSION_SET,
    resource: () => {
      const r = structuredClone(submissionSet);
      r.identifier[1].system = 'urn:example:other';
      return r;
    },
    expression: 'List.identifier[1].system',
    code: 'value',
  },
  {
    rule: 'a code is outside a required binding',
    profile: COMPREHENSIVE,
    resource: () => ({ ...structuredClone(documentReference), status: 'entered-in-error' }),
    expression: 'DocumentReference.status',
    code: 'code-invalid',
  },
  {
    rule: 'an invariant is violated',
    profile: COMPREHENSIVE,
    resource: () => {
      const r = structuredClone(documentReference);
      r.identifier[1].value = 'not-a-uuid';
      return r;
    },
    expression: 'DocumentReference.identifier[1].value',
    code: 'invariant',
  },
  {
    rule: 'a slice holds the wrong content',
    profile: RPPS,
    resource: () => {
      const r = structuredClone(practitioner);
      r.identifier[1].system = 'urn:oid:1.2.250.1.71.4.2.1';
      return r;
    },
    expression: 'Practitioner.identifier[1].system',
    code: 'value',
  },
  {
    rule: 'a required slice is missing',
    profile: SUBMISSION_SET,
    resource: () => ({ ...structuredClone(submissionSet), extension: [{ url: 'http://example.org/other', valueString: 'x' }] }),
    expression: 'List.extension:sourceId',
    code: 'required',
  },
];

for (const c of cases) {
  t.test(`$validate?profile= reports it when ${c.rule}`, async (t) => {
    const resource = c.resource();
    delete resource.meta;
    const res = await fhir(app, 'POST', `${resource.resourceType}/$validate?profile=${encodeURIComponent(c.profile)}`, resource);
    t.equal(res.statusCode, 200);
    const outcome = json<OperationOutcome>(res);
    t.match(outcome.issue, [{ severity: 'error', code: c.code, expression: [c.expression] }], JSON.stringify(outcome.issue));
  });

  t.test(`a create claiming the profile is refused with 422 when ${c.rule}, and nothing is stored`, async (t) => {
    const resource = { ...c.resource(), meta: { profile: [c.profile] } };
    const before = await count(resource.resourceType);
    const res = await fhir(app, 'POST', resource.resourceType, resource);
    t.equal(res.statusCode, 422);
    const outcome = json<OperationOutcome>(res);
    t.equal(outcome.resourceType, 'OperationOutcome');
    t.ok(outcome.issue.some((i) => i.severity === 'error' && i.code === c.code && i.expression?.[0] === c.expression), JSON.stringify(outcome.issue));
    t.equal(await count(resource.resourceType), before);
  });
}

t.test('$validate?profile= on a conforming official example says it is valid against the profile', async (t) => {
  const res = await fhir(app, 'POST', `DocumentReference/$validate?profile=${encodeURIComponent(COMPREHENSIVE)}`, documentReference);
  t.equal(res.statusCode, 200);
  t.match(json<OperationOutcome>(res), { issue: [{ severity: 'information', diagnostics: `The DocumentReference is valid against ${COMPREHENSIVE}` }] });
});

t.test('the Parameters form takes the profile as a parameter', async (t) => {
  const broken = cases[0].resource();
  const res = await fhir(app, 'POST', 'DocumentReference/$validate', {
    resourceType: 'Parameters',
    parameter: [
      { name: 'resource', resource: { ...broken, meta: undefined } },
      { name: 'profile', valueUri: COMPREHENSIVE },
    ],
  });
  t.equal(res.statusCode, 200);
  t.match(json<OperationOutcome>(res).issue, [{ severity: 'error', expression: ['DocumentReference.masterIdentifier'] }]);
});

t.test('$validate with a profile Carnet does not know is 400, naming it', async (t) => {
  const res = await fhir(app, 'POST', `DocumentReference/$validate?profile=${encodeURIComponent('http://example.org/StructureDefinition/unknown')}`, documentReference);
  t.equal(res.statusCode, 400);
  t.match(json<OperationOutcome>(res), { issue: [{ severity: 'error', code: 'not-supported', diagnostics: /Profile http:\/\/example\.org\/StructureDefinition\/unknown is not known/ }] });
});

t.test('$validate without profile checks the profiles meta.profile claims, as a create would', async (t) => {
  const res = await fhir(app, 'POST', 'DocumentReference/$validate', cases[0].resource());
  t.equal(res.statusCode, 200);
  t.match(json<OperationOutcome>(res).issue, [{ severity: 'error', expression: ['DocumentReference.masterIdentifier'] }]);
});

t.test('a conforming create claiming a known profile is stored', async (t) => {
  const res = await fhir(app, 'POST', 'DocumentReference', documentReference);
  t.equal(res.statusCode, 201);
  t.same(json(res).meta?.profile, [COMPREHENSIVE]);
});

t.test('a create claiming a profile Carnet does not know is accepted: profiles are claims', async (t) => {
  const res = await fhir(app, 'POST', 'Patient', { resourceType: 'Patient', meta: { profile: ['http://example.org/StructureDefinition/unknown'] } });
  t.equal(res.statusCode, 201);
});

t.test('an update that breaks the claimed profile is refused with 422 and the stored version stays', async (t) => {
  const created = json(await fhir(app, 'POST', 'Practitioner', { ...practitioner, meta: { profile: [RPPS] } }));
  t.ok(created.id);
  const broken = { ...practitioner, id: created.id, meta: { profile: [RPPS] }, identifier: [practitioner.identifier[0]] };
  const res = await fhir(app, 'PUT', `Practitioner/${created.id}`, broken);
  t.equal(res.statusCode, 422);
  t.match(json<OperationOutcome>(res).issue, [{ expression: ['Practitioner.identifier:rpps'] }]);
  t.equal(json(await fhir(app, 'GET', `Practitioner/${created.id}`)).meta?.versionId, '1');
});

t.test('a transaction with one entry breaking its claimed profile is refused whole with 422', async (t) => {
  // Not a Provide Document Bundle (no SubmissionSet): an ordinary transaction, whose entries are
  // checked against the profiles they claim (docs/mhd.md covers the ITI-65 rules).
  const before = await count('DocumentReference');
  const res = await fhir(app, 'POST', '', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: 'urn:uuid:0f0f0f0f-0000-4000-8000-000000000001', resource: { ...structuredClone(documentReference), id: undefined }, request: { method: 'POST', url: 'DocumentReference' } },
      { fullUrl: 'urn:uuid:0f0f0f0f-0000-4000-8000-000000000002', resource: { ...cases[0].resource(), id: undefined }, request: { method: 'POST', url: 'DocumentReference' } },
    ],
  });
  t.equal(res.statusCode, 422);
  t.match(json<OperationOutcome>(res).issue, [{ expression: ['Bundle.entry[1].resource.masterIdentifier'] }]);
  t.equal(await count('DocumentReference'), before);
});

t.test('in a batch, the entry breaking its claimed profile answers 422 and the others are applied', async (t) => {
  const res = await fhir(app, 'POST', '', {
    resourceType: 'Bundle',
    type: 'batch',
    entry: [
      { resource: { ...submissionSet }, request: { method: 'POST', url: 'List' } },
      { resource: { ...cases[5].resource(), meta: { profile: [SUBMISSION_SET] } }, request: { method: 'POST', url: 'List' } },
    ],
  });
  t.equal(res.statusCode, 200);
  const entries = json<Bundle>(res).entry ?? [];
  t.match(entries.map((e) => e.response?.status), [/^201/, /^422/]);
});

t.test('a JSON Patch whose result breaks the claimed profile is refused with 422', async (t) => {
  const created = json(await fhir(app, 'POST', 'List', { ...submissionSet, meta: { profile: [SUBMISSION_SET] } }));
  t.ok(created.id);
  const res = await fhir(app, 'PATCH', `List/${created.id}`, [{ op: 'replace', path: '/mode', value: 'snapshot' }], { 'content-type': 'application/json-patch+json' });
  t.equal(res.statusCode, 422);
  t.match(json<OperationOutcome>(res).issue, [{ code: 'value', expression: ['List.mode'] }]);
  t.equal(json(await fhir(app, 'GET', `List/${created.id}`)).mode, 'working');
});
