// A lab system end to end, as it runs unattended: registered in the app catalogue, it gets a
// SMART Backend Services token with its own key, pushes a report for a patient it knows by INS
// (ITI-65), finds it (ITI-67), retrieves its bytes (ITI-68), replaces it, then marks the
// replacement entered-in-error. Another system sees none of it.
import crypto, { randomUUID } from 'node:crypto';
import t from 'tap';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Bundle, DocumentReference } from '@medplum/fhirtypes';
import { registerClient } from '../../src/auth/clients.js';
import { JWT_BEARER_ASSERTION } from '../../src/auth/token-endpoint.js';
import { BASE, fhir, json, testServer } from '../helpers.js';
import { INS_SYSTEM, provideBundle } from './fixture.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;
const TOKEN_URL = 'http://carnet.test/auth/token';
const INS = '277076322082910';
const SCOPES = 'system/DocumentReference.crus system/List.crs system/Binary.cr system/Patient.rs';

/** Registers a system client and gets it a token the way a vendor system does: a signed assertion. */
async function systemToken(name: string): Promise<string> {
  const { publicKey, privateKey } = await generateKeyPair('ES384', { extractable: true });
  const kid = randomUUID();
  const client = await registerClient(server.store.clients, { name, kind: 'system', jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES384' }] }, scopes: SCOPES, certified: true });
  const assertion = await new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES384', kid, typ: 'JWT' })
    .setIssuer(client.id)
    .setSubject(client.id)
    .setAudience(TOKEN_URL)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 240)
    .sign(privateKey);
  const res = await app.inject({
    method: 'POST',
    url: '/auth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER_ASSERTION, client_assertion: assertion, scope: SCOPES }).toString(),
  });
  if (res.statusCode !== 200) throw new Error(`token: ${res.statusCode} ${res.body}`);
  return (res.json() as { access_token: string }).access_token;
}

// The patient is registered by the national identity service, not by the lab.
await fhir(app, 'PUT', 'Patient/p-ins', { resourceType: 'Patient', id: 'p-ins', identifier: [{ system: INS_SYSTEM, value: INS }], name: [{ family: 'Durand' }] });
const lab = await systemToken('Laboratoire Bio+');
const other = await systemToken('Autre éditeur');
const as = (token: string) => ({ authorization: `Bearer ${token}` });
const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), crypto.randomBytes(4096)]);

function report(bytes: Buffer, replaces?: string): Bundle {
  return provideBundle(
    `Patient?identifier=${INS_SYSTEM}|${INS}`,
    {
      resourceType: 'DocumentReference',
      status: 'current',
      type: { coding: [{ system: 'http://loinc.org', code: '11502-2', display: 'Laboratory report' }] },
      date: '2026-11-27T09:00:00+01:00',
      content: [{ attachment: { contentType: 'application/pdf', size: bytes.length, hash: crypto.createHash('sha1').update(bytes).digest('base64') } }],
      ...(replaces ? { relatesTo: [{ code: 'replaces', target: { reference: `DocumentReference/${replaces}` } }] } : {}),
    },
    bytes,
  );
}
const idOf = (bundle: Bundle, i: number) => /\/([^/]+)\/_history\//.exec(bundle.entry?.[i]?.response?.location ?? '')?.[1] ?? '';

