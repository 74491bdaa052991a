// The dataset generator (src/seed, `npm run seed`): a seeded store answers as one filled through
// HTTP with the same world, the world is the same for the same seed, and its pieces are valid.
// Runs on the file-backed SQLite store, as production does (writer thread, deferred index rows).
process.env.CARNET_TEST_STORE ??= 'file';

import t from 'tap';
import type { AuditEvent, Bundle, Patient, Resource } from '@medplum/fhirtypes';
import { fhir, json, testServer, type TestActor, type TestServer } from '../helpers.js';
import { seedStore } from '../../src/seed/index.js';
import { DIRECTORY_CLIENT, documentId, nirKey, patientId, professional, validIns, world, type WorldOptions } from '../../src/seed/world.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import type { Actor } from '../../src/auth/actor.js';
import { DIRECTORY_FEED } from '../helpers.js';

const WORLD: WorldOptions = { patients: 14, documents: 70, heavy: 24, practitioners: 6, seed: 7, accessesPerDocument: 0.5 };
const BASE_URL = 'http://carnet.test/fhir';

t.test('the NIR key is 97 minus the number mod 97', async (t) => {
  t.equal(nirKey('1841276451089'), '46');
  t.equal(nirKey('2850578006084'), String(97 - Number(2850578006084n % 97n)).padStart(2, '0'));
  t.ok(validIns('184127645108946'));
  t.notOk(validIns('184127645108947'), 'a wrong key is refused');
  t.throws(() => nirKey('12345'), RangeError);
});

t.test('every seeded patient has a valid INS, and the world has the documented type mix', async (t) => {
  const types = new Map<string, number>();
  let patients = 0;
  for (const step of world({ ...WORLD, documents: 2000, patients: 200 })) {
    if (step.kind !== 'write') continue;
    const r = step.resource;
    if (r.resourceType === 'Patient') {
      patients++;
      t.ok(validIns((r as Patient).identifier?.[0]?.value ?? ''), `${r.id} has a valid INS`);
    }
    if (r.resourceType === 'DocumentReference') {
      const code = r.type?.coding?.[0]?.code ?? '';
      types.set(code, (types.get(code) ?? 0) + 1);
    }
  }
  t.equal(patients, 200);
  // 11502-2 lab 45 %, 57833-6 prescriptions 25 %, 18748-4 imaging 18 %, 18842-5 discharge 12 %.
  const share = (code: string) => (types.get(code) ?? 0) / 2000;
  t.ok(share('11502-2') > 0.4 && share('11502-2') < 0.5, `lab results ${share('11502-2')}`);
  t.ok(share('18842-5') > 0.08 && share('18842-5') < 0.16, `discharge reports ${share('18842-5')}`);
  t.equal(types.size, 4);
});

t.test('two runs with the same seed write the same data; another seed, other data', async (t) => {
  const dump = async (seed: number) => {
    const store = new SqliteStore({ dataDir: ':memory:' });
    await seedStore(store, { ...WORLD, seed, baseUrl: BASE_URL });
    const changes = await store.changes(0, 100_000);
    await store.close();
    return changes;
  };
  const [a, b, c] = [await dump(7), await dump(7), await dump(8)];
  t.ok(a.length > 200, `${a.length} versions`);
  t.same(b, a);
  t.notSame(c.map((x) => x.version.resource), a.map((x) => x.version.resource));
});

/** The test actor a seeded actor is (the same person through a token). */
function testActorOf(actor: Actor): TestActor {
  switch (actor.kind) {
    case 'patient':
      return { kind: 'patient', patient: actor.patientId };
    case 'system':
      return { kind: 'system', client: actor.clientId, ...(actor.organizationId ? { organization: actor.organizationId } : {}) };
    default:
      throw new Error(`no writes by ${actor.kind} in the world`);
  }
}

/** The same world's writes through HTTP, each by its author, in order. */
async function fillThroughHttp(server: TestServer): Promise<void> {
  const tokens = new Map<string, string>();
  for (const step of world(WORLD)) {
    if (step.kind !== 'write') continue;
    const actor = testActorOf(step.actor);
    const scope = actor.kind === 'system' && actor.client === DIRECTORY_CLIENT ? DIRECTORY_FEED : undefined;
    const key = JSON.stringify(actor);
    if (!tokens.has(key)) tokens.set(key, await server.token(actor, scope));
    const headers = { authorization: `Bearer ${tokens.get(key)}` };
    const r: Resource = step.resource;
    // Consents get their id from the server (a patient creates with POST); the rest keep theirs (systems PUT).
    const res = r.resourceType === 'Consent' ? await fhir(server.app, 'POST', 'Consent', { ...r, id: undefined }, headers) : await fhir(server.app, 'PUT', `${r.resourceType}/${r.id}`, r, headers);
    if (res.statusCode >= 300) throw new Error(`${r.resourceType}/${r.id}: ${res.statusCode} ${res.body}`);
  }
}

