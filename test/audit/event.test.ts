import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding } from '@medplum/fhirtypes';
import type { Actor } from '../../src/auth/actor.js';
import { AUDIT_INTERACTIONS, AUDIT_SYSTEM_CLIENT, auditEvent, type AuditFacts, type AuditInteraction, type AuditOutcome } from '../../src/audit/event.js';
import { schemaIssues } from '../../src/fhir/validate.js';
import { indexEntries, type IndexEntry, type ReferenceEntry, type TokenEntry } from '../../src/search/extract.js';
import { FIXTURE_DATA } from '../fixtures/data-paths.js';

const BALP_EXAMPLES = path.join(FIXTURE_DATA, 'balp');
const SERVER = 'https://carnet.test/fhir';
const RECORDED = '2025-03-14T09:26:53.589Z';
const ISSUER = 'https://auth.carnet.test';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const PARTICIPATION = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const G15 = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';

// ---------------------------------------------------------------------------------------------
// Actors

const common = { grants: [], issuer: ISSUER };
const ACTORS = {
  patient: { ...common, kind: 'patient', subject: 'sub-p1', clientId: 'carnet-app', patientId: 'p1' },
  representative: { ...common, kind: 'representative', subject: 'sub-rp1', relatedPersonId: 'rp1', patientIds: ['p1', 'p2'] },
  practitioner: {
    ...common,
    kind: 'practitioner',
    subject: 'sub-dr1',
    clientId: 'dpi-hopital',
    practitionerId: 'dr1',
    rpps: '10101010101',
    profession: '10',
    specialty: 'SM26',
    organizationId: 'org-hop',
    purposeOfUse: 'TREAT',
  },
  emergency: { ...common, kind: 'practitioner', subject: 'sub-dr2', practitionerId: 'dr2', profession: '60', purposeOfUse: 'ETREAT' },
  system: { ...common, kind: 'system', subject: 'lab-client', clientId: 'lab-client', organizationId: 'org-lab' },
  organisation: { ...common, kind: 'organisation', subject: 'cpam', organizationId: 'cpam-75', role: 'mandatory-insurer' },
} satisfies Record<string, Actor>;

function facts(over: Partial<AuditFacts> = {}): AuditFacts {
  return {
    actor: ACTORS.practitioner,
    interaction: 'read',
    outcome: 'success',
    patients: ['p1'],
    resources: ['Observation/o1/_history/2'],
    recorded: RECORDED,
    server: SERVER,
    address: '192.0.2.10',
    ...over,
  };
}

// ---------------------------------------------------------------------------------------------
// Reading an event

const code = (c: Coding | undefined): string | undefined => c?.code;
const codes = (agent: AuditEventAgent | undefined): (string | undefined)[] => (agent?.type?.coding ?? []).map(code);

function agentOfType(event: AuditEvent, typeCode: string): AuditEventAgent | undefined {
  return event.agent.find((a) => a.type?.coding?.some((c) => c.code === typeCode));
}

function requestors(event: AuditEvent): AuditEventAgent[] {
  return event.agent.filter((a) => a.requestor);
}

function entitiesWithRole(event: AuditEvent, role: string): AuditEventEntity[] {
  return (event.entity ?? []).filter((e) => e.role?.code === role);
}

function refs(entries: IndexEntry[], param: string): string[] {
  return entries
    .filter((e): e is ReferenceEntry => e.kind === 'reference' && e.param === param)
    .map((e) => `${e.targetType}/${e.targetId}`)
    .sort();
}

function tokens(entries: IndexEntry[], param: string): string[] {
  return entries
    .filter((e): e is TokenEntry => e.kind === 'token' && e.param === param)
    .map((e) => `${e.system ?? ''}|${e.code ?? ''}`)
    .sort();
}

function example(name: string): AuditEvent {
  return JSON.parse(readFileSync(path.join(BALP_EXAMPLES, `AuditEvent-ex-${name}.json`), 'utf8')) as AuditEvent;
}

