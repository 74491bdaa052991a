#!/usr/bin/env node
// Reads and searches per second with 1, 2 and 4 server processes on one machine (CARNET_WORKERS),
// consent and audit on, on realistic data (not a test). Requires a build:
//   npm run build && node scripts/bench/processes.mjs [--workers 1,2,4] [--duration 10] [--connections 20]
//     [--patients 2000] [--professionals 200] [--docs 10]
// The data directory is filled once through the storage port (the embedded engine with its writer
// thread, as served): patients, each with a general practitioner among --professionals, --docs
// documents each of four types written by a lab, and a mask Consent on one document of every
// tenth patient. Then, for each process count, the real server runs on that directory with
// CARNET_WORKERS=N and autocannon sends, with a development token per professional and per patient:
//   - reads: a GP reads a document of one of their own patients (200; masked ones 404);
//   - searches: a GP searches one of their patients' documents of one type (pinned), or every
//     document of one type they may see (unpinned: the consent restriction decides row by row);
//   - mix: 55 % reads, 20 % pinned searches, 10 % unpinned searches, 10 % reads of another GP's
//     patient's document (refused, 404), 5 % a patient reading their access log.
// Each line: process count, scenario, requests/s, p50 and p99 latency, answers that were not 2xx.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { PROJECT, requireBuild, startServer, cleanup } from './server.mjs';

requireBuild();
const { values: opts } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2,4' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '20' },
    patients: { type: 'string', default: '2000' },
    professionals: { type: 'string', default: '200' },
    docs: { type: 'string', default: '10' },
    only: { type: 'string' },
  },
});
const workerCounts = opts.workers.split(',').map(Number);
const duration = Number(opts.duration);
const connections = Number(opts.connections);
const patients = Number(opts.patients);
const professionals = Number(opts.professionals);
const docsPerPatient = Number(opts.docs);

const dist = (file) => import(pathToFileURL(path.join(PROJECT, 'dist', file)).href);
const { SqliteStore } = await dist('store/sqlite/index.js');
const { indexEntries } = await dist('search/extract.js');
const { loadOrCreateKey, KEY_NAMES } = await dist('auth/keys.js');
const { mintToken, CARNET_CLAIMS: c } = await dist('auth/claims.js');
const { DEVELOPMENT_ISSUER } = await dist('auth/context.js');

const LOINC = 'http://loinc.org';
const TYPES = ['11502-2', '11490-0', '18748-4', '57833-6'];
const BASE = 'http://carnet.bench/fhir';
const gpOf = (p) => `gp-${p % professionals}`;
const docId = (p, d) => `doc-${p}-${d}`;

