// GET /fhir/metadata: a CapabilityStatement generated from what the server implements.
import t from 'tap';
import type { CapabilityStatement } from '@medplum/fhirtypes';
import { BASE, fhir, json, testServer } from '../helpers.js';
import { SERVED_TYPES } from '../../src/fhir/registry.js';
import { schemaIssues } from '../../src/fhir/validate.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

const capability = json<CapabilityStatement>(await fhir(app, 'GET', 'metadata'));

t.test('metadata is a valid R4 CapabilityStatement for this server', async (t) => {
  t.equal(capability.resourceType, 'CapabilityStatement');
  t.equal(capability.fhirVersion, '4.0.1');
  t.equal(capability.kind, 'instance');
  t.equal(capability.implementation?.url, BASE);
  t.same(schemaIssues(capability), [], 'passes the R4 schema');
  t.ok(capability.format?.includes('application/fhir+json'));
  t.ok(capability.patchFormat?.includes('application/json-patch+json'));
});

t.test('it lists exactly the served types, each with every interaction the routes serve', async (t) => {
  const rest = capability.rest![0];
  t.same(rest.resource?.map((r) => r.type).sort(), [...SERVED_TYPES].sort());
  for (const resource of rest.resource ?? []) {
    const codes = resource.interaction?.map((i) => i.code);
    t.same(codes, ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'], resource.type);
    t.equal(resource.versioning, 'versioned-update');
    t.equal(resource.conditionalDelete, 'single');
  }
  t.same(rest.interaction?.map((i) => i.code), ['transaction', 'batch', 'search-system', 'history-system']);
});

t.test('search parameters come from the official definitions', async (t) => {
  const patient = capability.rest![0].resource!.find((r) => r.type === 'Patient')!;
  const identifier = patient.searchParam?.find((p) => p.name === 'identifier');
  t.match(identifier, { type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Patient-identifier' });
  t.ok(patient.searchParam?.find((p) => p.name === '_id'));
  const binary = capability.rest![0].resource!.find((r) => r.type === 'Binary')!;
  t.notOk(binary.searchParam?.some((p) => p.name === 'identifier'), 'Binary has no identifier parameter');
});

t.test('every interaction the statement lists answers through HTTP', async (t) => {
  // The statement must not promise what the routes do not do: walk each one once.
  const created = await fhir(app, 'POST', 'Condition', { resourceType: 'Condition', subject: { reference: 'Patient/x' } });
  t.equal(created.statusCode, 201);
  const id = json(created).id;
  const calls: [string, Promise<{ statusCode: number }>][] = [
    ['read', fhir(app, 'GET', `Condition/${id}`)],
    ['vread', fhir(app, 'GET', `Condition/${id}/_history/1`)],
    ['history-instance', fhir(app, 'GET', `Condition/${id}/_history`)],
    ['history-type', fhir(app, 'GET', 'Condition/_history')],
    ['search-type', fhir(app, 'GET', `Condition?_id=${id}`)],
    ['history-system', fhir(app, 'GET', '_history')],
  ];
  for (const [name, call] of calls) t.equal((await call).statusCode, 200, name);
});

t.test('metadata needs no body and answers in JSON to a plain GET', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/fhir/metadata' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/fhir\+json/);
});