// ---------------------------------------------------------------------------------------------
// Interactions

const EXPECTED: Record<AuditInteraction, { action: string; client: string; server: string; user: string }> = {
  create: { action: 'C', client: '110153', server: '110152', user: 'AUT' },
  read: { action: 'R', client: '110152', server: '110153', user: 'IRCP' },
  vread: { action: 'R', client: '110152', server: '110153', user: 'IRCP' },
  'history-instance': { action: 'R', client: '110152', server: '110153', user: 'IRCP' },
  'history-type': { action: 'R', client: '110152', server: '110153', user: 'IRCP' },
  'history-system': { action: 'R', client: '110152', server: '110153', user: 'IRCP' },
  update: { action: 'U', client: '110153', server: '110152', user: 'AUT' },
  patch: { action: 'U', client: '110153', server: '110152', user: 'AUT' },
  delete: { action: 'D', client: '110150', server: 'custodian', user: 'AUT' },
  'search-type': { action: 'E', client: '110153', server: '110152', user: 'IRCP' },
  'search-system': { action: 'E', client: '110153', server: '110152', user: 'IRCP' },
  transaction: { action: 'E', client: '110153', server: '110152', user: 'AUT' },
  batch: { action: 'E', client: '110153', server: '110152', user: 'AUT' },
  operation: { action: 'E', client: '110153', server: '110152', user: 'IRCP' },
};

t.test('every interaction: type rest, its restful-interaction subtype, BALP action and agent roles', async (t) => {
  t.same([...AUDIT_INTERACTIONS].sort(), Object.keys(EXPECTED).sort());
  for (const interaction of AUDIT_INTERACTIONS) {
    const event = auditEvent(facts({ interaction }));
    const want = EXPECTED[interaction];
    t.same(event.type, { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'Restful Operation' }, interaction);
    t.same(event.subtype, [{ system: 'http://hl7.org/fhir/restful-interaction', code: interaction, display: interaction }], interaction);
    t.equal(event.action, want.action, `${interaction} action`);
    t.same(event.agent.map(codes), [[want.client], [want.server], [want.user], ['PROV']], `${interaction} agents`);
    t.equal(event.agent[0].type?.coding?.[0].system, DCM);
    t.equal(event.agent[2].type?.coding?.[0].system, PARTICIPATION);
    t.same(schemaIssues(event), [], `${interaction} is valid R4`);
  }
});

t.test('recorded, source and the server agent', async (t) => {
  const event = auditEvent(facts());
  t.equal(event.recorded, RECORDED);
  t.same(event.source, {
    site: 'carnet.test',
    observer: { display: SERVER },
    type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
  });
  t.same(event.agent[1], {
    type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
    who: { display: SERVER },
    requestor: false,
    network: { address: SERVER, type: '5' },
  });
  // A server identity that is not a URL still makes a valid event, without site.
  const odd = auditEvent(facts({ server: 'carnet-node-3' }));
  t.equal(odd.source.site, undefined);
  t.same(odd.source.observer, { display: 'carnet-node-3' });
  t.same(schemaIssues(odd), []);
});

t.test('the client network address: IPv4 and IPv6 are IP addresses (2), anything else a machine name (1)', async (t) => {
  t.same(auditEvent(facts({ address: '192.0.2.10' })).agent[0].network, { address: '192.0.2.10', type: '2' });
  t.same(auditEvent(facts({ address: '::ffff:127.0.0.1' })).agent[0].network, { address: '::ffff:127.0.0.1', type: '2' });
  t.same(auditEvent(facts({ address: 'poste-12.hopital.fr' })).agent[0].network, { address: 'poste-12.hopital.fr', type: '1' });
  t.equal(auditEvent(facts({ address: undefined })).agent[0].network, undefined);
  t.equal(auditEvent(facts({ address: '' })).agent[0].network, undefined);
});

// ---------------------------------------------------------------------------------------------
// Actors

