// Shared by the benchmark scripts: start the built server as a child process on a temporary data
// directory (PORT=0), mint development tokens for it, and clean up on exit or Ctrl-C; or build apps
// in the bench's own process (to measure inside it), and load the policy benchmark's data.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(PROJECT, 'dist/main.js');
const LISTENING = /^Carnet FHIR R4 API listening on http:\/\/127\.0\.0\.1:(\d+)\/fhir\b/;
const READY_IN = /ready in (\d+) ms/;

/** Exits with a message when the build is missing. */
export function requireBuild() {
  if (!fs.existsSync(MAIN)) {
    console.error(`${path.relative(process.cwd(), MAIN)} is missing: run \`npm run build\` first`);
    process.exit(1);
  }
}

const children = new Set();
const tempDirs = [];

function serverEnv(dataDir, settings) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    // NODE_ENV is dropped too: development tokens (below) are refused when it is production.
    if (!/^(CARNET_|NODE_OPTIONS$|NODE_ENV$|PORT$|HOST$|LOG_LEVEL$)/.test(key)) env[key] = value;
  }
  return { ...env, PORT: '0', HOST: '127.0.0.1', CARNET_DATA_DIR: dataDir, ...settings };
}

/**
 * Spawns the server on a fresh data directory (or `dataDir`, kept afterwards, e.g. one `npm run seed` filled) with extra environment
 * `settings` and Node options `nodeArgs` (--cpu-prof…); resolves when its listening line is read.
 */
export function startServer(settings = {}, options = {}) {
  // A data directory alone (a store `npm run seed` filled), or { nodeArgs, dataDir }.
  let { nodeArgs = [], dataDir = undefined } = typeof options === 'string' ? { dataDir: options } : options;
  if (dataDir === undefined) {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-bench-'));
    tempDirs.push(dataDir);
  }
  const t0 = performance.now();
  const proc = spawn(process.execPath, [...nodeArgs, MAIN], { cwd: PROJECT, env: serverEnv(dataDir, settings), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    children.delete(proc);
    resolve({ code, signal });
  }));
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    let stdout = '';
    const onData = (chunk) => {
      stdout += chunk;
      // Complete lines only; the listening line is not always the first (LOG_LEVEL=info).
      const line = stdout.slice(0, stdout.lastIndexOf('\n') + 1).split('\n').find((l) => LISTENING.test(l));
      if (line === undefined) return;
      const match = LISTENING.exec(line);
      const ready = READY_IN.exec(line);
      const startupMs = performance.now() - t0;
      proc.stdout.off('data', onData);
      proc.stdout.resume(); // request log lines are read and dropped
      const port = Number(match[1]);
      resolve({
        proc,
        exited,
        dataDir,
        startupMs,
        selfReportedMs: ready ? Number(ready[1]) : undefined,
        origin: `http://127.0.0.1:${port}`,
        async stop() {
          proc.kill('SIGTERM');
          const exit = await exited;
          if (exit.code !== 0) console.warn(`warning: server exited with ${JSON.stringify(exit)}\n${stderr}`);
        },
      });
    };
    proc.stdout.setEncoding('utf8').on('data', onData);
    exited.then((exit) => reject(new Error(`server exited ${JSON.stringify(exit)} before listening\n${stderr}`)));
  });
}

/**
 * The Authorization header for `server`: a development token for `claims` (named as in
 * CARNET_CLAIMS; default a system client with every scope),
 * signed with the development issuer's key the server created in its data directory. None for a
 * build without authentication.
 */
export async function authorizationFor(server, claims = { kind: 'system', clientId: 'carnet-bench', scope: 'system/*.cruds' }) {
  const dist = (file) => path.join(PROJECT, 'dist/auth', file);
  if (!fs.existsSync(dist('keys.js'))) return {};
  const { loadOrCreateKey, KEY_NAMES } = await import(pathToFileURL(dist('keys.js')).href);
  const { mintToken, CARNET_CLAIMS: c } = await import(pathToFileURL(dist('claims.js')).href);
  const { DEVELOPMENT_ISSUER } = await import(pathToFileURL(dist('context.js')).href);
  const key = await loadOrCreateKey(server.dataDir, KEY_NAMES.development);
  const token = await mintToken(key, {
    issuer: DEVELOPMENT_ISSUER,
    audience: `${server.origin}/fhir`,
    subject: claims.clientId ?? claims.fhirUser ?? 'carnet-bench',
    ttl: 3600,
    claims: Object.fromEntries(Object.entries(claims).map(([name, value]) => [c[name], value])),
  });
  return { authorization: `Bearer ${token}` };
}

