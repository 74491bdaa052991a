// The app catalogue through the real server: what GET /apps shows users, the patient's grant of an
// app (a Consent naming it), a patient-app token working only while that grant exists and only
// within the app's registered scopes, revocation taking effect at the next request although the
// token's Actor is cached, and the grant and revocation in the patient's access log.

import { randomUUID } from 'node:crypto';
import t, { type Test } from 'tap';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { AuditEvent, Bundle, Consent, OperationOutcome } from '@medplum/fhirtypes';
import { fhir, json, testServer, type TestActor } from '../helpers.js';
import { registerClient, type NewClient } from '../../src/auth/clients.js';
import { appGrant } from '../policy/fixture.js';

const server = await testServer();
t.teardown(() => server.close());
const { app } = server;

async function publicJwk(): Promise<JWK> {
  const { publicKey } = await generateKeyPair('ES384', { extractable: true });
  return { ...(await exportJWK(publicKey)), kid: randomUUID(), alg: 'ES384' };
}

async function register(change: Partial<NewClient> = {}) {
  return registerClient(server.store.clients, {
    name: 'Tensio',
    kind: 'patient-app',
    jwks: { keys: [await publicJwk()] },
    scopes: 'patient/Observation.rs patient/Patient.r openid fhirUser offline_access',
    certified: true,
    editor: 'Tensio SAS',
    description: 'Blood pressure diary',
    certifiedOn: '2026-10-01',
    ...change,
  });
}

const p1: TestActor = { kind: 'patient', patient: 'cat-p1' };
const p2: TestActor = { kind: 'patient', patient: 'cat-p2' };
const auth = (token: string) => ({ authorization: `Bearer ${token}` });
/** A token of `actor` issued to the app `clientId`. */
const appToken = (actor: TestActor, clientId: string, scope = 'patient/*.cruds openid', claim = 'client_id') => server.token(actor, scope, { [claim]: clientId });
const asPatient = async (actor: TestActor) => auth(await server.token(actor));

for (const id of ['cat-p1', 'cat-p2']) {
  const created = await fhir(app, 'PUT', `Patient/${id}`, { resourceType: 'Patient', id, name: [{ family: 'Catalogue' }] });
  if (created.statusCode !== 201) throw new Error(`Patient/${id}: ${created.body}`);
}
const bp = await fhir(app, 'POST', 'Observation', {
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }] },
  subject: { reference: 'Patient/cat-p1' },
});
if (bp.statusCode !== 201) throw new Error(bp.body);
const observationId = json(bp).id as string;

async function grant(actor: TestActor, patientId: string, clientId: string): Promise<string> {
  const res = await fhir(app, 'POST', 'Consent', { ...appGrant('ignored', patientId, clientId), id: undefined }, await asPatient(actor));
  if (res.statusCode !== 201) throw new Error(`grant: ${res.statusCode} ${res.body}`);
  return json(res).id as string;
}

function refusedToken(tt: Test, res: { statusCode: number; headers: Record<string, unknown>; body: string }, reason: RegExp): void {
  tt.equal(res.statusCode, 401, 'refused: 401');
  tt.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
  const outcome = JSON.parse(res.body) as OperationOutcome;
  tt.equal(outcome.resourceType, 'OperationOutcome');
  tt.equal(outcome.issue?.[0]?.code, 'login');
  tt.match(outcome.issue?.[0]?.diagnostics, reason);
}

t.test('GET /apps shows users the name, editor, description, certification date and the data in plain words', async (tt) => {
  const listed = await register();
  const hidden = await register({ name: 'Not reviewed', certified: false, certifiedOn: undefined });
  const res = await app.inject({ method: 'GET', url: '/apps' });
  tt.equal(res.statusCode, 200, 'public: no token');
  const { apps } = res.json() as { apps: Record<string, unknown>[] };
  tt.notOk(apps.some((a) => a.id === hidden.id), 'an uncertified app is not listed');
  tt.same(apps.find((a) => a.id === listed.id), {
    id: listed.id,
    name: 'Tensio',
    kind: 'patient-app',
    editor: 'Tensio SAS',
    description: 'Blood pressure diary',
    certifiedOn: '2026-10-01',
    scopes: 'patient/Observation.rs patient/Patient.r openid fhirUser offline_access',
    data: ['Reads your measurements and test results', 'Reads your identity and contact details', 'Knows who you are (your identity)', 'Keeps its access while you are not using it, until you revoke it'],
  });
  tt.notOk(res.body.includes('"kty"'), 'never keys');
});