t.test('a patient: the user agent is Patient/x, the client app identified by its client id', async (t) => {
  const event = auditEvent(facts({ actor: ACTORS.patient }));
  t.same(event.agent[0].who, { identifier: { system: AUDIT_SYSTEM_CLIENT, value: 'carnet-app' }, display: 'carnet-app' });
  t.equal(event.agent[0].requestor, false);
  t.same(event.agent[2], {
    type: { coding: [{ system: PARTICIPATION, code: 'IRCP', display: 'information recipient' }] },
    who: { reference: 'Patient/p1', identifier: { system: ISSUER, value: 'sub-p1' } },
    requestor: true,
  });
  t.equal(event.agent.length, 3);
  t.equal(event.purposeOfEvent, undefined);
  t.same(schemaIssues(event), []);
});

t.test('a representative: the user agent is RelatedPerson/x; no client id known', async (t) => {
  const event = auditEvent(facts({ actor: ACTORS.representative, interaction: 'create', patients: ['p2'], resources: ['DocumentReference/d1'] }));
  t.same(event.agent[0].who, { display: 'unknown client' });
  t.same(event.agent[2], {
    type: { coding: [{ system: PARTICIPATION, code: 'AUT', display: 'author (originator)' }] },
    who: { reference: 'RelatedPerson/rp1', identifier: { system: ISSUER, value: 'sub-rp1' } },
    requestor: true,
  });
  t.equal(event.agent.length, 3);
  t.same(requestors(event), [event.agent[2]]);
  t.same(schemaIssues(event), []);
});

t.test('a practitioner: Practitioner/x, profession and specialty roles, RPPS altId, TREAT, their organisation', async (t) => {
  const event = auditEvent(facts());
  t.same(event.agent[2], {
    type: { coding: [{ system: PARTICIPATION, code: 'IRCP', display: 'information recipient' }] },
    role: [
      { coding: [{ system: G15, code: '10' }] },
      { coding: [{ system: 'https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale', code: 'SM26' }] },
    ],
    who: { reference: 'Practitioner/dr1', identifier: { system: ISSUER, value: 'sub-dr1' } },
    altId: '10101010101',
    requestor: true,
    purposeOfUse: [{ coding: [{ system: ACT_REASON, code: 'TREAT', display: 'treatment' }] }],
  });
  t.same(event.agent[3], {
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleClass', code: 'PROV', display: 'healthcare provider' }] },
    who: { reference: 'Organization/org-hop' },
    requestor: false,
  });
  t.same(event.purposeOfEvent, [{ coding: [{ system: ACT_REASON, code: 'TREAT', display: 'treatment' }] }]);
  t.same(event.agent[0].who, { identifier: { system: AUDIT_SYSTEM_CLIENT, value: 'dpi-hopital' }, display: 'dpi-hopital' });
  t.same(schemaIssues(event), []);
});

t.test('emergency access (ETREAT) is flagged in purposeOfEvent and the agent purposeOfUse', async (t) => {
  const event = auditEvent(facts({ actor: ACTORS.emergency }));
  const etreat = [{ coding: [{ system: ACT_REASON, code: 'ETREAT', display: 'Emergency Treatment' }] }];
  t.same(event.purposeOfEvent, etreat);
  t.same(event.agent[2].purposeOfUse, etreat);
  // No specialty, no RPPS, no organisation, no client id: none of them made up.
  t.same(event.agent[2].role, [{ coding: [{ system: G15, code: '60' }] }]);
  t.equal(event.agent[2].altId, undefined);
  t.equal(event.agent.length, 3);
  t.same(schemaIssues(event), []);
  // (R4 has no `purpose` search parameter.)
  t.same(tokens(indexEntries(event), 'altid'), []);
});

