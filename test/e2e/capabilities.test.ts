// GET /fhir/metadata: a CapabilityStatement generated from what the server implements.
import t from 'tap';
import type { CapabilityStatement } from '@medplum/fhirtypes';
import { BASE, fhir, json, testServer } from '../helpers.js';
import { SERVED_TYPES } from '../../src/base/registry.js';
import { schemaIssues } from '../../src/fhir/validate.js';
import { profileDefinitions } from '../../src/search/params.js';

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
  // Besides the served types: the generated, read-only definitions of the operations.
  t.same(rest.resource?.map((r) => r.type).sort(), [...SERVED_TYPES, 'OperationDefinition'].sort());
  t.same(rest.resource?.find((r) => r.type === 'OperationDefinition')?.interaction?.map((i) => i.code), ['read', 'search-type']);
  for (const resource of rest.resource?.filter((r) => r.type !== 'OperationDefinition') ?? []) {
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

t.test('security: SMART on FHIR, with the token endpoint .well-known/smart-configuration gives', async (t) => {
  const security = capability.rest![0].security!;
  t.same(security.service?.[0]?.coding?.[0], { system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR', display: 'SMART-on-FHIR' });
  const uris = security.extension?.find((e) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris');
  const smart = json<{ token_endpoint: string; authorization_endpoint?: string }>(await app.inject({ method: 'GET', url: '/fhir/.well-known/smart-configuration' }));
  t.equal(uris?.extension?.find((e) => e.url === 'token')?.valueUri, smart.token_endpoint);
  t.equal(smart.token_endpoint, `${BASE.replace(/\/fhir$/, '')}/auth/token`);
  // No interactive launch: neither document names an authorization endpoint.
  t.notOk(uris?.extension?.some((e) => e.url === 'authorize'));
  t.notOk(smart.authorization_endpoint);
  const token = await app.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=client_credentials' });
  t.equal(token.statusCode, 400, 'the token endpoint it names is served (an OAuth error for an empty request)');
});

t.test('every search parameter names its definition, official R4 or from profiles/', async (t) => {
  const own = new Set(profileDefinitions().map((d) => d.url));
  let count = 0;
  for (const resource of capability.rest![0].resource ?? []) {
    for (const param of resource.searchParam ?? []) {
      count++;
      if (!param.definition?.startsWith('http://hl7.org/fhir/SearchParameter/') && !own.has(param.definition ?? "")) t.fail(`${resource.type} ${param.name}: ${param.definition}`);
    }
  }
  t.ok(count > 400, `${count} parameters`);
  const document = capability.rest![0].resource!.find((r) => r.type === 'DocumentReference')!;
  t.match(document.searchParam?.find((p) => p.name === 'creation'), { type: 'date', definition: 'https://profiles.ihe.net/ITI/MHD/SearchParameter/DocumentReference-Creation', documentation: /./ });
  t.match(document.searchParam?.find((p) => p.name === 'isArchived'), { type: 'token', definition: 'https://interop.esante.gouv.fr/ig/fhir/pdsm/SearchParameter/PDSm-isArchived' });
  const consent = capability.rest![0].resource!.find((r) => r.type === 'Consent')!;
  t.match(consent.searchParam?.find((p) => p.name === 'provision-type'), { definition: 'urn:carnet:fhir:SearchParameter:Consent-provision-type' });
  t.ok(document.searchInclude?.includes('DocumentReference:subject'));
  t.ok(capability.rest![0].resource!.find((r) => r.type === 'Patient')!.searchRevInclude?.includes('DocumentReference:subject'));
});

t.test('supported profiles and operations', async (t) => {
  const document = capability.rest![0].resource!.find((r) => r.type === 'DocumentReference')!;
  t.ok(document.supportedProfile?.includes('https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference'));
  t.ok(document.supportedProfile?.includes('https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference'));
  const transaction = capability.rest![0].interaction?.find((i) => i.code === 'transaction');
  for (const profile of ['IHE.MHD.Minimal.ProvideBundle', 'IHE.MHD.Comprehensive.ProvideBundle', 'IHE.MHD.UnContained.Comprehensive.ProvideBundle', 'pdsm-comprehensive-provide-document-bundle']) t.match(transaction?.documentation, profile);
  const backport = 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/';
  for (const resource of capability.rest![0].resource?.filter((r) => r.type !== 'OperationDefinition') ?? []) {
    const subscriptions = resource.type === 'Subscription' ? [['status', `${backport}backport-subscription-status`], ['events', `${backport}backport-subscription-events`], ['get-ws-binding-token', `${backport}backport-subscription-get-ws-binding-token`]] : [];
    const accounts = resource.type === 'Patient' ? ['enrol', 'activate', 'object', 'close'].map((name) => [name, `${BASE}/OperationDefinition/Patient-${name}`]) : [];
    const summary = resource.type === 'Patient' ? [['summary', 'http://hl7.org/fhir/uv/ips/OperationDefinition/summary'], ['everything', 'http://hl7.org/fhir/OperationDefinition/Patient-everything'], ['reminders', `${BASE}/OperationDefinition/Patient-reminders`]] : [];
    t.same(resource.operation?.map((o) => [o.name, o.definition]), [['validate', 'http://hl7.org/fhir/OperationDefinition/Resource-validate'], ...subscriptions, ...accounts, ...summary], resource.type);
  }
  // Each declared operation is served, at type and instance level.
  const condition = { resourceType: 'Condition', subject: { reference: 'Patient/x' } };
  t.equal((await fhir(app, 'POST', 'Condition/$validate', condition)).statusCode, 200, 'type level');
  const created = json(await fhir(app, 'POST', 'Condition', condition));
  t.equal((await fhir(app, 'POST', `Condition/${created.id}/$validate`, { ...condition, id: created.id })).statusCode, 200, 'instance level');
});
