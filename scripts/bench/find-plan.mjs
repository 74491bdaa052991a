#!/usr/bin/env node
// The SQL of an ITI-67 find as the patient's GP and SQLite's plan for it (not a test): builds an
// app in this process on a temporary SQLite store, writes `--docs` DocumentReferences for one
// patient (a lab's, 100 KiB PDFs left out: the find reads rows, not blobs), then runs the finds of
// scripts/bench/mhd.mjs with the statements the store prepares recorded, and prints each statement
// with its EXPLAIN QUERY PLAN and its time (mean of 50 runs, ms).
// --others <n> adds n current documents of 1,000 other patients (written through the storage port,
// 1,000 a transaction): how a find's cost grows with the rest of the store.
// Requires a build first:  npm run build && node scripts/bench/find-plan.mjs [--docs 2000] [--others 0]

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { inProcessApps } from './server.mjs';
import { INS, INS_SYSTEM } from './mhd-bundle.mjs';

const { values: opts } = parseArgs({ options: { docs: { type: 'string', default: '2000' }, others: { type: 'string', default: '0' } } });
const { store, apps, close } = await inProcessApps('find-plan');
const [{ base, token }] = apps;
try {
  const { CARNET_CLAIMS: c } = await import(new URL('../../dist/auth/claims.js', import.meta.url).href);
  const system = await token('loader', { [c.kind]: 'system', client_id: 'loader', scope: 'system/*.cruds' });
  const put = async (resource) => {
    const res = await fetch(`${base.url}/${resource.resourceType}/${resource.id}`, { method: 'PUT', headers: { authorization: `Bearer ${system}`, 'content-type': 'application/fhir+json' }, body: JSON.stringify(resource) });
    if (res.status >= 300) throw new Error(`${resource.id}: ${res.status} ${await res.text()}`);
  };
  await put({ resourceType: 'Patient', id: 'durand', identifier: [{ system: INS_SYSTEM, value: INS }], generalPractitioner: [{ reference: 'Practitioner/gp' }] });
  const types = ['11502-2', '11488-4', '57833-6', '18748-4'];
  for (let i = 0; i < Number(opts.docs); i++) {
    await put({ resourceType: 'DocumentReference', id: `d${i}`, status: 'current', masterIdentifier: { system: 'urn:ietf:rfc:3986', value: `urn:oid:1.2.250.1.999.3.${i}` }, type: { coding: [{ system: 'http://loinc.org', code: types[i % 4] }] }, subject: { reference: 'Patient/durand' }, author: [{ reference: 'Organization/lab' }], date: new Date(Date.UTC(2024, 0, 1 + (i % 700))).toISOString(), content: [{ attachment: { contentType: 'application/pdf', url: `Binary/b${i}` } }] });
  }
  const { indexEntries } = await import(new URL('../../dist/search/extract.js', import.meta.url).href);
  const others = Number(opts.others);
  for (let from = 0; from < others; from += 1000) {
    const ops = [];
    for (let i = from; i < Math.min(others, from + 1000); i++) {
      const resource = { resourceType: 'DocumentReference', id: `o${i}`, status: 'current', type: { coding: [{ system: 'http://loinc.org', code: types[i % 4] }] }, subject: { reference: `Patient/other-${i % 1000}` }, author: [{ reference: 'Organization/lab' }], date: new Date(Date.UTC(2024, 0, 1 + (i % 700))).toISOString(), content: [{ attachment: { contentType: 'application/pdf', url: `Binary/o${i}` } }] };
      ops.push({ kind: 'create', resource, index: indexEntries(resource) });
    }
    await store.transact(ops, new Date().toISOString());
  }
  const gp = await token('gp', { [c.kind]: 'practitioner', [c.fhirUser]: 'Practitioner/gp', [c.profession]: '10', scope: 'user/*.rs' });
  // Every statement the store prepares from here on, recorded while a find runs (better-sqlite3's prepare on the store's connection).
  const db = store.db;
  const recorded = [];
  const prepare = db.prepare.bind(db);
  db.prepare = (sql) => {
    const statement = prepare(sql);
    const wrapped = Object.create(statement);
    for (const method of ['all', 'get']) wrapped[method] = (...params) => (recording && recorded.push({ sql, params: params.flat() }), statement[method](...params));
    return wrapped;
  };
  let recording = false;
  const byIns = `patient.identifier=${encodeURIComponent(`${INS_SYSTEM}|${INS}`)}&status=current&_count=10`;
  for (const query of [byIns, `${byIns}&_total=none`, 'patient=Patient/durand&_count=10', 'patient=Patient/durand&_count=10&_total=none']) {
    const url = `${base.url}/DocumentReference?${query}`;
    const get = async () => {
      const res = await fetch(url, { headers: { authorization: `Bearer ${gp}` } });
      if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`);
      return res.json();
    };
    for (let i = 0; i < 5; i++) await get();
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) await get();
    const ms = (performance.now() - t0) / 50;
    recorded.length = 0;
    recording = true;
    const page = await get();
    recording = false;
    console.log(`\n=== ${opts.docs} documents of the patient, ${others} of others: GET DocumentReference?${decodeURIComponent(query)}: ${ms.toFixed(1)} ms a find (one client, in process), total ${page.total ?? '(none)'}, ${page.entry?.length ?? 0} entries`);
    for (const { sql, params } of recorded.filter((r) => /resource_current|idx_/.test(r.sql))) {
      const t1 = performance.now();
      for (let i = 0; i < 50; i++) prepare(sql).all(...params);
      console.log(`\n-- ${((performance.now() - t1) / 50).toFixed(2)} ms: ${sql.length > 1200 ? `${sql.slice(0, 1200)}…` : sql}`);
      for (const step of prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params)) console.log(`   ${step.detail}`);
    }
  }
} finally {
  await close();
}
