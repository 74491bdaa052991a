#!/usr/bin/env node
// The realistic mix (issue 18, item 2), on a store `npm run seed` filled: many professionals, each
// with their own token, reading and searching their own patients, some refused, some emergency
// accesses; searches by patient+type, patient+date, the INS chain (ITI-67), _revinclude, unpinned;
// ITI-65 pushes by several vendor systems; patients reading their access log. All kinds run at
// once, for --duration seconds, with --connections clients; per kind: req/s, p50, p99 (ms).
// Writes docs/perf/mix-<documents>-<processes>p.json and the SVG charts (scripts/bench/charts.mjs).
//
//   npm run build && npm run -s seed -- --patients 10000 --documents 100000   (CARNET_DATA_DIR=<dir>)
//   node scripts/bench/mix.mjs --data-dir <dir> --documents 100000 [--processes 2] [--duration 30]
//
// Without --data-dir, it seeds a temporary store itself (--patients, --documents, --seed).

import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { PROJECT, authorizationFor, cleanup, requireBuild, startServer } from './server.mjs';
import { provideBundle } from './mhd-bundle.mjs';
import { writeCharts } from './charts.mjs';

const { values: opts } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    patients: { type: 'string', default: '1000' },
    documents: { type: 'string', default: '10000' },
    seed: { type: 'string', default: '1' },
    duration: { type: 'string', default: '20' },
    connections: { type: 'string', default: '16' },
    processes: { type: 'string', default: '1' },
    professionals: { type: 'string', default: '40' },
    out: { type: 'string', default: path.join(PROJECT, 'docs/perf') },
  },
});
requireBuild();
const dist = (file) => import(path.join(PROJECT, 'dist', file));
const { professional, patientId, documentId, VENDORS, shapeOf, INS_SYSTEM, ENROLMENT_CLIENT } = await dist('seed/world.js');

const documents = Number(opts.documents);
const patients = Number(opts.patients);
const processes = Number(opts.processes);
let dataDir = opts['data-dir'];
if (!dataDir) {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-mix-'));
  process.on('exit', () => fs.rmSync(dataDir, { recursive: true, force: true }));
  console.log(`seeding ${patients} patients, ${documents} documents in ${dataDir}`);
  execFileSync(process.execPath, [path.join(PROJECT, 'dist/cli/seed.js'), '--patients', String(patients), '--documents', String(documents), '--seed', opts.seed], { env: { ...process.env, CARNET_DATA_DIR: dataDir }, stdio: ['ignore', 'inherit', 'inherit'] });
}

const started = performance.now();
const server = await startServer({ CARNET_WORKERS: String(processes), LOG_LEVEL: 'warn' }, dataDir);
const startupMs = Math.round(performance.now() - started);
const base = `${server.origin}/fhir`;
const shape = shapeOf({ patients, documents });
const pros = Array.from({ length: shape.practitioners }, (_, i) => professional(i));
const gps = pros.filter((p) => p.gp);
// The patients of the mix: the heavy record and a spread of others, with their GP (the world's rule: patient i has gps[i % gps], none when i % 10 = 9).
const sample = Array.from({ length: Math.min(patients, 400) }, (_, k) => Math.floor((k * patients) / Math.min(patients, 400))).filter((i) => i % 10 !== 9);
const gpOf = (i) => gps[i % gps.length];

const tokenCache = new Map();
async function auth(claims) {
  const key = JSON.stringify(claims);
  if (!tokenCache.has(key)) tokenCache.set(key, await authorizationFor(server, { ...claims, scope: claims.scope ?? (claims.kind === 'patient' ? 'patient/*.cruds' : claims.kind === 'system' ? 'system/*.cruds' : 'user/*.cruds') }));
  return tokenCache.get(key);
}
const asPro = (p, purpose) => auth({ kind: 'practitioner', fhirUser: `Practitioner/${p.id}`, profession: p.profession, rpps: p.rpps, ...(purpose ? { purposeOfUse: purpose } : {}) });
// One token per professional (up to --professionals), minted before the run.
for (const i of sample.slice(0, Number(opts.professionals))) await asPro(gpOf(i));

// The INS of each sampled patient, read once by the system that enrolled them (a system reads what it wrote).
const enrolment = await auth({ kind: 'system', clientId: ENROLMENT_CLIENT });
const ins = new Map();
for (const i of sample.slice(0, 100)) {
  const res = await fetch(`${base}/Patient/${patientId(i)}`, { headers: enrolment });
  if (res.ok) ins.set(i, (await res.json()).identifier?.[0]?.value);
}
const pick = (list) => list[Math.floor(Math.random() * list.length)];
const withIns = [...ins.keys()];
const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), crypto.randomBytes(2048)]);
const bundleText = provideBundle(pdf, '__INS__');
let uid = Date.now();

