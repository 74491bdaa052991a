// Bearer tokens: every rejection path answers 401 with WWW-Authenticate and an OperationOutcome,
// claims become an Actor, verified Actors are cached per token, remote issuers rotate keys.
import http from 'node:http';
import { Writable } from 'node:stream';
import t from 'tap';
const tap = t;
import { SignJWT, type JWTPayload } from 'jose';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { generateSigningKey, type SigningKey } from '../../src/auth/keys.js';
import { TokenVerifier, actorFromClaims } from '../../src/auth/verify.js';
import { CARNET_CLAIMS } from '../../src/auth/claims.js';
import { loadIssuers } from '../../src/auth/issuers.js';
import { BASE, fhir, json, mintFor, TEST_ISSUER, testServer } from '../helpers.js';
import { errorWith } from '../error-pattern.js';

const logs: string[] = [];
const stream = new Writable({
  write(chunk, _encoding, done) {
    logs.push(String(chunk));
    done();
  },
});
const server = await testServer({ logger: { level: 'info', stream } });
t.teardown(() => server.close());
const { app } = server;

/** A token signed with `key` for the test issuer, with `payload` claims and exp/nbf as given. */
async function signed(key: SigningKey, payload: JWTPayload, times: { exp?: number; nbf?: number } = {}, kid = key.kid): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ [CARNET_CLAIMS.kind]: 'system', client_id: 'c1', scope: 'system/*.cruds', ...payload })
    .setProtectedHeader({ alg: 'ES256', kid })
    .setIssuer(TEST_ISSUER)
    .setAudience(BASE)
    .setSubject('c1')
    .setIssuedAt()
    .setExpirationTime(times.exp ?? now + 600)
    .setNotBefore(times.nbf ?? now - 5)
    .sign(key.privateKey);
}

async function refused(t: { equal: typeof tap.equal; match: typeof tap.match }, authorization: string | undefined, reason: RegExp) {
  const res = await app.inject({ method: 'GET', url: '/fhir/Patient', headers: authorization === undefined ? {} : { authorization } });
  t.equal(res.statusCode, 401);
  t.match(res.headers['www-authenticate'], /^Bearer realm="carnet", error="invalid_token"/);
  const outcome = json<OperationOutcome>(res);
  t.match(outcome, { resourceType: 'OperationOutcome', issue: [{ code: 'login', diagnostics: reason }] });
}

t.test('a request without a token is 401', async (t) => refused(t, undefined, /Authorization: Bearer/));
t.test('a token that is not a JWT is 401', async (t) => refused(t, 'Bearer not-a-jwt', /not "Bearer" followed by a JWT/));
t.test('a Basic header is 401', async (t) => refused(t, 'Basic dXNlcjpwYXNz', /Bearer/));
t.test('a garbled JWT is 401', async (t) => refused(t, 'Bearer aaa.bbb.ccc', /well-formed/));

t.test('a token signed by a key the issuer never published is 401', async (t) => {
  const token = await signed(await generateSigningKey(), {});
  await refused(t, `Bearer ${token}`, /no key of the issuer matches|signature/);
});