t.test('a lab system pushes, finds, retrieves, replaces and withdraws its report', async (t) => {
  const pushed = await fhir(app, 'POST', '', report(pdf), as(lab));
  t.equal(pushed.statusCode, 200, pushed.body.slice(0, 300));
  const first = idOf(json<Bundle>(pushed), 1);

  const found = json<Bundle>(await fhir(app, 'GET', `DocumentReference?patient.identifier=${encodeURIComponent(`${INS_SYSTEM}|${INS}`)}&status=current`, undefined, as(lab)));
  t.same(found.entry?.map((e) => e.resource?.id), [first], 'ITI-67 finds it');
  const document = found.entry?.[0]?.resource as DocumentReference;
  t.equal(document.subject?.reference, 'Patient/p-ins', 'filed in the record of the INS');

  const retrieved = await app.inject({ method: 'GET', url: `/fhir/${document.content[0].attachment.url}`, headers: { ...as(lab), accept: '*/*' } });
  t.equal(retrieved.statusCode, 200);
  t.equal(retrieved.headers['content-type'], 'application/pdf');
  t.ok(retrieved.rawPayload.equals(pdf), 'ITI-68 returns the very bytes');

  const stranger = json<Bundle>(await fhir(app, 'GET', 'DocumentReference?patient=Patient/p-ins', undefined, as(other)));
  t.equal(stranger.entry?.length ?? 0, 0, 'another system finds nothing');

  const corrected = Buffer.concat([pdf, Buffer.from('\n% corrected')]);
  const replaced = await fhir(app, 'POST', '', report(corrected, first), as(lab));
  t.equal(replaced.statusCode, 200, replaced.body.slice(0, 300));
  const second = idOf(json<Bundle>(replaced), 1);
  t.equal(json<DocumentReference>(await fhir(app, 'GET', `DocumentReference/${first}`, undefined, as(lab))).status, 'superseded', 'the first is superseded');

  const withdraw = { resourceType: 'Parameters', parameter: [{ name: 'operation', part: [{ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'DocumentReference.status' }, { name: 'value', valueCode: 'entered-in-error' }] }] };
  t.equal((await fhir(app, 'PATCH', `DocumentReference/${second}`, withdraw, as(other))).statusCode, 404, 'another system cannot touch it');
  const withdrawn = await fhir(app, 'PATCH', `DocumentReference/${second}`, withdraw, as(lab));
  t.equal(withdrawn.statusCode, 200);
  const statuses = json<Bundle>(await fhir(app, 'GET', `DocumentReference?patient=Patient/p-ins&status=current,superseded,entered-in-error&_sort=_lastUpdated`, undefined, as(lab)));
  t.same(statuses.entry?.map((e) => [(e.resource as DocumentReference).id, (e.resource as DocumentReference).status]), [[first, 'superseded'], [second, 'entered-in-error']]);
  t.equal(BASE, 'http://carnet.test/fhir');
});

t.test('knowing a patient by INS files and finds documents, but does not open the patient\'s record', async (t) => {
  t.equal((await fhir(app, 'GET', 'Patient/p-ins', undefined, as(lab))).statusCode, 404, 'the Patient is not readable');
  const byIns = json<Bundle>(await fhir(app, 'GET', `Patient?identifier=${encodeURIComponent(`${INS_SYSTEM}|${INS}`)}`, undefined, as(lab)));
  t.equal(byIns.entry?.length ?? 0, 0, 'nor found by a Patient search');
  const byName = json<Bundle>(await fhir(app, 'GET', 'DocumentReference?patient.name=Durand', undefined, as(lab)));
  t.equal(byName.entry?.length ?? 0, 0, 'a chain on anything but the identifier gets the read restriction');
  const byInsChain = json<Bundle>(await fhir(app, 'GET', `DocumentReference?patient.identifier=${encodeURIComponent(`${INS_SYSTEM}|${INS}`)}`, undefined, as(other)));
  t.equal(byInsChain.entry?.length ?? 0, 0, 'the identity chain finds only documents the caller may see');
});

t.test('only its author corrects a document: the patient\'s GP may read it, not mark it entered-in-error', async (t) => {
  await fhir(app, 'PUT', 'Patient/p-gp', { resourceType: 'Patient', id: 'p-gp', generalPractitioner: [{ reference: 'Practitioner/gp' }] });
  await fhir(app, 'PUT', 'DocumentReference/by-author', { resourceType: 'DocumentReference', id: 'by-author', status: 'current', subject: { reference: 'Patient/p-gp' }, author: [{ reference: 'Practitioner/author' }], type: { coding: [{ system: 'http://loinc.org', code: '11488-4' }] }, content: [{ attachment: { url: 'Binary/x' } }] });
  const withdraw = { resourceType: 'Parameters', parameter: [{ name: 'operation', part: [{ name: 'type', valueCode: 'replace' }, { name: 'path', valueString: 'DocumentReference.status' }, { name: 'value', valueCode: 'entered-in-error' }] }] };
  const gp = await server.token({ kind: 'practitioner', practitioner: 'gp', profession: '10' });
  t.equal((await fhir(app, 'GET', 'DocumentReference/by-author', undefined, as(gp))).statusCode, 200, 'the GP reads it');
  t.equal((await fhir(app, 'PATCH', 'DocumentReference/by-author', withdraw, as(gp))).statusCode, 403, 'but may not change it');
  const author = await server.token({ kind: 'practitioner', practitioner: 'author', profession: '10' });
  t.equal((await fhir(app, 'PATCH', 'DocumentReference/by-author', withdraw, as(author))).statusCode, 200, 'its author marks it entered-in-error');
});