t.test('a system: the client agent is the requestor, identified by its client id, no user agent', async (t) => {
  const event = auditEvent(facts({ actor: ACTORS.system, interaction: 'create', resources: ['Observation/o9'] }));
  t.same(event.agent[0], {
    type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
    who: { identifier: { system: AUDIT_SYSTEM_CLIENT, value: 'lab-client' }, display: 'lab-client' },
    requestor: true,
    network: { address: '192.0.2.10', type: '2' },
  });
  t.same(event.agent.map(codes), [['110153'], ['110152'], ['PROV']]);
  t.same(event.agent[2].who, { reference: 'Organization/org-lab' });
  t.same(requestors(event), [event.agent[0]]);
  t.equal(event.purposeOfEvent, undefined);
  t.same(schemaIssues(event), []);
  t.same(tokens(indexEntries(event), 'agent:identifier'), [`${AUDIT_SYSTEM_CLIENT}|lab-client`]);
});

t.test('an organisation: Organization/x with its role', async (t) => {
  const event = auditEvent(facts({ actor: ACTORS.organisation, outcome: 'denied' }));
  t.same(event.agent[2], {
    type: { coding: [{ system: PARTICIPATION, code: 'IRCP', display: 'information recipient' }] },
    role: [{ coding: [{ system: 'urn:carnet:organisation-role', code: 'mandatory-insurer' }] }],
    who: { reference: 'Organization/cpam-75', identifier: { system: ISSUER, value: 'cpam' } },
    requestor: true,
  });
  t.equal(event.agent.length, 3);
  t.same(schemaIssues(event), []);
});

t.test('not authenticated: the unidentified client is the requestor', async (t) => {
  const event = auditEvent(facts({ actor: undefined, outcome: 'denied' }));
  t.same(event.agent.map(codes), [['110152'], ['110153']]);
  t.same(event.agent[0].who, { display: 'unauthenticated client' });
  t.equal(event.agent[0].requestor, true);
  t.same(event.agent[0].network, { address: '192.0.2.10', type: '2' });
  t.same(schemaIssues(event), []);
});

t.test('an issuer that is not a uri still gives a valid identifier (value only)', async (t) => {
  const event = auditEvent(facts({ actor: { ...ACTORS.patient, issuer: 'not a uri' } }));
  t.same(event.agent[2].who, { reference: 'Patient/p1', identifier: { value: 'sub-p1' } });
  t.same(schemaIssues(event), []);
  const noSubject = auditEvent(facts({ actor: { ...ACTORS.patient, subject: '' } }));
  t.same(noSubject.agent[2].who, { reference: 'Patient/p1' });
});

// ---------------------------------------------------------------------------------------------
// Outcomes

t.test('outcomes: 0 success, 4 minor failure for a denial, 8 serious failure', async (t) => {
  const ok = auditEvent(facts());
  t.equal(ok.outcome, '0');
  t.equal(ok.outcomeDesc, undefined);

  const denied = auditEvent(facts({ outcome: 'denied' }));
  t.equal(denied.outcome, '4');
  t.equal(denied.outcomeDesc, 'Access denied');
  t.same(schemaIssues(denied), []);

  const failed = auditEvent(facts({ outcome: 'failure' }));
  t.equal(failed.outcome, '8');
  t.equal(failed.outcomeDesc, 'The request failed');
  t.same(schemaIssues(failed), []);

  t.equal(auditEvent(facts({ outcome: 'denied', reason: 'no consent for this profession' })).outcomeDesc, 'no consent for this profession');
  t.equal(auditEvent(facts({ outcome: 'denied', reason: '  ' })).outcomeDesc, 'Access denied');
  // A reason is only an explanation of a failure.
  t.equal(auditEvent(facts({ reason: 'ignored' })).outcomeDesc, undefined);
});

// ---------------------------------------------------------------------------------------------
// Entities and the search index