t.test('registration refuses a certified patient app without editor, and bad certification dates', async (tt) => {
  await tt.rejects(register({ editor: undefined }), /needs its editor/);
  await tt.rejects(register({ certifiedOn: '2026-02-30' }), /not a date/);
  await tt.rejects(register({ certifiedOn: '2999-01-01' }), /in the future/);
  await tt.rejects(register({ certified: false }), /certification date is for a certified client/);
  const today = await register({ certifiedOn: undefined });
  tt.equal(today.certifiedOn, new Date().toISOString().slice(0, 10), 'certified without a date: today');
});

t.test('an app token works only while the patient grants the app, within its registered scopes', async (tt) => {
  const client = await register();
  const token = await appToken(p1, client.id);
  refusedToken(tt, await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(token)), /not granted this app/);

  const consentId = await grant(p1, 'cat-p1', client.id);
  const read = await fhir(app, 'GET', `Observation/${observationId}`, undefined, auth(token));
  tt.equal(read.statusCode, 200, 'granted: the app reads what its scopes allow');
  tt.equal((await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(token))).statusCode, 200, 'patient/Patient.r');
  // The token asks patient/*.cruds: the registered scopes are its ceiling.
  const write = await fhir(app, 'POST', 'Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/cat-p1' } }, auth(token));
  tt.equal(write.statusCode, 403, 'no create: the app is registered with patient/Observation.rs');
  tt.match(json<OperationOutcome>(write).issue?.[0]?.diagnostics, /patient\/Observation\.rs/, 'the narrowed scopes are what the token holds');
  tt.equal((await fhir(app, 'GET', 'Condition?patient=cat-p1', undefined, auth(token))).statusCode, 403, 'no Condition scope');
  tt.equal((await fhir(app, 'GET', 'Patient/cat-p2', undefined, auth(token))).statusCode, 404, 'still only the patient\'s own record');

  // Revoked by deleting the Consent: the very same (cached) token is refused at the next request.
  tt.equal((await fhir(app, 'DELETE', `Consent/${consentId}`, undefined, await asPatient(p1))).statusCode, 200);
  refusedToken(tt, await fhir(app, 'GET', `Observation/${observationId}`, undefined, auth(token)), /revoked/);
});

t.test('revoking by status inactive or by a period that ended works the same', async (tt) => {
  const client = await register();
  const token = await appToken(p1, client.id);
  const consentId = await grant(p1, 'cat-p1', client.id);
  tt.equal((await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(token))).statusCode, 200);
  const consent = json<Consent>(await fhir(app, 'GET', `Consent/${consentId}`, undefined, await asPatient(p1)));
  const inactive = await fhir(app, 'PUT', `Consent/${consentId}`, { ...consent, status: 'inactive' }, await asPatient(p1));
  tt.equal(inactive.statusCode, 200);
  tt.equal((await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(token))).statusCode, 401, 'inactive: refused');
  const ended = await fhir(app, 'PUT', `Consent/${consentId}`, { ...consent, provision: { ...consent.provision, period: { end: '2020-01-01' } } }, await asPatient(p1));
  tt.equal(ended.statusCode, 200);
  tt.equal((await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(token))).statusCode, 401, 'a period that ended: refused');
});

t.test('another patient\'s grant opens nothing, and the azp claim names the app too', async (tt) => {
  const client = await register();
  await grant(p2, 'cat-p2', client.id);
  refusedToken(tt, await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(await appToken(p1, client.id))), /not granted/);
  const viaAzp = await appToken(p2, client.id, 'patient/*.rs', 'azp');
  tt.equal((await fhir(app, 'GET', 'Patient/cat-p2', undefined, auth(viaAzp))).statusCode, 200, 'azp: the granted app');
});

