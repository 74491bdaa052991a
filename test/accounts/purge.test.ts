// The purge of an account through the real server, on the production store (a data folder, the
// writer thread, the audit journal) and a clock that walks ten years (docs/accounts.md, "Purge"):
// a person's account is closed, archived 30 days later and purged ten years after that. Then no
// resource, version, index row, blob or access record content of theirs is left: the test scans
// every file of the data folder for their INS, names, id and the text of their document. Another
// person's record, a blob with the same bytes as one of the purged person's documents, and an
// access record about both of them (kept, redacted) stay.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { AuditEvent, Bundle, Parameters, Patient } from '@medplum/fhirtypes';
import { authorizationFor, fhir, json, testServer, type TestActor } from '../helpers.js';
import { seed } from '../seed.js';
import { documentPush } from './push.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { redactedRecord } from '../../src/accounts/purge.js';
import { ARCHIVE_KEPT_MS } from '../../src/policy/account.js';

const DAY = 86_400_000;
const INS = 'urn:oid:1.2.250.1.213.1.4.8';
const T0 = Date.parse('2027-03-01T09:00:00.000Z');
let clock = T0;
const now = () => new Date(clock).toISOString();

t.test('redactedRecord: a record about the person alone goes; about others too, it stays without them', async (t) => {
  const record = (entities: string[], agent = 'Practitioner/p'): AuditEvent => ({
    resourceType: 'AuditEvent',
    type: { code: 'rest' },
    recorded: '2027-01-01T00:00:00Z',
    agent: [{ who: { reference: agent }, requestor: true }],
    source: { observer: { display: 'x' } },
    entity: entities.map((reference) => ({ what: { reference } })),
  });
  const erased = new Set(['DocumentReference/d1']);
  t.equal(redactedRecord(record(['Patient/a', 'DocumentReference/d1']), 'a', erased), undefined, 'about the person alone');
  t.same(redactedRecord(record(['Patient/a', 'DocumentReference/d1', 'Patient/b', 'DocumentReference/d2']), 'a', erased)?.entity, [{ what: { reference: 'Patient/b' } }, { what: { reference: 'DocumentReference/d2' } }], 'about b too: a and a\'s document taken out');
  t.same(redactedRecord(record(['http://x/fhir/Patient/a', 'Patient/b']), 'a', erased)?.entity, [{ what: { reference: 'Patient/b' } }], 'absolute references too');
  t.equal(redactedRecord(record(['Patient/b'], 'Patient/a'), 'a', erased), undefined, 'an action of the person goes');
});

