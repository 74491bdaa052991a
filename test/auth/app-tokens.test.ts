// auth/app-tokens: which Actor a request of an app's token runs as (plain values; the grant is a function).
import t from 'tap';
import { admitAppToken, type AppGate } from '../../src/auth/app-tokens.js';
import type { Actor } from '../../src/auth/actor.js';
import { formatGrant, parseScopes } from '../../src/auth/scopes.js';
import type { ClientRecord, ClientRegistry } from '../../src/store/port.js';
import { TokenRejected, TokenVerifier } from '../../src/auth/verify.js';
import { generateSigningKey } from '../../src/auth/keys.js';
import { mintToken } from '../../src/auth/claims.js';

const app: ClientRecord = { id: 'app-1', name: 'A', kind: 'patient-app', jwks: { keys: [] }, scopes: 'patient/Observation.rs user/Patient.r openid', certified: true, created: '' };
const registry = (clients: ClientRecord[]): ClientRegistry => ({
  register: async () => undefined,
  get: async (id) => clients.find((c) => c.id === id),
  list: async () => clients,
  consumeAssertion: async () => true,
});
const gate = (granted: string[], clients = [app]): AppGate => ({ clients: registry(clients), granted: async (patientId, clientId) => granted.includes(`${patientId}:${clientId}`) });
const patient = (scope: string, clientId?: string): Actor => ({ kind: 'patient', patientId: 'p1', grants: parseScopes(scope), issuer: 'i', subject: 's', ...(clientId ? { clientId } : {}) });

t.test('tokens without a client, and other kinds, are answered unchanged', async (t) => {
  const own = patient('patient/*.cruds');
  t.equal(await admitAppToken(own, gate([])), own);
  const system: Actor = { kind: 'system', clientId: 'lab', grants: [], issuer: 'i', subject: 'lab' };
  t.equal(await admitAppToken(system, gate([])), system);
});

t.test('a granted app\'s token holds the intersection of its scopes with the registered ones', async (t) => {
  const admitted = await admitAppToken(patient('patient/*.cruds user/*.rs', 'app-1'), gate(['p1:app-1']));
  t.same(admitted.grants.map(formatGrant), ['patient/Observation.rs', 'user/Patient.r']);
});

t.test('not granted, or not a certified patient app: TokenRejected', async (t) => {
  await t.rejects(admitAppToken(patient('patient/*.rs', 'app-1'), gate([])), /has not granted this app/);
  t.equal(await admitAppToken(patient('patient/*.rs', 'app-1'), gate([])).catch((e: unknown) => e instanceof TokenRejected && e.reason), 'the patient has not granted this app access to their record, or has revoked it', 'a TokenRejected (401)');
  await t.rejects(admitAppToken(patient('patient/*.rs', 'app-1'), gate(['p1:app-1'], [{ ...app, certified: false }])), /not a certified patient app/);
  await t.rejects(admitAppToken(patient('patient/*.rs', 'app-1'), gate(['p1:app-1'], [{ ...app, kind: 'practitioner-app' }])), /not a certified patient app/);
  await t.rejects(admitAppToken(patient('patient/*.rs', 'nope'), gate(['p1:nope'])), /not a certified patient app/);
});

t.test('a representative\'s app token keeps only the patients who granted the app', async (t) => {
  const rep: Actor = { kind: 'representative', relatedPersonId: 'rp', patientIds: ['c1', 'c2'], grants: parseScopes('patient/*.rs'), issuer: 'i', subject: 's', clientId: 'app-1' };
  const admitted = await admitAppToken(rep, gate(['c2:app-1']));
  t.same(admitted.kind === 'representative' && admitted.patientIds, ['c2']);
  await t.rejects(admitAppToken(rep, gate([])), /no patient this token acts for/);
});

t.test('the client of a token: client_id, else azp; an issuer\'s first-party clients are the patient\'s own', async (t) => {
  const key = await generateSigningKey();
  const base = 'http://carnet.test/fhir';
  const verifier = new TokenVerifier([{ issuer: 'urn:idp', jwks: { keys: [key.publicJwk] }, firstPartyClients: ['portal'] }], () => base);
  const actorOf = async (claims: Record<string, unknown>) =>
    verifier.actorOf(`Bearer ${await mintToken(key, { issuer: 'urn:idp', audience: base, subject: 's', ttl: 60, claims: { fhirUser: 'Patient/p1', scope: 'patient/*.rs', ...claims } })}`);
  t.equal((await actorOf({ azp: 'app-1' })).clientId, 'app-1', 'azp');
  t.equal((await actorOf({ client_id: 'app-2', azp: 'app-1' })).clientId, 'app-2', 'client_id first');
  t.equal((await actorOf({ azp: 'portal' })).clientId, undefined, 'the portal itself: no app');
});