t.test('one entity per resource and per patient; the patient, entity and agent search parameters find them', async (t) => {
  const event = auditEvent(
    facts({ actor: ACTORS.patient, patients: ['p1', 'p2', 'p1'], resources: ['Observation/o1/_history/2', 'Patient/p2', 'Observation/o1/_history/2'] }),
  );
  t.same(event.entity, [
    {
      what: { reference: 'Observation/o1/_history/2' },
      type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
    },
    {
      what: { reference: 'Patient/p2' },
      type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
    },
    { what: { reference: 'Patient/p1' }, type: { system: ENTITY_TYPE, code: '1', display: 'Person' }, role: { system: OBJECT_ROLE, code: '1', display: 'Patient' } },
    { what: { reference: 'Patient/p2' }, type: { system: ENTITY_TYPE, code: '1', display: 'Person' }, role: { system: OBJECT_ROLE, code: '1', display: 'Patient' } },
  ]);
  t.same(schemaIssues(event), []);

  const entries = indexEntries(event);
  t.same(refs(entries, 'patient'), ['Patient/p1', 'Patient/p2']);
  t.same(refs(entries, 'entity'), ['Observation/o1', 'Patient/p1', 'Patient/p2']);
  t.same(refs(entries, 'agent'), ['Patient/p1']);
  t.same(tokens(entries, 'agent:identifier'), [`${ISSUER}|sub-p1`, `${AUDIT_SYSTEM_CLIENT}|carnet-app`]);
  // entity-type, entity-role, action and type are not AuditEvent search parameters (search/params SEARCHABLE_ONLY).
  t.same(tokens(entries, 'entity-type'), []);
  t.same(tokens(entries, 'entity-role'), []);
  t.same(tokens(entries, 'subtype'), ['http://hl7.org/fhir/restful-interaction|read']);
  t.same(tokens(entries, 'action'), []);
  t.same(tokens(entries, 'outcome'), ['|0']);
  t.same(tokens(entries, 'type'), []);
  t.ok(entries.some((e) => e.param === 'date' && e.kind === 'date' && e.low === Date.parse(RECORDED)));
});

t.test('a practitioner touching several patients: each is found by `patient`; the agents by `agent`', async (t) => {
  const event = auditEvent(facts({ interaction: 'search-type', patients: ['p1', 'p2', 'p3'], resources: [], query: 'subject=Patient/p1', type: 'Observation' }));
  const entries = indexEntries(event);
  t.same(refs(entries, 'patient'), ['Patient/p1', 'Patient/p2', 'Patient/p3']);
  t.same(refs(entries, 'agent'), ['Organization/org-hop', 'Practitioner/dr1']);
  t.same(tokens(entries, 'altid'), [], 'altid is not an AuditEvent search parameter');
  t.same(tokens(entries, 'agent-role'), [], 'nor agent-role');
  t.same(refs(entries, 'entity'), ['Patient/p1', 'Patient/p2', 'Patient/p3']);
  // The patient actor's own events are found by `patient` through the agent too.
  t.same(refs(indexEntries(auditEvent(facts({ actor: ACTORS.patient, patients: [], resources: ['Consent/c1'] }))), 'patient'), ['Patient/p1']);
});

