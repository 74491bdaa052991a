// The AuditEvent index entries found without FHIRPath (search/audit-entries) are the entries
// search/extract's FHIRPath evaluation finds, entry for entry and in the same order, for every kind
// of event the audit builder writes (generated from a seeded random source) and for AuditEvents
// carrying elements the builder never sets; and an AuditEvent search on every parameter finds
// the record written with the direct entries.
import t from 'tap';
import type { AuditEvent } from '@medplum/fhirtypes';
import type { Actor } from '../../src/auth/actor.js';
import { AUDIT_INTERACTIONS, auditEvent, type AuditFacts, type AuditOutcome } from '../../src/audit/event.js';
import { auditEventId } from '../../src/audit/id.js';
import { auditIndexEntries } from '../../src/search/audit-entries.js';
import { fhirPathEntries, indexEntries } from '../../src/search/extract.js';
import { paramsOf } from '../../src/search/params.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import type { Condition } from '../../src/search/types.js';

// A small seeded generator (mulberry32): the same events on every run.
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = random(20261127);
const pick = <T>(values: readonly T[]): T => values[Math.floor(rnd() * values.length)];
const some = <T>(values: readonly T[], max: number): T[] => Array.from({ length: Math.floor(rnd() * (max + 1)) }, () => pick(values));
const maybe = <T>(value: T): T | undefined => (rnd() < 0.5 ? value : undefined);

const IDS = ['p1', 'p-2', 'x.y', 'A1b2', 'dur-patient', '', ' ', 'deux mots', 'a/b', '123'];
const ISSUERS = ['https://auth.carnet.test', 'urn:carnet:dev', 'has a space', ''];
const CLIENTS = ['dpi-hopital', 'carnet-app', '', '   ', undefined];
const RESOURCES = [
  'DocumentReference/doc-1',
  'DocumentReference/doc-1/_history/3',
  'Patient/p1',
  'Patient/p-2/_history/1',
  'Observation/o.1',
  'Binary/b1',
  'AuditEvent/0abc-0001-ffee',
  'urn:uuid:7d3e9a52-8b3f-4e0c-9a4f-2a7b1c0d5e6f',
  'http://other.example/fhir/Patient/p9',
  '#contained',
  'NotAType/1',
  '',
];
const TYPES = ['DocumentReference', 'Patient', 'Observation', 'Binary', 'NotAType', '', undefined];
const QUERIES = ['patient=p1&_count=10', 'code=http://loinc.org|1234-5', '_sort=-date', '', undefined];
const ADDRESSES = ['192.0.2.10', '2001:db8::1', 'poste-42.hopital.example', '', undefined];
const SERVERS = ['https://carnet.test/fhir', 'http://127.0.0.1:8080/fhir', 'not a url', 'http://[::1]:9/fhir'];
const RECORDED = ['2026-11-27T14:01:02.345Z', '2026-01-01T00:00:00Z', '2025-03-14T09:26:53.589+01:00'];

function actor(): Actor | undefined {
  const common = { grants: [], issuer: pick(ISSUERS), subject: pick(['sub-1', '', 'dr-gp']), ...(pick([true, false]) ? { clientId: pick(CLIENTS) as string } : {}) };
  switch (pick(['none', 'patient', 'representative', 'practitioner', 'system', 'organisation'] as const)) {
    case 'none':
      return undefined;
    case 'patient':
      return { ...common, kind: 'patient', patientId: pick(IDS) };
    case 'representative':
      return { ...common, kind: 'representative', relatedPersonId: pick(IDS), patientIds: some(IDS, 2) };
    case 'practitioner': {
      const rpps = maybe('10101010101');
      const specialty = maybe('SM26');
      const organizationId = maybe(pick(IDS));
      const patientId = maybe(pick(IDS));
      return { ...common, kind: 'practitioner', practitionerId: pick(IDS), profession: pick(['10', '21', '']), purposeOfUse: pick(['TREAT', 'ETREAT'] as const), ...(rpps ? { rpps } : {}), ...(specialty ? { specialty } : {}), ...(organizationId !== undefined ? { organizationId } : {}), ...(patientId !== undefined ? { patientId } : {}) };
    }
    case 'system': {
      const organizationId = maybe(pick(IDS));
      return { ...common, kind: 'system', clientId: pick(['vendor', '', 'lab-1']), ...(organizationId !== undefined ? { organizationId } : {}) };
    }
    case 'organisation':
      return { ...common, kind: 'organisation', role: pick(['mandatory-insurer', 'employer'] as const), organizationId: pick(IDS) };
  }
}

function facts(): AuditFacts {
  const query = pick(QUERIES);
  const type = pick(TYPES);
  const reason = maybe(pick(['403 forbidden', '404 not-found', '', 'internal error']));
  const address = pick(ADDRESSES);
  return {
    actor: actor(),
    interaction: pick(AUDIT_INTERACTIONS),
    outcome: pick<AuditOutcome>(['success', 'denied', 'failure']),
    patients: some(IDS, 3),
    resources: some(RESOURCES, 4),
    ...(query !== undefined ? { query } : {}),
    ...(type !== undefined ? { type } : {}),
    ...(reason !== undefined ? { reason } : {}),
    ...(address !== undefined ? { address } : {}),
    recorded: pick(RECORDED),
    server: pick(SERVERS),
  };
}

