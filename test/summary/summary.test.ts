// GET Patient/[id]/$summary through the real server (docs/summary.md): the IPS document Bundle as
// the patient, their general practitioner, a podiatrist whose matrix forbids treatments and
// problems, a blocked professional and an insurer see it; masked entries absent without a trace;
// the read recorded in the patient's access log.
import t from 'tap';
import type { AuditEvent, Bundle, Composition, CompositionSection, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { fhir, json } from '../helpers.js';
import { BLOCKED, GP, INSURER, PATIENT, PODIATRIST, profileWorld } from './fixture.js';
import type { TestActor } from '../helpers.js';

const world = await profileWorld();
t.teardown(() => world.server.close());
const { app } = world.server;

const summaryOf = async (actor: TestActor, patient = 'p1') => fhir(app, 'GET', `Patient/${patient}/$summary`, undefined, await world.as(actor));
const compositionOf = (bundle: Bundle) => bundle.entry?.[0]?.resource as Composition;
const section = (bundle: Bundle, code: string): CompositionSection | undefined => compositionOf(bundle).section?.find((s) => s.code?.coding?.[0]?.code === code);
const refs = (s: CompositionSection | undefined) => (s?.entry ?? []).map((e) => e.reference);
const resources = (bundle: Bundle) => (bundle.entry ?? []).map((e) => e.resource as Resource);
const key = (r: Resource) => `${r.resourceType}/${r.id}`;
const written = (type: string) => world.written.filter((k) => k.startsWith(`${type}/`));

// IPS section codes (hl7.fhir.uv.ips 2.0.1, CompositionUvIps.fsh).
const ALLERGIES = '48765-2';
const MEDICATIONS = '10160-0';
const PROBLEMS = '11450-4';
const PAST = '11348-0';
const IMMUNIZATIONS = '11369-6';
const VITALS = '8716-3';
const DIRECTIVES = '42348-3';

t.test('the patient gets an IPS document Bundle of their whole profile', async (t) => {
  const res = await summaryOf(PATIENT);
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  const bundle = json<Bundle>(res);
  t.equal(bundle.type, 'document');
  t.same(bundle.meta?.profile, ['http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips']);
  t.ok(bundle.timestamp && bundle.identifier?.value?.startsWith('urn:uuid:'), 'a document Bundle has its identifier and timestamp');
  const composition = compositionOf(bundle);
  t.equal(composition.resourceType, 'Composition', 'the Composition comes first');
  t.same(composition.type.coding?.[0], { system: 'http://loinc.org', code: '60591-5', display: 'Patient summary Document' });
  t.equal(composition.subject?.reference, 'Patient/p1');
  t.equal(composition.author[0].reference, 'Patient/p1', 'the patient generated it');
  t.same(composition.section?.map((s) => s.code?.coding?.[0]?.code), [ALLERGIES, MEDICATIONS, PROBLEMS, PAST, IMMUNIZATIONS, VITALS, DIRECTIVES]);
  t.same(refs(section(bundle, ALLERGIES)).sort(), written('AllergyIntolerance').sort(), 'the patient sees the allergy they masked');
  t.same(refs(section(bundle, MEDICATIONS)), written('MedicationStatement'));
  t.same(refs(section(bundle, PROBLEMS)), [written('Condition')[0]], 'the active problem');
  t.same(refs(section(bundle, PAST)), [written('Condition')[1]], 'the resolved one is a past illness');
  t.same(refs(section(bundle, IMMUNIZATIONS)), written('Immunization'));
  t.same(refs(section(bundle, DIRECTIVES)), written('DocumentReference'));
  const observations = written('Observation');
  t.same(refs(section(bundle, VITALS)), [observations[1], observations[2], observations[3]], 'the latest weight, the height, the blood pressure: the older weight is left out');
  for (const s of composition.section ?? []) t.match(s.text?.div, /^<div xmlns="http:\/\/www.w3.org\/1999\/xhtml">/, `${s.title} has its narrative`);
  t.match(section(bundle, ALLERGIES)?.text?.div, /Pénicilline — criticité élevée ; réaction : Éruption cutanée/);
  const inBundle = new Set(resources(bundle).map(key));
  for (const s of composition.section ?? []) for (const r of refs(s)) t.ok(inBundle.has(r as string), `${r} is in the Bundle`);
  t.notOk(inBundle.has(written('FamilyMemberHistory')[0]), 'family history has no IPS section');
});

t.test('the general practitioner sees everything but what the patient masked, with no trace of it', async (t) => {
  const res = await summaryOf(GP);
  t.equal(res.statusCode, 200);
  const bundle = json<Bundle>(res);
  t.same(refs(section(bundle, ALLERGIES)), written('AllergyIntolerance').filter((k) => k !== world.masked));
  t.notOk(res.body.includes(world.masked.split('/')[1]), 'the masked allergy\'s id is nowhere in the answer');
  t.notOk(res.body.includes('Arachide'), 'nor its text');
  t.same(refs(section(bundle, MEDICATIONS)), written('MedicationStatement'));
  t.equal(compositionOf(bundle).author[0].reference, 'Practitioner/dr-gp');
  t.equal(compositionOf(bundle).author[0].display, 'Dr Hélène Garçon (Médecin)');
  t.ok(resources(bundle).some((r) => key(r) === 'Practitioner/dr-gp'), 'the author is in the Bundle');
});

t.test('a professional whose matrix forbids a type gets those sections as if they were empty', async (t) => {
  const res = await summaryOf(PODIATRIST);
  t.equal(res.statusCode, 200);
  const bundle = json<Bundle>(res);
  t.same(refs(section(bundle, ALLERGIES)), written('AllergyIntolerance').filter((k) => k !== world.masked), 'allergies are open to podiatrists');
  for (const code of [MEDICATIONS, PROBLEMS]) t.same(refs(section(bundle, code)), [], `${code}: nothing listed`);
  for (const code of [PAST, IMMUNIZATIONS, VITALS]) t.equal(section(bundle, code), undefined, `${code}: no section`);
  const types = new Set<string>(resources(bundle).map((r) => r.resourceType));
  for (const type of ['MedicationStatement', 'Condition', 'Immunization', 'Observation']) t.notOk(types.has(type), `no ${type} in the Bundle`);
  // The required sections read exactly as those of a patient who has nothing: nothing tells them apart.
  const empty = json<Bundle>(await summaryOf(GP, 'p2'));
  for (const code of [MEDICATIONS, PROBLEMS]) t.same(section(bundle, code), section(empty, code), `${code} is the section of an empty profile`);
  t.same(section(empty, ALLERGIES)?.emptyReason?.coding?.[0]?.code, 'unavailable');
});

t.test('a blocked professional is refused as if the patient did not exist, and an insurer is forbidden', async (t) => {
  const blocked = await summaryOf(BLOCKED);
  const missing = await summaryOf(GP, 'nobody');
  t.equal(blocked.statusCode, 404);
  t.equal(missing.statusCode, 404);
  t.equal(json<OperationOutcome>(blocked).resourceType, 'OperationOutcome');
  t.notOk(blocked.body.includes('Pénicilline'));
  const insurer = await summaryOf(INSURER);
  t.equal(insurer.statusCode, 403);
  t.equal(json<OperationOutcome>(insurer).resourceType, 'OperationOutcome');
});

t.test('the summary is one read in the patient\'s access log, naming what it showed', async (t) => {
  const res = await summaryOf(GP);
  const shown = resources(json<Bundle>(res)).filter((r) => r.resourceType !== 'Composition' && r.resourceType !== 'Practitioner').map(key);
  const log = json<Bundle>(await fhir(app, 'GET', 'AuditEvent?patient=p1&_count=100', undefined, await world.as(PATIENT)));
  const records = (log.entry ?? []).map((e) => e.resource as AuditEvent).filter((e) => e.subtype?.some((s) => s.code === 'operation') && e.agent.some((a) => a.who?.reference === 'Practitioner/dr-gp'));
  t.ok(records.length >= 1, 'the GP\'s summaries are recorded');
  const entities = new Set((records[0].entity ?? []).map((e) => e.what?.reference));
  for (const r of shown) t.ok(entities.has(r), `${r} is named`);
  t.notOk(entities.has(world.masked), 'the masked allergy is not named: the GP never touched it');
  const denied = (log.entry ?? []).map((e) => e.resource as AuditEvent).filter((e) => e.outcome === '4' && e.agent.some((a) => a.who?.reference === 'Practitioner/dr-blocked'));
  t.ok(denied.length >= 1, 'the blocked professional\'s attempt is recorded as refused');
});

t.test('only GET, only on a Patient', async (t) => {
  const headers = await world.as(GP);
  t.equal((await fhir(app, 'POST', 'Patient/p1/$summary', {}, headers)).statusCode, 404);
  t.equal((await fhir(app, 'GET', 'Observation/x/$summary', undefined, headers)).statusCode, 404);
});
