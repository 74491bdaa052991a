// GET /fhir/OperationDefinition: one definition per entry of the OPERATIONS table, generated from
// it, resolvable from the CapabilityStatement, R4-valid, read-only; and the router takes exactly
// the inputs a definition declares.
import t from 'tap';
import type { Bundle, CapabilityStatement, OperationDefinition, OperationDefinitionParameter, OperationOutcome, ParametersParameter } from '@medplum/fhirtypes';
import { BASE, fhir, json, testServer } from '../helpers.js';
import { OPERATIONS, UNDECLARED_PARAMETER } from '../../src/fhir/operations.js';
import { schemaIssues } from '../../src/fhir/validate.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

const capability = json<CapabilityStatement>(await fhir(app, 'GET', 'metadata'));

/** The definition a canonical names: read when it is on this server, else searched by url. */
async function resolve(canonical: string): Promise<OperationDefinition | undefined> {
  if (canonical.startsWith(`${BASE}/`)) {
    const res = await fhir(app, 'GET', canonical.slice(BASE.length + 1));
    return res.statusCode === 200 ? json<OperationDefinition>(res) : undefined;
  }
  const bundle = json<Bundle<OperationDefinition>>(await fhir(app, 'GET', `OperationDefinition?url=${encodeURIComponent(canonical)}`));
  return bundle.total === 1 ? bundle.entry?.[0].resource : undefined;
}

t.test('every operation of the table has a resolvable, R4-valid definition generated from its entry', async (t) => {
  t.ok(OPERATIONS.length >= 8);
  for (const operation of OPERATIONS) {
    for (const type of operation.types ?? ['Patient']) {
      const declared = capability.rest![0].resource!.find((r) => r.type === type)!.operation!.find((o) => o.name === operation.name)!;
      t.ok(declared, `${type} declares $${operation.name}`);
      if (operation.definition) t.equal(declared.definition, operation.definition, 'an official operation keeps its canonical');
      else t.ok(declared.definition.startsWith(`${BASE}/OperationDefinition/`), `Carnet's own $${operation.name} points at this server`);
      const definition = await resolve(declared.definition);
      if (!definition) {
        t.fail(`${declared.definition} does not resolve`);
        continue;
      }
      t.same(schemaIssues(definition), [], `${definition.id} passes the R4 schema`);
      t.equal(definition.url, declared.definition);
      t.equal(definition.code, operation.name);
      t.match(definition, { kind: 'operation', status: 'active', system: false, type: operation.type !== undefined, instance: operation.instance !== undefined, affectsState: operation.affectsState ?? false });
      t.ok(definition.resource?.includes((operation.types ? type : 'Resource') as never), `${definition.id} applies to ${type}`);
      if (operation.parameters) t.same(definition.parameter?.map((p) => [p.name, p.use, p.min, p.max]), operation.parameters.map((p) => [p.name, p.use, p.min, p.max]), `${definition.id}: its parameters`);
      // An official one is also read by the last segment of its canonical.
      t.equal((await fhir(app, 'GET', `OperationDefinition/${definition.id}`)).statusCode, 200);
    }
  }
});

t.test('the definitions are listed and searched, and need no token', async (t) => {
  const all = await app.inject({ method: 'GET', url: '/fhir/OperationDefinition', headers: { accept: 'application/fhir+json' } });
  t.equal(all.statusCode, 200, 'public, as metadata');
  const bundle = json<Bundle<OperationDefinition>>(all);
  t.equal(bundle.type, 'searchset');
  t.equal(bundle.total, OPERATIONS.length);
  t.equal(new Set(bundle.entry?.map((e) => e.resource?.id)).size, OPERATIONS.length, 'ids are unique');
  const enrol = json<Bundle<OperationDefinition>>(await fhir(app, 'GET', 'OperationDefinition?code=enrol'));
  t.same(enrol.entry?.map((e) => e.resource?.id), ['Patient-enrol']);
  t.match(enrol.entry?.[0].resource, { affectsState: true, type: true, instance: false, parameter: [{ name: 'patient', use: 'in', min: 1, type: 'Patient' }, { name: 'representative', use: 'in', min: 0, type: 'RelatedPerson' }, { name: 'result', use: 'out', part: [{ name: 'ins' }] }] });
  const instances = json<Bundle<OperationDefinition>>(await fhir(app, 'GET', 'OperationDefinition?instance=true&code=validate,close'));
  t.same(instances.entry?.map((e) => e.resource?.code).sort(), ['close', 'validate']);
  const unknown = await fhir(app, 'GET', 'OperationDefinition?publisher=x');
  t.equal(unknown.statusCode, 400);
  t.equal(json<OperationOutcome>(unknown).issue[0].code, 'not-supported');
  t.equal((await fhir(app, 'GET', 'OperationDefinition/Patient-nothing')).statusCode, 404);
});