t.test('purge: ten years after archiving, nothing of the person is left in the data folder', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-purge-'));
  const store = new SqliteStore({ dataDir: dir, sync: 'normal' });
  let open = true;
  t.teardown(async () => {
    if (open) await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const server = await testServer({ now, store });
  t.teardown(() => server.close());
  const { app } = server;
  const as = authorizationFor(server);
  const FEED: TestActor = { kind: 'system', client: 'cnam-feed' };
  const LAB: TestActor = { kind: 'system', client: 'lab-system' };
  const GP: TestActor = { kind: 'practitioner', practitioner: 'dr-purge-gp', profession: '10' };
  await seed(store, [{ resourceType: 'Practitioner', id: 'dr-purge-gp', name: [{ family: 'Martin' }] }]);
  // Other people, enough for the indexes to have interior pages (which hold copies of keys: the
  // purge must not leave the person's INS or id in one of them).
  await seed(store, Array.from({ length: 3000 }, (_, i) => ({ resourceType: 'Patient', id: `other-${i}`, identifier: [{ system: INS, value: String(190000000000000 + i * 7919) }], name: [{ family: `Autre${i}` }] }) as Patient));
  const call = async (actor: TestActor, method: 'GET' | 'POST', url: string, body?: unknown) => fhir(app, method, url, body, await as(actor));

  // Unusual strings, so that a hit in the scan can only be this person's.
  const gone = { ins: '283047512345617', family: 'Xylofrontière', given: 'Quillonette', report: `purged-report-${crypto.randomUUID()}` };
  const kept = { ins: '190017512345603', family: 'Conservé' };
  const shared = `shared-bytes-${crypto.randomUUID()}`;
  const enrol = await call(FEED, 'POST', 'Patient/$enrol', {
    resourceType: 'Parameters',
    parameter: [gone, kept].map((p) => ({
      name: 'patient',
      resource: {
        resourceType: 'Patient',
        identifier: [{ system: INS, value: p.ins }],
        name: [{ family: p.family, ...('given' in p ? { given: [p.given as string] } : {}) }],
        birthDate: '1983-04-27',
        generalPractitioner: [{ reference: 'Practitioner/dr-purge-gp' }],
      } satisfies Patient,
    })),
  });
  t.equal(enrol.statusCode, 200, enrol.body);
  const ids = (json<Parameters>(enrol).parameter ?? []).map((r) => (r.part?.find((p) => p.name === 'patient')?.valueReference?.reference as string).replace('Patient/', ''));
  const [a, b] = ids;
  clock += 43 * DAY;
  t.equal(await app.accounts.run(), 2, 'both accounts open after six weeks');

  const push = (patient: string, text: string) => documentPush(patient, text, patient === a ? gone.report : 'kept report');
  for (const [patient, text] of [[a, gone.report], [a, shared], [b, shared], [b, 'kept bytes']] as const) {
    const res = await call(LAB, 'POST', '', push(patient, text));
    t.equal(res.statusCode, 200, res.body);
  }
  // Accesses: the person reads their record, the GP reads each record and both at once.
  t.equal((await call({ kind: 'patient', patient: a }, 'GET', `DocumentReference?patient=${a}`)).statusCode, 200);
  t.equal((await call(GP, 'GET', `DocumentReference?patient=${a}`)).statusCode, 200);
  const both = await call(GP, 'GET', `DocumentReference?patient=${a},${b}`);
  t.equal(json<Bundle>(both).entry?.length, 4, 'the GP sees both records at once');
  t.equal((await call({ kind: 'patient', patient: a }, 'POST', `Patient/${a}/$close`, { resourceType: 'Parameters' })).statusCode, 200, 'the person closes the account');

  clock += 31 * DAY;
  t.equal(await app.accounts.run(), 1, 'archived 30 days after closing');
  // The archive service reads the archived record, and nothing else (docs/accounts.md).
  const ARCHIVE: TestActor = { kind: 'organisation', role: 'archive', organization: 'archive-service' };
  t.equal((await call(ARCHIVE, 'GET', `Patient/${a}`)).statusCode, 200, 'the archive reads the archived Patient');
  t.equal(json<Bundle>(await call(ARCHIVE, 'GET', `DocumentReference?patient=${a}`)).entry?.length, 2, 'and its documents');
  t.equal((await call(ARCHIVE, 'GET', `Patient/${b}`)).statusCode, 404, 'not an open account');
  t.equal(json<Bundle>(await call(ARCHIVE, 'GET', `DocumentReference?patient=${b}`)).entry, undefined, 'nor its documents');
  t.same((json<Bundle>(await call(ARCHIVE, 'GET', 'DocumentReference')).entry ?? []).map((e) => (e.resource as { subject?: { reference?: string } }).subject?.reference), [`Patient/${a}`, `Patient/${a}`], 'an unpinned search: the archived record only');
  t.equal(json<Bundle>(await call(ARCHIVE, 'GET', `AuditEvent?patient=${a}`)).entry, undefined, 'nor the access log');
  t.equal((await call(ARCHIVE, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${a}` } })).statusCode, 403, 'it writes nothing');
  t.equal(json<Bundle>(await call(GP, 'GET', `DocumentReference?patient=${a}`)).entry, undefined, 'the GP reads nothing of the archive');
  clock += ARCHIVE_KEPT_MS - DAY;
  t.equal(await app.accounts.run(), 0, 'not purged before ten years');
  clock += 2 * DAY;
  t.equal(await app.accounts.run(), 1, 'purged ten years after archiving');

  t.same(await store.read('Patient', a), { kind: 'missing' }, 'the Patient is gone, no tombstone');
  for (const type of ['DocumentReference', 'Binary', 'AuditEvent', 'Communication']) {
    const left = await store.search({ types: [type], where: [{ kind: 'reference', param: type === 'Binary' ? 'security-context' : type === 'AuditEvent' ? 'entity' : 'subject', values: [{ targetType: 'Patient', targetId: a }] }], sort: [] }, { count: 5 });
    t.same(left.matches, [], `no ${type} about the person`);
  }
  const bDocs = json<Bundle>(await call(GP, 'GET', `DocumentReference?patient=${b}`));
  t.equal(bDocs.entry?.length, 2, 'the other person\'s documents stay');
  const sharedKey = crypto.createHash('sha256').update(shared).digest('hex');
  t.ok(await store.blobs.stat(sharedKey), 'a blob another person\'s Binary uses stays');
  t.equal(await store.blobs.stat(crypto.createHash('sha256').update(gone.report).digest('hex')), undefined, 'the person\'s own blob is erased');
  const aboutB = await store.search({ types: ['AuditEvent'], where: [{ kind: 'reference', param: 'entity', values: [{ targetType: 'Patient', targetId: b }] }], sort: [] }, { count: 50 });
  const joint = aboutB.matches.map((m) => m.resource as AuditEvent).filter((e) => e.agent?.some((g) => g.who?.reference === 'Practitioner/dr-purge-gp') && e.subtype?.some((s) => s.code === 'search-type'));
  t.ok(joint.length >= 1, 'the GP\'s search of both records is still in the other person\'s access log');
  t.notOk(JSON.stringify(joint).includes(a), 'without the purged person');
  const purges = await store.search({ types: ['AuditEvent'], where: [{ kind: 'token', param: 'subtype', values: [{ code: 'account-purge' }] }], sort: [] }, { count: 5 });
  t.equal(purges.matches.length, 1, 'the purge has its access record');
  t.notOk(JSON.stringify(purges.matches[0].resource).includes(a), 'which names no one');

  await server.close();
  await store.close();
  open = false;
  const needles = [a, gone.ins, gone.family, gone.given, gone.report, Buffer.from(gone.report).toString('base64')];
  const hits: string[] = [];
  const scan = (folder: string) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const file = path.join(folder, entry.name);
      if (entry.isDirectory()) scan(file);
      else {
        const bytes = fs.readFileSync(file);
        for (const needle of needles) if (bytes.includes(Buffer.from(needle))) hits.push(`${path.relative(dir, file)}: ${needle === a ? 'the patient id' : needle}`);
      }
    }
  };
  scan(dir);
  t.same(hits, [], 'no file of the data folder holds anything of the person');
  const counts = fs.readdirSync(dir);
  t.ok(counts.length > 0, 'the scan read the data folder');
  t.ok(fs.readFileSync(path.join(dir, 'carnet.sqlite')).includes(Buffer.from(kept.family)), 'the scan finds what is kept (it would find the person\'s data)');
});