/** The kinds of the mix: weight, and the request (path, headers, body) of one. */
const KINDS = {
  'read-document': { weight: 20, async request() { const i = pick(sample); return { path: `DocumentReference/${documentId(Math.floor(Math.random() * Math.min(documents, 2000)))}`, headers: await asPro(gpOf(0)) }; } },
  'read-patient': { weight: 10, async request() { const i = pick(sample); return { path: `Patient/${patientId(i)}`, headers: await asPro(gpOf(i)) }; } },
  'find-heavy (ITI-67)': { weight: 10, async request() { return { path: `DocumentReference?patient=${patientId(0)}&status=current&_count=10`, headers: await asPro(gpOf(0)) }; } },
  'find-type': { weight: 8, async request() { const i = pick(sample); return { path: `DocumentReference?patient=${patientId(i)}&type=http://loinc.org|11502-2&_count=10`, headers: await asPro(gpOf(i)) }; } },
  'find-date': { weight: 8, async request() { const i = pick(sample); return { path: `DocumentReference?patient=${patientId(i)}&date=ge2024-06-01&_count=10`, headers: await asPro(gpOf(i)) }; } },
  'find-ins-chain': { weight: 8, async request() { const i = pick(withIns); return { path: `DocumentReference?patient.identifier=${INS_SYSTEM}|${ins.get(i)}&status=current&_count=10`, headers: await asPro(gpOf(i)) }; } },
  revinclude: { weight: 4, async request() { const i = pick(sample); return { path: `Patient?_id=${patientId(i)}&_revinclude=DocumentReference:subject&_count=1`, headers: await asPro(gpOf(i)) }; } },
  unpinned: { weight: 3, async request() { const i = pick(sample); return { path: 'DocumentReference?type=http://loinc.org|57833-6&_count=10', headers: await asPro(gpOf(i)) }; } },
  'total-accurate': { weight: 2, async request() { return { path: `DocumentReference?patient=${patientId(0)}&_count=10&_total=accurate`, headers: await asPro(gpOf(0)) }; } },
  'total-none': { weight: 2, async request() { return { path: `DocumentReference?patient=${patientId(0)}&_count=10&_total=none`, headers: await asPro(gpOf(0)) }; } },
  refused: { weight: 5, async request() { const i = pick(sample); return { path: `Patient/${patientId(i)}`, headers: await asPro(pros[(gps.indexOf(gpOf(i)) * 2 + 3) % pros.length]), expect: [200, 404] }; } },
  emergency: { weight: 2, async request() { const i = pick(sample); return { path: `Patient/${patientId(i)}`, headers: await asPro(pros[(i * 13 + 3) % pros.length], 'ETREAT'), expect: [200, 404] }; } },
  'push (ITI-65)': {
    weight: 4,
    async request() {
      const i = pick(withIns);
      const vendor = pick(VENDORS);
      return { path: '', method: 'POST', body: bundleText.replaceAll('__INS__', ins.get(i)).replaceAll('__UID__', String(++uid)), headers: { ...(await auth({ kind: 'system', clientId: vendor.clientId, organization: vendor.organizationId })), 'content-type': 'application/fhir+json' } };
    },
  },
  'patient-log': { weight: 4, async request() { const i = pick(sample); return { path: `AuditEvent?patient=${patientId(i)}&_sort=-date&_count=20`, headers: await auth({ kind: 'patient', fhirUser: `Patient/${patientId(i)}`, patient: patientId(i) }) }; } },
};
const weighted = Object.entries(KINDS).flatMap(([name, kind]) => Array(kind.weight).fill(name));

const latencies = Object.fromEntries(Object.keys(KINDS).map((k) => [k, []]));
const errors = Object.fromEntries(Object.keys(KINDS).map((k) => [k, 0]));
const duration = Number(opts.duration) * 1000;
const end = performance.now() + duration;
async function client() {
  while (performance.now() < end) {
    const name = pick(weighted);
    const { path: p, method = 'GET', body, headers, expect = [200] } = await KINDS[name].request();
    const t0 = performance.now();
    const res = await fetch(`${base}/${p}`, { method, headers: { accept: 'application/fhir+json', ...headers }, ...(body ? { body } : {}) });
    await res.arrayBuffer();
    latencies[name].push(performance.now() - t0);
    if (!expect.includes(res.status)) errors[name]++;
  }
}
console.log(`mix: ${documents} documents, ${processes} process(es), ${opts.connections} clients, ${opts.duration} s (start-up ${startupMs} ms)`);
await Promise.all(Array.from({ length: Number(opts.connections) }, client));
await server.stop();

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null);
const kinds = Object.entries(latencies).map(([kind, list]) => {
  const sorted = [...list].sort((a, b) => a - b);
  return { kind, requests: list.length, rps: Math.round((list.length / duration) * 1000 * 10) / 10, p50: round(quantile(sorted, 0.5)), p99: round(quantile(sorted, 0.99)), unexpected: errors[kind] };
});
function round(v) {
  return v === null ? null : Math.round(v * 100) / 100;
}
const result = { date: new Date().toISOString(), documents, patients, processes, connections: Number(opts.connections), durationS: duration / 1000, startupMs, load: os.loadavg()[0], kinds };
console.table(kinds);
fs.mkdirSync(opts.out, { recursive: true });
const file = path.join(opts.out, `mix-${documents}-${processes}p.json`);
fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(`wrote ${path.relative(PROJECT, file)}`);
for (const svg of await writeCharts(opts.out)) console.log(`wrote ${path.relative(PROJECT, svg)}`);
cleanup();