t.test('OperationDefinition is read-only for everyone: writes are 405 with an OperationOutcome', async (t) => {
  const body = { resourceType: 'OperationDefinition', id: 'Patient-enrol', status: 'active', kind: 'operation', name: 'X', code: 'x', system: true, type: false, instance: false };
  for (const [method, url] of [['POST', 'OperationDefinition'], ['PUT', 'OperationDefinition/Patient-enrol'], ['PATCH', 'OperationDefinition/Patient-enrol'], ['DELETE', 'OperationDefinition/Patient-enrol'], ['DELETE', 'OperationDefinition?code=enrol']] as const) {
    const res = await fhir(app, method, url, method === 'DELETE' ? undefined : body);
    t.equal(res.statusCode, 405, `${method} ${url}`);
    t.equal(json<OperationOutcome>(res).resourceType, 'OperationOutcome');
    t.equal(res.headers.allow, 'GET');
  }
  const batch = json<Bundle>(await fhir(app, 'POST', '', { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'PUT', url: 'OperationDefinition/Patient-enrol' }, resource: body }] }));
  t.equal(batch.entry?.[0].response?.status.split(' ')[0], '405', 'nor in a batch');
  t.match(json(await fhir(app, 'GET', 'OperationDefinition/Patient-enrol')), { code: 'enrol' }, 'unchanged');
});

/** A value of a parameter's type, as a Parameters body carries it. */
function valueOf(p: OperationDefinitionParameter): ParametersParameter {
  switch (p.type) {
    case 'Resource':
    case 'Patient':
      return { name: p.name, resource: { resourceType: 'Patient' } };
    case 'uri':
      return { name: p.name, valueUri: 'http://hl7.org/fhir/StructureDefinition/Patient' };
    case 'code':
      return { name: p.name, valueCode: 'id-only' };
    case 'id':
      return { name: p.name, valueId: 'x' };
    default:
      return { name: p.name, valueString: '1' };
  }
}

/** The router's refusal of an input the definition does not declare. */
function refusedAsUndeclared(res: { statusCode: number; body: string }, name: string): boolean {
  if (res.statusCode !== 400) return false;
  return json<OperationOutcome>(res).issue.some((i) => i.code === 'not-supported' && i.diagnostics?.startsWith(UNDECLARED_PARAMETER) && i.expression?.includes(name));
}

t.test('each declared input reaches the handler; an undeclared one is refused by the router', async (t) => {
  const patient = json(await fhir(app, 'POST', 'Patient', { resourceType: 'Patient' }));
  for (const operation of OPERATIONS.filter((o) => o.parameters)) {
    const definition = json<Bundle<OperationDefinition>>(await fhir(app, "GET", `OperationDefinition?code=${operation.name}`)).entry?.[0].resource as OperationDefinition;
    const type = operation.types?.[0] ?? 'Patient';
    const levels = [...(operation.type ? [{ url: `${type}/$${operation.name}`, methods: operation.type.methods }] : []), ...(operation.instance ? [{ url: `${type}/${patient.id}/$${operation.name}`, methods: operation.instance.methods }] : [])];
    for (const level of levels) {
      const method = level.methods.includes('POST') ? 'POST' : 'GET';
      for (const input of definition.parameter?.filter((p) => p.use === 'in') ?? []) {
        const res =
          method === 'POST'
            ? await fhir(app, 'POST', level.url, { resourceType: 'Parameters', parameter: [valueOf(input)] })
            : await fhir(app, 'GET', `${level.url}?${input.name}=1`);
        t.notOk(refusedAsUndeclared(res, input.name), `${method} ${level.url} takes "${input.name}" (${res.statusCode})`);
      }
      const undeclared = method === 'POST' ? await fhir(app, 'POST', level.url, { resourceType: 'Parameters', parameter: [{ name: 'nonsense', valueString: 'x' }] }) : await fhir(app, 'GET', `${level.url}?nonsense=1`);
      t.ok(refusedAsUndeclared(undeclared, 'nonsense'), `${method} ${level.url} refuses an undeclared input`);
    }
  }
});