// ---- the data -------------------------------------------------------------------------------
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-bench-processes-'));
process.on('exit', () => fs.rmSync(dataDir, { recursive: true, force: true }));
{
  const t0 = performance.now();
  const store = new SqliteStore({ dataDir });
  const at = new Date().toISOString();
  const op = (resource, creator = 'client:loader') => ({ kind: 'update', resource, index: indexEntries(resource), creator });
  const batch = [];
  const flush = async () => {
    if (batch.length > 0) await store.transact(batch.splice(0), at);
  };
  for (let g = 0; g < professionals; g++) batch.push(op({ resourceType: 'Practitioner', id: `gp-${g}`, name: [{ family: `Médecin ${g}` }] }));
  batch.push(op({ resourceType: 'Organization', id: 'lab', name: 'Laboratoire' }));
  for (let p = 0; p < patients; p++) {
    batch.push(op({ resourceType: 'Patient', id: `p-${p}`, name: [{ family: `Patient ${p}` }], generalPractitioner: [{ reference: `Practitioner/${gpOf(p)}` }] }));
    for (let d = 0; d < docsPerPatient; d++) {
      batch.push(
        op({
          resourceType: 'DocumentReference',
          id: docId(p, d),
          status: 'current',
          type: { coding: [{ system: LOINC, code: TYPES[d % TYPES.length] }] },
          subject: { reference: `Patient/p-${p}` },
          author: [{ reference: 'Organization/lab' }],
          date: new Date(Date.UTC(2025, 0, 1) + (p * docsPerPatient + d) * 60_000).toISOString(),
          content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${docId(p, d)}` } }],
        }),
      );
    }
    if (p % 10 === 0) {
      batch.push(
        op(
          {
            resourceType: 'Consent',
            id: `mask-${p}`,
            status: 'active',
            scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
            category: [{ coding: [{ system: LOINC, code: '59284-0' }] }],
            patient: { reference: `Patient/p-${p}` },
            policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTOUT' }] },
            provision: { type: 'deny', data: [{ meaning: 'instance', reference: { reference: `DocumentReference/${docId(p, 0)}` } }] },
          },
          `patient:p-${p}`,
        ),
      );
    }
    if (batch.length >= 500) await flush();
  }
  await flush();
  await store.close();
  console.log(`data: ${patients} patients, ${professionals} general practitioners, ${patients * docsPerPatient} documents, ${Math.ceil(patients / 10)} masks, loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// ---- tokens: one per professional, one per patient --------------------------------------------
const key = await loadOrCreateKey(dataDir, KEY_NAMES.development);
const mint = (subject, claims) => mintToken(key, { issuer: DEVELOPMENT_ISSUER, audience: BASE, subject, ttl: 3600, claims });
const gpTokens = [];
for (let g = 0; g < professionals; g++) gpTokens.push(`Bearer ${await mint(`gp-${g}`, { [c.kind]: 'practitioner', [c.fhirUser]: `Practitioner/gp-${g}`, [c.profession]: '10', scope: 'user/*.rs' })}`);
const patientTokens = [];
for (let p = 0; p < patients; p++) patientTokens.push(`Bearer ${await mint(`p-${p}`, { [c.kind]: 'patient', [c.fhirUser]: `Patient/p-${p}`, [c.patient]: `p-${p}`, scope: 'patient/*.rs' })}`);

// ---- the requests -----------------------------------------------------------------------------
/** A deterministic stream of numbers (each connection draws from one shared stream). */
let seed = 42;
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const pick = (n) => Math.floor(random() * n);

/** A patient of a random GP, and that GP's token. */
function ownPatient() {
  const p = pick(patients);
  return { p, token: gpTokens[p % professionals] };
}
const kinds = {
  read() {
    const { p, token } = ownPatient();
    return { path: `/fhir/DocumentReference/${docId(p, pick(docsPerPatient))}`, token };
  },
  pinned() {
    const { p, token } = ownPatient();
    return { path: `/fhir/DocumentReference?patient=p-${p}&type=${LOINC}|${TYPES[pick(TYPES.length)]}&_count=10`, token };
  },
  unpinned() {
    return { path: `/fhir/DocumentReference?type=${LOINC}|${TYPES[pick(TYPES.length)]}&_count=10`, token: gpTokens[pick(professionals)] };
  },
  refused() {
    const p = pick(patients);
    return { path: `/fhir/DocumentReference/${docId(p, 1)}`, token: gpTokens[(p + 1) % professionals] };
  },
  accessLog() {
    const p = pick(patients);
    return { path: `/fhir/AuditEvent?patient=p-${p}&_count=10`, token: patientTokens[p] };
  },
};
const scenarios = {
  reads: () => kinds.read(),
  searches: () => (random() < 0.67 ? kinds.pinned() : kinds.unpinned()),
  mix: () => {
    const r = random();
    if (r < 0.55) return kinds.read();
    if (r < 0.75) return kinds.pinned();
    if (r < 0.85) return kinds.unpinned();
    if (r < 0.95) return kinds.refused();
    return kinds.accessLog();
  },
};

async function load(origin, next, seconds = duration) {
  const result = await autocannon({
    url: origin,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'GET',
        setupRequest: (req) => {
          const { path: p, token } = next();
          return { ...req, path: p, headers: { authorization: token, accept: 'application/fhir+json' } };
        },
      },
    ],
  });
  return { rps: result.requests.total / result.duration, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors + result.timeouts };
}

console.log(`machine: ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; ${connections} connections, ${duration} s per run`);
console.log('processes  scenario   requests/s   p50 ms   p99 ms   non-2xx   errors');
const names = Object.keys(scenarios).filter((name) => !opts.only || opts.only.split(',').includes(name));
for (const workers of workerCounts) {
  const server = await startServer({ CARNET_DATA_DIR: dataDir, CARNET_BASE_URL: BASE, CARNET_WORKERS: String(workers), LOG_LEVEL: 'warn' });
  // Warm-up: every process loads its caches (prepared statements, validators).
  await load(server.origin, scenarios.mix, 3).catch(() => undefined);
  for (const name of names) {
    const r = await load(server.origin, scenarios[name]);
    console.log(`${String(workers).padStart(9)}  ${name.padEnd(9)}  ${r.rps.toFixed(0).padStart(11)}  ${String(r.p50).padStart(7)}  ${String(r.p99).padStart(7)}  ${String(r.non2xx).padStart(8)}  ${String(r.errors).padStart(7)}`);
  }
  await server.stop();
}
cleanup();