export function cleanup() {
  for (const proc of children) proc.kill('SIGKILL');
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});


const dist = (file) => import(pathToFileURL(path.join(PROJECT, 'dist', file)).href);

/**
 * Apps built in this process on one temporary SQLite store, for benchmarks that measure inside
 * the server's process: one per entry of `variants` (extra buildApp options), each listening on a
 * free port and trusting a bench issuer. Each app is `{ app, base, token(subject, claims) }`,
 * `base.url` its FHIR base, `token` minting a bearer token for it (claims named as in tokens).
 */
export async function inProcessApps(name, variants = [{}]) {
  requireBuild();
  const [{ buildApp }, { SqliteStore }, { generateSigningKey }, { TokenVerifier }, { authBase }, { mintToken }] = await Promise.all(
    ['app.js', 'store/sqlite/index.js', 'auth/keys.js', 'auth/verify.js', 'auth/context.js', 'auth/claims.js'].map(dist),
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `carnet-bench-${name}-`));
  const store = new SqliteStore({ dataDir: dir });
  const issuer = 'urn:carnet:bench';
  const key = await generateSigningKey();
  const apps = [];
  for (const options of variants) {
    const base = { url: '' };
    const verifier = new TokenVerifier([{ issuer, jwks: { keys: [key.publicJwk] } }], () => base.url);
    const auth = { clients: store.clients, signingKey: key, issuerUrl: () => authBase(base.url), tokenEndpoint: () => `${authBase(base.url)}/token`, audience: () => base.url, accessTokenTtl: 300, verifier };
    const app = buildApp({ store, auth, baseUrl: () => base.url, logger: false, ...options });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base.url = `http://127.0.0.1:${app.server.address().port}/fhir`;
    apps.push({ app, base, token: (subject, claims) => mintToken(key, { issuer, audience: base.url, subject, ttl: 3600, claims }) });
  }
  return {
    store,
    apps,
    async close() {
      for (const { app } of apps) await app.close();
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The data of the policy benchmark, written through `app` (one of inProcessApps): patient p1
 * whose GP is dr-gp, `docCount` DocumentReferences of several types by dr-other, and a mask on
 * doc-0. Returns the documents' ids and `put(resource)` to write more.
 */
export async function loadPolicyData({ base, token }, docCount) {
  const { CARNET_CLAIMS: c } = await dist('auth/claims.js');
  const loader = await token('loader', { [c.kind]: 'system', client_id: 'loader', scope: 'system/*.cruds' });
  const put = async (resource) => {
    const res = await fetch(`${base.url}/${resource.resourceType}/${resource.id}`, { method: 'PUT', headers: { authorization: `Bearer ${loader}`, 'content-type': 'application/fhir+json' }, body: JSON.stringify(resource) });
    if (res.status >= 300) throw new Error(`${resource.id}: ${res.status} ${await res.text()}`);
  };
  await put({ resourceType: 'Patient', id: 'p1', generalPractitioner: [{ reference: 'Practitioner/dr-gp' }] });
  const types = ['57833-6', '11488-4', '11502-2', '18748-4', '11490-0'];
  const ids = [];
  for (let i = 0; i < docCount; i++) {
    const id = `doc-${i}`;
    ids.push(id);
    await put({ resourceType: 'DocumentReference', id, status: 'current', type: { coding: [{ system: 'http://loinc.org', code: types[i % types.length] }] }, subject: { reference: 'Patient/p1' }, author: [{ reference: 'Practitioner/dr-other' }], date: new Date(Date.UTC(2025, 0, 1 + (i % 365))).toISOString(), content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${id}` } }] });
  }
  // A patient's choices are theirs to write (docs/consent.md "Who writes what"): the mask is the patient's.
  const patient = await token('p1', { [c.kind]: 'patient', [c.fhirUser]: 'Patient/p1', [c.patient]: 'p1', scope: 'patient/*.cruds' });
  const masked = await fetch(`${base.url}/Consent`, { method: 'POST', headers: { authorization: `Bearer ${patient}`, 'content-type': 'application/fhir+json' }, body: JSON.stringify({ resourceType: 'Consent', status: 'active', scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] }, category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }], patient: { reference: 'Patient/p1' }, provision: { type: 'deny', data: [{ meaning: 'instance', reference: { reference: 'DocumentReference/doc-0' } }] } }) });
  if (masked.status !== 201) throw new Error(`mask: ${masked.status} ${await masked.text()}`);
  return { ids, put };
}