t.test('a seeded store answers searches and reads as one filled through HTTP', async (t) => {
  const seeded = await testServer();
  const filled = await testServer();
  t.teardown(async () => {
    await seeded.close();
    await filled.close();
  });
  const result = await seedStore(seeded.store, { ...WORLD, baseUrl: BASE_URL });
  t.ok(result.written > 100, `${result.written} interactions written`);
  await fillThroughHttp(filled);

  const gp = professional(0); // pat-0000000's GP: GPs are the even practitioners, patient i has gps[i % 3]
  const gpActor: TestActor = { kind: 'practitioner', practitioner: gp.id, profession: gp.profession };
  const stranger: TestActor = { kind: 'practitioner', practitioner: professional(1).id, profession: professional(1).profession };
  const emergency: TestActor = { ...stranger, purpose: 'ETREAT' };
  const heavy = patientId(0);
  const cases: [string, TestActor, string][] = [
    ['GP: a patient\'s documents', gpActor, `DocumentReference?patient=${heavy}&_count=10`],
    ['GP: by patient and type', gpActor, `DocumentReference?patient=${heavy}&type=http://loinc.org|11502-2&_count=50`],
    ['GP: by patient and date', gpActor, `DocumentReference?patient=${heavy}&date=ge2024-06-01&_count=50`],
    ['GP: unpinned', gpActor, 'DocumentReference?type=http://loinc.org|57833-6&_count=100'],
    ['GP: patient with _revinclude', gpActor, `Patient?_id=${heavy}&_revinclude=DocumentReference:subject&_count=5`],
    ['GP: patients', gpActor, 'Patient?_count=100'],
    ['stranger: documents', stranger, `DocumentReference?patient=${heavy}`],
    ['emergency: documents', emergency, `DocumentReference?patient=${heavy}&_count=100`],
    ['patient: own documents', { kind: 'patient', patient: heavy }, 'DocumentReference?_count=100'],
    ['patient 3 (a permit): documents', { kind: 'patient', patient: patientId(3) }, 'DocumentReference?_count=100'],
  ];
  // The INS chain (ITI-67 by identifier), with the heavy patient's INS read from the store.
  const patient = await seeded.store.read('Patient', heavy);
  const value = patient.kind === 'found' ? (patient.version.resource as Patient).identifier?.[0]?.value : undefined;
  t.ok(value && validIns(value), 'the heavy patient has an INS');
  cases.push(['GP: by INS chain', gpActor, `DocumentReference?patient.identifier=urn:oid:1.2.250.1.213.1.4.8|${value}&status=current&_count=20`]);
  // The second professionals (permits of patients 3 and 13) and another GP, over all records.
  for (const i of [1, 3]) cases.push([`professional ${i}: all documents`, { kind: 'practitioner', practitioner: professional(i).id, profession: professional(i).profession }, 'DocumentReference?_count=200']);
  cases.push(['GP 2: all documents', { kind: 'practitioner', practitioner: professional(2).id, profession: '10' }, 'DocumentReference?_count=200']);

  let nonEmpty = 0;
  for (const [name, actor, query] of cases) {
    const answers = await Promise.all(
      [seeded, filled].map(async (server) => {
        const res = await fhir(server.app, 'GET', query, undefined, { authorization: `Bearer ${await server.token(actor)}` });
        const bundle = json<Bundle>(res);
        return { status: res.statusCode, total: bundle.total, ids: (bundle.entry ?? []).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`) };
      }),
    );
    t.same(answers[0], answers[1], name);
    if (answers[0].ids.length > 0) nonEmpty++;
  }
  t.ok(nonEmpty >= 8, `${nonEmpty} of ${cases.length} answers hold resources`);

  // Reads: a document of the heavy record, and a masked one, decided alike.
  for (const id of [documentId(0), documentId(1)]) {
    const statuses = await Promise.all([seeded, filled].map(async (s) => (await fhir(s.app, 'GET', `DocumentReference/${id}`, undefined, { authorization: `Bearer ${await s.token(gpActor)}` })).statusCode));
    t.equal(statuses[0], statuses[1], `GP reads DocumentReference/${id}: ${statuses[0]}`);
  }

  // The access log: the seeded history is there, readable by the patient, and not by the GP.
  const log = await fhir(seeded.app, 'GET', `AuditEvent?patient=${heavy}&_count=200`, undefined, { authorization: `Bearer ${await seeded.token({ kind: 'patient', patient: heavy })}` });
  const events = (json<Bundle>(log).entry ?? []).map((e) => e.resource as AuditEvent);
  t.ok(events.some((e) => e.subtype?.[0]?.code === 'read' && e.agent?.some((a) => a.who?.reference === `Practitioner/${gp.id}`)), 'the GP\'s seeded reads are in the log');
  t.ok(events.some((e) => e.subtype?.[0]?.code === 'create' && e.entity?.some((x) => x.what?.reference?.startsWith('DocumentReference/'))), 'the pushes are in the log');
  const gpLog = await fhir(seeded.app, 'GET', `AuditEvent?patient=${heavy}`, undefined, { authorization: `Bearer ${await seeded.token(gpActor)}` });
  t.equal(json<Bundle>(gpLog).entry?.length ?? 0, 0, 'the GP reads no access log');
});
