// Revoking an app takes effect at once in every process: a server started as a child process and
// an app in this test process share one store (one data directory; one MongoDB database when
// MONGODB_URI is set). Each verifies and caches the app's token; the patient revokes the app
// through one, and the other refuses the same token (401, an OperationOutcome) at its next request.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { exportJWK, generateKeyPair } from 'jose';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { buildApp } from '../../src/app.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { openMongoStore } from '../../src/store/mongo/index.js';
import type { Store } from '../../src/store/port.js';
import { generateSigningKey, KEY_NAMES, loadOrCreateKey } from '../../src/auth/keys.js';
import { TokenVerifier } from '../../src/auth/verify.js';
import { authBase, DEVELOPMENT_ISSUER, type AuthContext } from '../../src/auth/context.js';
import { registerClient } from '../../src/auth/clients.js';
import { developmentTokenFor, mintFor } from '../helpers.js';
import { childStore, startServer } from '../child-server.js';
import { appGrant } from '../policy/fixture.js';

t.setTimeout(240_000);
const FHIR_JSON = 'application/fhir+json';
/** The base URL both processes answer as (behind one load balancer): one token serves both. */
const BASE = 'http://carnet.catalogue.test/fhir';

t.test('a revocation through one process refuses the app token on the other at once, and back', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-catalogue-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const child = await startServer(dataDir, { CARNET_BASE_URL: BASE });
  t.teardown(() => child.proc.kill('SIGKILL'));

  // This process: its own store connection, policy cache and verified-token cache.
  const mongoUri = childStore(dataDir).CARNET_STORE;
  const store: Store = mongoUri ? await openMongoStore({ uri: mongoUri }) : new SqliteStore({ dataDir });
  const developmentKey = await loadOrCreateKey(dataDir, KEY_NAMES.development);
  const auth: AuthContext = {
    clients: store.clients,
    signingKey: await generateSigningKey(),
    issuerUrl: () => authBase(BASE),
    tokenEndpoint: () => `${authBase(BASE)}/token`,
    audience: () => BASE,
    accessTokenTtl: 300,
    verifier: new TokenVerifier([{ issuer: DEVELOPMENT_ISSUER, jwks: { keys: [developmentKey.publicJwk] } }], () => BASE),
  };
  const local = buildApp({ store, auth, baseUrl: BASE });
  await local.ready();
  t.teardown(async () => {
    await local.close();
    await store.close();
  });

  type Via = 'local' | 'child';
  const send = async (via: Via, method: string, url: string, token: string, body?: unknown): Promise<{ status: number; body: string }> => {
    const headers: Record<string, string> = { accept: FHIR_JSON, authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': FHIR_JSON } : {}) };
    const payload = body !== undefined ? JSON.stringify(body) : undefined;
    if (via === 'local') {
      const res = await local.inject({ method: method as 'GET', url: `/fhir/${url}`, headers, ...(payload !== undefined ? { payload } : {}) });
      return { status: res.statusCode, body: res.body };
    }
    const res = await fetch(`http://127.0.0.1:${child.port}/fhir/${url}`, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
    return { status: res.status, body: await res.text() };
  };

  const system = await developmentTokenFor(dataDir, BASE);
  const patient = await developmentTokenFor(dataDir, BASE, { kind: 'patient', patient: 'cp-p1' });
  t.equal((await send('child', 'PUT', 'Patient/cp-p1', system, { resourceType: 'Patient', id: 'cp-p1' })).status, 201);

  // The operator registers the app (as `npm run client` would, on the shared store).
  const { publicKey } = await generateKeyPair('ES384', { extractable: true });
  const client = await registerClient(store.clients, {
    name: 'Tensio',
    kind: 'patient-app',
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: randomUUID(), alg: 'ES384' }] },
    scopes: 'patient/Patient.r',
    certified: true,
    editor: 'Tensio SAS',
  });
  const appToken = await mintFor(developmentKey, DEVELOPMENT_ISSUER, BASE, { kind: 'patient', patient: 'cp-p1' }, 'patient/*.rs', { client_id: client.id });
  const grant = { ...appGrant('ignored', 'cp-p1', client.id), id: undefined };

  const granted = await send('child', 'POST', 'Consent', patient, grant);
  t.equal(granted.status, 201, 'granted through the child');
  let consentId = (JSON.parse(granted.body) as { id: string }).id;
  for (const via of ['local', 'child', 'local', 'child'] as const) t.equal((await send(via, 'GET', 'Patient/cp-p1', appToken)).status, 200, `the app reads through ${via} (its Actor now cached there)`);

  const expectRefused = async (via: Via) => {
    const res = await send(via, 'GET', 'Patient/cp-p1', appToken);
    t.equal(res.status, 401, `refused through ${via}`);
    const outcome = JSON.parse(res.body) as OperationOutcome;
    t.equal(outcome.resourceType, 'OperationOutcome');
    t.match(outcome.issue?.[0]?.diagnostics, /revoked/);
  };
  t.equal((await send('local', 'DELETE', `Consent/${consentId}`, patient)).status, 200, 'revoked through this process');
  await expectRefused('child');
  await expectRefused('local');

  // Granted again through this process, revoked through the child: refused here at once.
  const again = await send('local', 'POST', 'Consent', patient, grant);
  t.equal(again.status, 201);
  consentId = (JSON.parse(again.body) as { id: string }).id;
  t.equal((await send('child', 'GET', 'Patient/cp-p1', appToken)).status, 200, 'granted again: the child admits it');
  t.equal((await send('local', 'GET', 'Patient/cp-p1', appToken)).status, 200, 'and so does this process');
  t.equal((await send('child', 'DELETE', `Consent/${consentId}`, patient)).status, 200, 'revoked through the child');
  await expectRefused('local');
});