const generated = (n: number): AuditEvent[] => Array.from({ length: n }, () => ({ ...auditEvent(facts()), id: auditEventId() }));

t.test('the direct entries equal the FHIRPath entries for 3,000 generated audit records', async (t) => {
  let differing = 0;
  let entries = 0;
  const params = new Set<string>();
  for (const event of generated(3000)) {
    const direct = auditIndexEntries(event);
    const expected = fhirPathEntries(event);
    entries += expected.length;
    for (const e of expected) params.add(e.param);
    if (JSON.stringify(direct) !== JSON.stringify(expected)) {
      if (differing++ === 0) t.same(direct, expected, `first differing event: ${JSON.stringify(event)}`);
    }
  }
  t.equal(differing, 0, 'no event differs');
  // indexEntries(), which the store's writer calls on the records of the audit journal, walks them too.
  const sample = generated(50);
  t.same(sample.map(indexEntries), sample.map(auditIndexEntries), 'indexEntries() gives an AuditEvent the direct entries');
  t.ok(entries > 15_000, `${entries} entries compared`);
  // The generated records exercise every parameter the builder ever fills.
  for (const p of ['agent', 'agent:identifier', 'date', 'entity', 'outcome', 'patient', 'patient:identifier', 'subtype']) {
    t.ok(params.has(p), `some record has ${p} entries`);
  }
  // AuditEvent is searched by the access log's parameters only (search/params SEARCHABLE_ONLY).
  for (const p of ['action', 'address', 'agent-role', 'altid', 'entity-role', 'entity-type', 'site', 'type']) t.notOk(params.has(p), `no record has ${p} entries`);
});

t.test('elements the builder never sets are indexed like FHIRPath indexes them', async (t) => {
  const [base] = generated(1);
  const event: AuditEvent = {
    ...base,
    meta: { lastUpdated: '2026-11-27T10:00:00Z', profile: ['https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Read'], security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N' }], tag: [{ code: 'imported', display: 'Imported' }], source: 'urn:carnet:import' },
    agent: [
      ...(base.agent ?? []),
      { requestor: false, name: 'Dr Jean Martin', policy: ['urn:policy:1', 'http://policy.example/2'], role: [{ text: 'Surgeon' }, { coding: [{ code: 'x', display: 'X' }], text: 'Ex' }], who: { reference: 'Patient/p3', identifier: { system: 'urn:ins', value: '123' } } },
      { requestor: false, altId: 'alt-2', who: { reference: 'http://other.example/fhir/Patient/p4' } },
    ],
    entity: [...(base.entity ?? []), { name: 'Compte rendu', what: { reference: 'Patient/p5/_history/2' }, role: { code: '3' }, type: { system: 's', code: '2' } }, { what: { identifier: { value: 'only-identifier' } } }],
  };
  t.same(auditIndexEntries(event), fhirPathEntries(event));
  for (const p of ['_security', '_tag', '_profile', '_source']) t.ok(auditIndexEntries(event).some((e) => e.param === p), `${p} is indexed`);
  for (const p of ['agent-name', 'policy', 'entity-name', 'agent-role', 'altid']) t.notOk(auditIndexEntries(event).some((e) => e.param === p), `${p} is not indexed`);
});

t.test('an AuditEvent stored with the direct entries is found by each of its parameters', async (t) => {
  const store = new SqliteStore({ dataDir: ':memory:' });
  t.teardown(() => store.close());
  const events = generated(200).filter((e) => auditIndexEntries(e).length > 0);
  await store.transact(events.map((e) => ({ kind: 'create', resource: e as AuditEvent & { id: string }, index: auditIndexEntries(e), creator: 'carnet:audit' })), '2026-11-27T14:00:00Z');
  const known = new Map(paramsOf('AuditEvent').map((p) => [p.code, p]));
  let checked = 0;
  for (const event of events.slice(0, 40)) {
    for (const entry of auditIndexEntries(event)) {
      let where: Condition | undefined;
      if (entry.kind === 'token' && entry.code !== null && !entry.param.includes(':')) where = { kind: 'token', param: entry.param, values: [{ ...(entry.system !== null ? { system: entry.system } : {}), code: entry.code }] };
      else if (entry.kind === 'reference' && entry.targetId !== null && entry.targetType !== null) where = { kind: 'reference', param: entry.param, values: [{ targetType: entry.targetType, targetId: entry.targetId }] };
      if (!where || !known.has(entry.param)) continue;
      const page = await store.search({ types: ['AuditEvent'], where: [where, { kind: 'id', ids: [event.id as string] }], sort: [] }, { count: 2 });
      t.equal(page.matches.length, 1, `${entry.param} finds AuditEvent/${event.id}`);
      checked++;
    }
  }
  t.ok(checked > 100, `${checked} searches`);
});