t.test('searches: a BALP query entity with the raw query in base64 and the type in description', async (t) => {
  const query = 'patient=p1&_lastUpdated=gt2024-01-01&code=http://loinc.org|1234-5&name:contains=é ü';
  const event = auditEvent(facts({ interaction: 'search-type', resources: [], query, type: 'Observation' }));
  const [q, ...others] = entitiesWithRole(event, '24');
  t.equal(others.length, 0);
  t.same(q.type, { system: ENTITY_TYPE, code: '2', display: 'System Object' });
  t.same(q.role, { system: OBJECT_ROLE, code: '24', display: 'Query' });
  t.equal(q.description, 'Observation');
  t.equal(q.what, undefined);
  t.equal(Buffer.from(q.query ?? '', 'base64').toString('utf8'), query);
  t.equal(entitiesWithRole(event, '1').length, 1);
  t.same(schemaIssues(event), []);

  // A system-level search has no type; an empty query string cannot be base64Binary: the entity stays, without it.
  const bare = auditEvent(facts({ interaction: 'search-system', patients: [], resources: [], query: '' }));
  t.same(bare.entity, [{ type: { system: ENTITY_TYPE, code: '2', display: 'System Object' }, role: { system: OBJECT_ROLE, code: '24', display: 'Query' } }]);
  t.same(schemaIssues(bare), []);
  const none = auditEvent(facts({ interaction: 'search-type', patients: [], resources: [], type: 'Patient' }));
  t.same(none.entity, [{ type: { system: ENTITY_TYPE, code: '2', display: 'System Object' }, role: { system: OBJECT_ROLE, code: '24', display: 'Query' }, description: 'Patient' }]);

  // Query parameters of other interactions (an operation, a history) are recorded the same way.
  const op = auditEvent(facts({ interaction: 'operation', resources: ['Patient/p1'], query: 'start=2024' }));
  t.equal(Buffer.from(entitiesWithRole(op, '24')[0].query ?? '', 'base64').toString(), 'start=2024');
});