t.test('expired, not yet valid, wrong audience, bad signature and unknown issuer each give their reason', async (t) => {
  const key = await generateSigningKey();
  const verifier = new TokenVerifier([{ issuer: TEST_ISSUER, jwks: { keys: [key.publicJwk] } }], () => BASE);
  const now = Math.floor(Date.now() / 1000);
  const cases: [string, Promise<string>, RegExp][] = [
    ['expired', signed(key, {}, { exp: now - 60 }), /expired/],
    ['not yet valid', signed(key, {}, { nbf: now + 600 }), /not valid yet/],
    ['wrong audience', new SignJWT({ [CARNET_CLAIMS.kind]: 'system', client_id: 'c' }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(TEST_ISSUER).setAudience('https://elsewhere/fhir').setExpirationTime(now + 60).sign(key.privateKey), /aud/],
    ['bad signature', signed(await generateSigningKey(), {}, {}, key.kid), /signature/],
    ['unknown issuer', new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer('https://nobody').setAudience(BASE).setExpirationTime(now + 60).sign(key.privateKey), /issuer is not trusted/],
    ['no exp', new SignJWT({ [CARNET_CLAIMS.kind]: 'system', client_id: 'c' }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(TEST_ISSUER).setAudience(BASE).sign(key.privateKey), /exp/],
    ['no actor kind', signed(key, { [CARNET_CLAIMS.kind]: 'wizard' }), /actor kind/],
  ];
  for (const [name, token, reason] of cases) {
    await t.rejects(verifier.actorOf(`Bearer ${await token}`), errorWith({ status: 401, reason }), name);
  }
});

t.test('the refusal reason is logged, the token never is', async (t) => {
  logs.length = 0;
  const token = await signed(await generateSigningKey(), {});
  await app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${token}` } });
  const text = logs.join('');
  t.match(text, /"msg":"token refused"/);
  t.match(text, /"reason":"[^"]+"/);
  t.notOk(text.includes(token), 'the token is not in the logs');
  t.notOk(text.includes(token.split('.')[1]), 'nor its payload');
});

t.test('metadata and SMART discovery need no token', async (t) => {
  t.equal((await app.inject({ method: 'GET', url: '/fhir/metadata' })).statusCode, 200);
  t.not((await app.inject({ method: 'GET', url: '/fhir/.well-known/smart-configuration' })).statusCode, 401);
  t.equal((await app.inject({ method: 'POST', url: '/fhir/metadata' })).statusCode, 401, 'only GET is public');
});

t.test('claims become an Actor of each kind', async (t) => {
  const c = CARNET_CLAIMS;
  const base = { iss: 'i', sub: 's', scope: 'user/*.rs openid fhirUser' };
  t.match(actorFromClaims({ ...base, [c.fhirUser]: 'Patient/p1' }, c), { kind: 'patient', patientId: 'p1', grants: [{ context: 'user', type: '*' }] });
  t.match(actorFromClaims({ ...base, [c.kind]: 'representative', [c.fhirUser]: 'RelatedPerson/r1', [c.patients]: ['Patient/m1', 'm2'] }, c), { kind: 'representative', relatedPersonId: 'r1', patientIds: ['m1', 'm2'] });
  t.match(
    actorFromClaims({ ...base, [c.fhirUser]: 'https://x/fhir/Practitioner/d1', [c.profession]: '10', [c.specialty]: 'SM26', [c.rpps]: '10003', [c.organization]: 'Organization/o1', [c.purposeOfUse]: 'ETREAT' }, c),
    { kind: 'practitioner', practitionerId: 'd1', profession: '10', specialty: 'SM26', rpps: '10003', organizationId: 'o1', purposeOfUse: 'ETREAT' },
  );
  t.match(actorFromClaims({ ...base, [c.fhirUser]: 'Practitioner/d2', [c.profession]: '21' }, c), { purposeOfUse: 'TREAT' }, 'TREAT by default');
  t.match(actorFromClaims({ ...base, [c.kind]: 'system', [c.clientId]: 'lab-1', [c.organization]: 'o2' }, c), { kind: 'system', clientId: 'lab-1', organizationId: 'o2' });
  t.match(actorFromClaims({ ...base, [c.kind]: 'organisation', [c.role]: 'complementary-insurer', [c.organization]: 'mutuelle' }, c), { kind: 'organisation', role: 'complementary-insurer' });
  t.throws(() => actorFromClaims({ ...base, [c.fhirUser]: 'Practitioner/d3' }, c), errorWith({ status: 401, reason: /profession/ }), 'a practitioner needs a profession');
  t.throws(() => actorFromClaims({ ...base, [c.fhirUser]: 'Practitioner/d3', [c.profession]: '10', [c.purposeOfUse]: 'FUN' }, c), errorWith({ reason: /TREAT or ETREAT/ }));
  t.throws(() => actorFromClaims({ ...base, [c.kind]: 'organisation', [c.role]: 'hacker', [c.organization]: 'x' }, c), errorWith({ reason: /org_role/ }));
  t.throws(() => actorFromClaims({ ...base, [c.kind]: 'representative', [c.fhirUser]: 'RelatedPerson/r1' }, c), errorWith({ reason: /patients/ }));
});

t.test('an issuer may name its claims differently and fix the actor kind', async (t) => {
  const actor = actorFromClaims({ iss: 'psc', sub: 'x', ps_id: 'Practitioner/d9', ps_profession: '28' }, { ...CARNET_CLAIMS, fhirUser: 'ps_id', profession: 'ps_profession' }, 'practitioner');
  t.match(actor, { kind: 'practitioner', practitionerId: 'd9', profession: '28' });
});

t.test('a verified token is cached until it expires, per token', async (t) => {
  const key = await generateSigningKey();
  const a = await mintFor(key, TEST_ISSUER, BASE, { kind: 'patient', patient: 'pa' });
  const b = await mintFor(key, TEST_ISSUER, BASE, { kind: 'patient', patient: 'pb' });
  // The verifier's clock starts after the tokens' nbf (the second they were minted): read before
  // them, it could still be in the previous second, and the tokens "not valid yet".
  let now = Date.now();
  const verifier = new TokenVerifier([{ issuer: TEST_ISSUER, jwks: { keys: [key.publicJwk] } }], () => BASE, () => now);
  t.match(await verifier.actorOf(`Bearer ${a}`), { patientId: 'pa' });
  t.match(await verifier.actorOf(`Bearer ${b}`), { patientId: 'pb' }, 'a different token never gets another\'s Actor');
  t.equal(verifier.cached, 2);
  // Withdraw the key: cached tokens still pass (no verification), a new one does not.
  verifier.trust({ issuer: TEST_ISSUER, jwks: { keys: [] } });
  t.match(await verifier.actorOf(`Bearer ${a}`), { patientId: 'pa' }, 'served from the cache');
  const c = await mintFor(key, TEST_ISSUER, BASE, { kind: 'patient', patient: 'pc' });
  await t.rejects(verifier.actorOf(`Bearer ${c}`), errorWith({ status: 401 }));
  now += 2 * 3600 * 1000; // past the tokens' expiry: the cache no longer answers
  await t.rejects(verifier.actorOf(`Bearer ${a}`), errorWith({ status: 401 }));
});

t.test('a remote issuer\'s key rotation is followed (JWKS served locally)', async (t) => {
  const k1 = await generateSigningKey();
  const k2 = await generateSigningKey();
  let served = [k1.publicJwk];
  let fetches = 0;
  const jwksServer = http.createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: served }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));
  const { port } = jwksServer.address() as { port: number };
  const issuer = 'https://idp.example';
  const verifier = new TokenVerifier([{ issuer, jwksUri: `http://127.0.0.1:${port}/jwks`, jwksCooldownMs: 0 }], () => BASE);
  const before = await mintFor(k1, issuer, BASE, { kind: 'patient', patient: 'r1' });
  t.match(await verifier.actorOf(`Bearer ${before}`), { patientId: 'r1' });
  t.equal(fetches, 1);
  served = [k2.publicJwk]; // the issuer rotates: k1 withdrawn, k2 published
  const after = await mintFor(k2, issuer, BASE, { kind: 'patient', patient: 'r2' });
  t.match(await verifier.actorOf(`Bearer ${after}`), { patientId: 'r2' }, 'the unknown kid makes the JWKS be fetched again');
  t.ok(fetches >= 2);
  const stale = await mintFor(k1, issuer, BASE, { kind: 'patient', patient: 'r3' });
  await t.rejects(verifier.actorOf(`Bearer ${stale}`), errorWith({ status: 401, reason: /kid/ }), 'a new token with the withdrawn key is refused');
});

t.test('the issuers file is checked at start-up', async (t) => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'issuers-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true }));
  const file = path.join(dir, 'issuers.json');
  fs.writeFileSync(file, JSON.stringify([{ issuer: 'https://psc.example', jwksUri: 'https://psc.example/jwks', kind: 'practitioner', claims: { profession: 'ps_profession' } }]));
  t.match(loadIssuers(file), [{ issuer: 'https://psc.example', kind: 'practitioner' }]);
  fs.writeFileSync(file, JSON.stringify([{ issuer: 'x' }]));
  t.throws(() => loadIssuers(file), /exactly one of "jwksUri" or "jwks"/);
  fs.writeFileSync(file, '{');
  t.throws(() => loadIssuers(file), /CARNET_ISSUERS/);
  t.same(loadIssuers(undefined), []);
});

t.test('a valid token reaches the API and its actor is logged by id, not content', async (t) => {
  logs.length = 0;
  const token = await server.token({ kind: 'practitioner', practitioner: 'dr-1', profession: '10' });
  const res = await fhir(app, 'GET', 'Patient', undefined, { authorization: `Bearer ${token}` });
  t.equal(res.statusCode, 200);
  t.match(logs.join(''), /"actor":"practitioner".*"profession":"10"/);
});
