// The SearchParameter registry: official definitions, profiles/ additions, errata.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { SearchParameter } from '@medplum/fhirtypes';
import { addSearchParameters, findParam, paramsOf, profileDefinitions } from '../../src/search/params.js';
import { SERVED_TYPES } from '../../src/base/registry.js';
import { fhir, json, testServer } from '../helpers.js';

const INS_PARAM: SearchParameter = {
  resourceType: 'SearchParameter',
  url: 'https://carnet.example/SearchParameter/Patient-ins',
  name: 'ins',
  status: 'active',
  description: 'The INS of a patient (identifier with system urn:oid:1.2.250.1.213.1.4.8)',
  code: 'ins',
  base: ['Patient'],
  type: 'token',
  expression: "Patient.identifier.where(system = 'urn:oid:1.2.250.1.213.1.4.8')",
};

t.test('every served type has the common parameters and its own official ones', async (t) => {
  for (const type of SERVED_TYPES) {
    const codes = paramsOf(type).map((p) => p.code);
    for (const common of ['_id', '_lastUpdated', '_tag', '_profile', '_security', '_source']) t.ok(codes.includes(common), `${type} ${common}`);
  }
  t.match(findParam('Patient', 'birthdate'), { type: 'date', url: 'http://hl7.org/fhir/SearchParameter/individual-birthdate' });
  t.equal(findParam('Observation', 'component-code-value-quantity')?.components?.length, 2);
  t.equal(findParam('Patient', '_text'), undefined, '_text is not offered');
});

t.test('profiles/ may hold SearchParameter resources, alone or in Bundles', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-profiles-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true }));
  fs.writeFileSync(path.join(dir, 'ins.json'), JSON.stringify(INS_PARAM));
  fs.mkdirSync(path.join(dir, 'nested'));
  fs.writeFileSync(path.join(dir, 'nested', 'bundle.json'), JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { ...INS_PARAM, code: 'ins2' } }, { resource: { resourceType: 'Patient' } }] }));
  t.same(profileDefinitions(dir).map((d) => d.code).sort(), ['ins', 'ins2']);
  t.same(profileDefinitions(path.join(dir, 'missing')), []);
});

t.test('an added SearchParameter is indexed on write, searchable and listed in metadata', async (t) => {
  addSearchParameters([INS_PARAM]);
  const server = await testServer();
  t.teardown(() => server.close());
  await fhir(server.app, 'PUT', 'Patient/a', { resourceType: 'Patient', id: 'a', identifier: [{ system: 'urn:oid:1.2.250.1.213.1.4.8', value: '1' }, { system: 'urn:other', value: '2' }] });
  await fhir(server.app, 'PUT', 'Patient/b', { resourceType: 'Patient', id: 'b', identifier: [{ system: 'urn:other', value: '1' }] });
  const found = json<{ entry?: { resource: { id: string } }[] }>(await fhir(server.app, 'GET', 'Patient?ins=1'));
  t.same(found.entry?.map((e) => e.resource.id), ['a']);
  const capability = json<{ rest: { resource: { type: string; searchParam: { name: string; definition: string }[] }[] }[] }>(await fhir(server.app, 'GET', 'metadata'));
  const patient = capability.rest[0].resource.find((r) => r.type === 'Patient')!;
  t.match(patient.searchParam.find((p) => p.name === 'ins'), { definition: INS_PARAM.url });
});
