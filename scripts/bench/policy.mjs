#!/usr/bin/env node
// What consent checks and audit records cost on the read path (not a test). Requires a build:
//   npm run build && node scripts/bench/policy.mjs [--duration 10] [--connections 10] [--docs 500]
// Two apps are built in this process on ONE SQLite store (the same data): one as served, one with
// the benchmark-only switch that turns the policy and the audit trail off. A practitioner (the
// patient's GP) reads documents and searches them through each, with autocannon; the script prints
// both throughputs and the ratio. Each scenario runs in --slices alternating slices (on, off, off,
// on, ...) of duration/slices seconds, so that the load of a shared machine, which drifts over
// seconds, weighs on both modes alike; with an untimed one-second pause after each slice. After
// each slice, the time the store takes to have every audit record of it searchable (the SQLite
// writer taking in its journal) is added to the slice's duration ("catch-up").

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { inProcessApps, loadPolicyData } from './server.mjs';

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dist = async (file) => import(pathToFileURL(path.join(PROJECT, 'dist', file)).href);
if (!fs.existsSync(path.join(PROJECT, 'dist/app.js'))) {
  console.error('dist/ is missing: run `npm run build` first');
  process.exit(1);
}
const { values: opts } = parseArgs({ options: { duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '10' }, docs: { type: 'string', default: '500' }, only: { type: 'string' }, mode: { type: 'string' }, slices: { type: 'string', default: '4' } } });
const duration = Number(opts.duration);
const connections = Number(opts.connections);
const docCount = Number(opts.docs);
const slices = Math.max(1, Number(opts.slices));

const { CARNET_CLAIMS: c } = await dist('auth/claims.js');
const { store, apps: built, close } = await inProcessApps('policy', [{}, { benchmarkWithoutPolicyAndAudit: true }]);
const apps = built.map((entry, i) => ({ ...entry, name: i === 1 ? 'policy and audit off' : 'policy and audit on (as served)' }));

// The data: one patient whose GP is dr-gp, a permit and a mask, and documents of several types.
const { ids } = await loadPolicyData(apps[0], docCount);

async function run(entry, label, pathOf, seconds) {
  const bearer = await entry.token('dr-gp', { [c.kind]: 'practitioner', [c.fhirUser]: 'Practitioner/dr-gp', [c.profession]: '10', scope: 'user/*.rs' });
  let n = 0;
  const result = await autocannon({
    url: entry.base.url.replace(/\/fhir$/, ''),
    connections,
    duration: seconds,
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: pathOf(n++), headers: { authorization: `Bearer ${bearer}`, accept: 'application/fhir+json' } }) }],
  });
  return { label, name: entry.name, total: result.requests.total, seconds: result.duration, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx };
}

const scenarios = [
  ['read DocumentReference/<id>', (n) => `/fhir/DocumentReference/${ids[1 + (n % (ids.length - 1))]}`],
  ['search DocumentReference?patient=p1&_count=10', () => '/fhir/DocumentReference?patient=p1&_count=10'],
];
const rows = [];
// --only read|search and --mode on|off narrow the runs (for a CPU profile of one of them).
const chosen = scenarios.filter(([label]) => !opts.only || label.startsWith(opts.only));
const modes = apps.filter((entry) => !opts.mode || (opts.mode === 'off') === entry.name.includes('off'));
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
const loadBefore = load();
for (const [label, pathOf] of chosen) {
  const slicesOf = new Map(modes.map((entry) => [entry, []]));
  for (let i = 0; i < slices; i++) {
    const order = i % 2 === 0 ? modes : [...modes].reverse();
    for (const entry of order) {
      const slice = await run(entry, label, pathOf, duration / slices);
      // The audit records a slice journaled and the writer has not yet taken into the database are
      // part of its cost: the time to take them in (what a search of AuditEvents would wait) is
      // added to the slice's duration.
      const t0 = performance.now();
      await store.history({ level: 'type', type: 'AuditEvent' }, { count: 1 });
      const catchUp = (performance.now() - t0) / 1000;
      slice.seconds += catchUp;
      slice.catchUp = catchUp;
      slicesOf.get(entry).push(slice);
      // Untimed pause: background work a slice left behind (the WAL checkpoint of its audit
      // records) finishes before the next slice, and is not charged to the other mode.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  for (const [entry, runs] of slicesOf) {
    const sorted = runs.map((r) => r.p50).sort((a, b) => a - b);
    rows.push({ label, name: entry.name, rps: runs.reduce((a, r) => a + r.total, 0) / runs.reduce((a, r) => a + r.seconds, 0), p50: sorted[Math.floor(sorted.length / 2)], p99: Math.max(...runs.map((r) => r.p99)), non2xx: runs.reduce((a, r) => a + r.non2xx, 0), catchUp: Math.max(...runs.map((r) => r.catchUp)) });
  }
}
console.log(`node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}; ${docCount} documents, ${connections} connections, ${duration} s per mode in ${slices} alternating slices; load average ${loadBefore} before, ${load()} after\n`);
console.log('scenario                                        mode                                req/s  p50  p99  non-2xx  catch-up ms (max)');
for (const r of rows) console.log(`${r.label.padEnd(48)}${r.name.padEnd(36)}${String(Math.round(r.rps)).padStart(6)} ${String(r.p50).padStart(4)} ${String(r.p99).padStart(4)}  ${String(r.non2xx).padStart(7)}  ${(r.catchUp * 1000).toFixed(0).padStart(17)}`);
for (const [label] of chosen) {
  const [on, off] = rows.filter((r) => r.label === label);
  if (!on || !off) continue;
  console.log(`${label}: policy+audit cost ${Math.round((1 - on.rps / off.rps) * 100)} % of throughput (on/off = ${(on.rps / off.rps).toFixed(2)})`);
}
await close();