t.test('a type-level interaction with no resource records the type', async (t) => {
  const event = auditEvent(facts({ interaction: 'create', outcome: 'denied', resources: [], type: 'Observation' }));
  t.same(entitiesWithRole(event, '4'), [
    { what: { type: 'Observation' }, type: { system: ENTITY_TYPE, code: '2', display: 'System Object' }, role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' } },
  ]);
  t.same(schemaIssues(event), []);
  // Not a type Carnet serves: nothing made up.
  t.same(entitiesWithRole(auditEvent(facts({ interaction: 'history-type', resources: [], type: 'Nope' })), '4'), []);
  // No patient, no resource, no query: no entity at all, still valid.
  const empty = auditEvent(facts({ interaction: 'history-system', patients: [], resources: [] }));
  t.equal(empty.entity, undefined);
  t.same(schemaIssues(empty), []);
});

t.test('each event is a fresh value: changing one does not change the next', async (t) => {
  const a = auditEvent(facts());
  a.type.code = 'changed';
  (a.agent[0].type?.coding ?? [])[0].code = 'changed';
  (a.entity ?? [])[0].type = { code: 'changed' };
  const b = auditEvent(facts());
  t.equal(b.type.code, 'rest');
  t.equal(b.agent[0].type?.coding?.[0].code, '110152');
  t.equal(b.entity?.[0].type?.code, '2');
  // Frozen like a stored resource, it can still be indexed.
  t.ok(indexEntries(Object.freeze(auditEvent(facts()))).length > 0);
});

t.test('every combination of interaction, actor, outcome, patients, address and query is valid R4', async (t) => {
  const actors: (Actor | undefined)[] = [undefined, ...Object.values(ACTORS)];
  const outcomes: AuditOutcome[] = ['success', 'denied', 'failure'];
  let count = 0;
  const invalid: string[] = [];
  for (const interaction of AUDIT_INTERACTIONS) {
    for (const actor of actors) {
      for (const outcome of outcomes) {
        for (const patients of [[], ['p1'], ['p1', 'p2']]) {
          for (const address of [undefined, '2001:db8::1']) {
            for (const query of [undefined, '', '_id=x&_count=10']) {
              const event = auditEvent({
                actor,
                interaction,
                outcome,
                patients,
                resources: patients.length ? patients.map((p) => `Patient/${p}/_history/1`) : [],
                ...(query !== undefined ? { query } : {}),
                type: 'Patient',
                recorded: RECORDED,
                server: SERVER,
                ...(address ? { address } : {}),
              });
              count++;
              const issues = schemaIssues(event);
              if (issues.length > 0) invalid.push(`${interaction}/${actor?.kind}/${outcome}: ${JSON.stringify(issues)}`);
              const entries = indexEntries(event);
              const found = refs(entries, 'patient').filter((r) => r !== 'Patient/p1' || actor?.kind !== 'patient');
              const want = patients.map((p) => `Patient/${p}`).filter((r) => r !== 'Patient/p1' || actor?.kind !== 'patient');
              if (JSON.stringify(found) !== JSON.stringify(want)) invalid.push(`${interaction}/${actor?.kind}: patient ${found} != ${want}`);
            }
          }
        }
      }
    }
  }
  t.equal(count, AUDIT_INTERACTIONS.length * actors.length * 3 * 3 * 2 * 3);
  t.same(invalid, []);
});

// ---------------------------------------------------------------------------------------------
// The BALP examples

/** BALP DataSources: the user agent of a create, update or delete is AUT, INF or CST (the examples use all three). */
const DATA_SOURCES = new Set(['AUT', 'INF', 'CST']);

/** The codes of an event that BALP fixes, comparable between an example and ours. */
function shape(event: AuditEvent): object {
  const agentCode = (c: Coding | undefined): string => (c && DATA_SOURCES.has(c.code ?? '') ? `${c.system}|DataSources` : `${c?.system}|${c?.code}`);
  const entity = (e: AuditEventEntity): string => `${e.type?.system}|${e.type?.code} ${e.role?.system}|${e.role?.code}${e.query ? ' query' : ''}`;
  return {
    type: `${event.type.system}|${event.type.code}`,
    subtype: (event.subtype ?? []).map((c) => `${c.system}|${c.code}`),
    action: event.action,
    outcome: event.outcome,
    agents: event.agent
      .filter((a) => a.type?.coding?.[0].code !== 'PROV')
      .map((a) => `${agentCode(a.type?.coding?.[0])} requestor=${a.requestor} network=${a.network ? a.network.type : '-'}`),
    entities: (event.entity ?? []).filter((e) => e.type?.code !== 'XrequestId').map(entity).sort(),
    source: (event.source.type ?? []).map((c) => `${c.system}|${c.code}`),
  };
}

const BALP_CASES: [string, Partial<AuditFacts>][] = [
  ['auditBasicReadServer', { interaction: 'read', resources: ['List/ex-list'], patients: ['ex-patient'] }],
  ['auditBasicCreateServer', { interaction: 'create', resources: ['List/ex-list'], patients: ['ex-patient'] }],
  ['auditBasicUpdate1', { interaction: 'update', resources: ['List/ex-list'], patients: ['ex-patient'] }],
  ['auditBasicPatch', { interaction: 'patch', resources: ['List/ex-list'], patients: ['ex-patient'] }],
  ['auditBasicUpdate2', { interaction: 'update', resources: ['List/ex-list'], patients: ['ex-patient'] }],
  ['auditBasicDeleteServer', { interaction: 'delete', resources: ['List/ex-list'], patients: ['ex-patient'] }],
  ['auditBasicQueryPost', { interaction: 'search-type', resources: [], patients: ['ex-patient'], query: 'patient=ex-patient', type: 'Observation' }],
];

t.test('same codes as the BALP examples (client, server and user agents; data, patient and query entities)', async (t) => {
  for (const [name, over] of BALP_CASES) {
    const balp = example(name);
    // The examples' client is a named machine on an IP address, the user a person (John Smith).
    const ours = auditEvent(facts({ actor: { ...ACTORS.practitioner, organizationId: undefined }, address: '2001:db8::1', ...over }));
    t.same(shape(ours), shape(balp), name);
  }
});

t.test('the BALP search example (GET, subtype "search") differs only in the subtype code', async (t) => {
  const balp = example('auditBasicQueryGetServer');
  const ours = auditEvent(facts({ interaction: 'search-type', resources: [], patients: ['ex-patient'], query: 'patient=ex-patient', type: 'Observation' }));
  t.same({ ...shape(ours), subtype: [] }, { ...shape(balp), subtype: [] });
  t.same(balp.subtype?.map((c) => c.code), ['search']);
  t.same(ours.subtype?.map((c) => c.code), ['search-type']);
});