t.test('a token issued to a client that is not a certified patient app is refused', async (tt) => {
  const system = await registerClient(server.store.clients, { name: 'Lab', kind: 'system', jwks: { keys: [await publicJwk()] }, scopes: 'system/*.rs', certified: true });
  const uncertified = await register({ certified: false, certifiedOn: undefined });
  for (const clientId of [system.id, uncertified.id, 'not-registered']) {
    refusedToken(tt, await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(await appToken(p1, clientId))), /not a certified patient app/);
  }
});

t.test('a representative\'s app token reaches only the patients who granted the app', async (tt) => {
  const client = await register({ scopes: 'patient/Patient.r' });
  const parent: TestActor = { kind: 'representative', relatedPerson: 'cat-rp', patients: ['cat-p1', 'cat-p2'] };
  const token = await appToken(parent, client.id, 'patient/*.rs');
  refusedToken(tt, await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(token)), /no patient this token acts for/);
  await grant(p2, 'cat-p2', client.id);
  tt.equal((await fhir(app, 'GET', 'Patient/cat-p2', undefined, auth(token))).statusCode, 200, 'the granting patient');
  tt.equal((await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(token))).statusCode, 404, 'not the other');
});

t.test('an app never grants or revokes apps; the engine refuses grant shapes it would not enforce', async (tt) => {
  const client = await register();
  const other = await register({ name: 'Other' });
  const consentId = await grant(p1, 'cat-p1', client.id);
  const token = await appToken(p1, client.id, 'patient/*.cruds');
  // Even an app registered with Consent scopes: the patient decides about apps themselves.
  const broad = await register({ scopes: 'patient/*.cruds' });
  await grant(p1, 'cat-p1', broad.id);
  const broadToken = await appToken(p1, broad.id, 'patient/*.cruds');
  const byApp = await fhir(app, 'POST', 'Consent', { ...appGrant('x', 'cat-p1', other.id), id: undefined }, auth(broadToken));
  tt.equal(byApp.statusCode, 403, 'an app does not grant another app');
  tt.equal((await fhir(app, 'DELETE', `Consent/${consentId}`, undefined, auth(broadToken))).statusCode, 403, 'nor revoke one');
  tt.equal((await fhir(app, 'GET', 'Patient/cat-p1', undefined, auth(token))).statusCode, 200, 'the grant stands');

  const deny = appGrant('x', 'cat-p1', client.id);
  const denied = await fhir(app, 'POST', 'Consent', { ...deny, id: undefined, provision: { ...deny.provision, type: 'deny' } }, await asPatient(p1));
  tt.equal(denied.statusCode, 422, 'a deny naming an app');
  tt.match(denied.body, /revoked by ending that permit/);
  const withData = await fhir(app, 'POST', 'Consent', { ...deny, id: undefined, provision: { ...deny.provision, data: [{ meaning: 'instance', reference: { reference: `Observation/${observationId}` } }] } }, await asPatient(p1));
  tt.equal(withData.statusCode, 422, 'a grant limited to some data');
  const literal = await fhir(app, 'POST', 'Consent', { ...deny, id: undefined, provision: { type: 'permit', actor: [{ ...deny.provision?.actor?.[0], reference: { reference: `Device/${client.id}` } }] } }, await asPatient(p1));
  tt.equal(literal.statusCode, 422, 'an app named by a literal Device reference is not understood');
});

t.test('the grant and the revocation are in the patient\'s access log', async (tt) => {
  const client = await register();
  const consentId = await grant(p1, 'cat-p1', client.id);
  tt.equal((await fhir(app, 'DELETE', `Consent/${consentId}`, undefined, await asPatient(p1))).statusCode, 200);
  const log = json<Bundle<AuditEvent>>(await fhir(app, 'GET', `AuditEvent?entity=Consent/${consentId}&_count=50`, undefined, await asPatient(p1)));
  const actions = (log.entry ?? []).map((e) => e.resource?.action).sort();
  tt.same(actions, ['C', 'D'], 'created (granted) and deleted (revoked), each recorded');
  for (const entry of log.entry ?? []) tt.equal(entry.resource?.outcome, '0', 'success');
});
