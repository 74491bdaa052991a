#!/usr/bin/env node
// What notifications cost and how fast they go (not a test). Requires a build:
//   npm run build && node scripts/bench/notify.mjs [--duration 8] [--subscriptions 1000] [--documents 5000]
//
// 1. The audited read with notifications on and off: one app (policy and audit on, as served) on one
//    SQLite store; a GP reads documents of their patient with autocannon, in alternating slices with
//    the app's notifier running (polling every 500 ms, deriving the patient's notifications from
//    every access record) and stopped. The ratio is what notifications cost the read path.
// 2. Events per second with --subscriptions active rest-hook subscriptions (document topic, one per
//    patient, owned by that patient's GP, to 20 local receivers: 20 endpoint origins), when a lab
//    pushes --documents documents spread over the patients: the time the notifier takes to derive
//    and deliver every event (each one decided by the consent policy for its owner), from the
//    first derivation to the last receipt.

import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { inProcessApps, loadPolicyData, PROJECT } from './server.mjs';

const { values: opts } = parseArgs({ options: { duration: { type: 'string', default: '8' }, connections: { type: 'string', default: '10' }, subscriptions: { type: 'string', default: '1000' }, documents: { type: 'string', default: '5000' }, slices: { type: 'string', default: '4' }, only: { type: 'string' }, mode: { type: 'string' }, poll: { type: 'string' } } });
const dist = (file) => import(pathToFileURL(path.join(PROJECT, 'dist', file)).href);
const { CARNET_CLAIMS: c } = await dist('auth/claims.js');
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
console.log(`notify bench: ${os.cpus().length} cores (${os.cpus()[0].model}), load ${load()}`);

async function readCost() {
  const { store, apps, close } = await inProcessApps('notify-read', [{ notifications: opts.poll ? { pollMs: Number(opts.poll) } : {} }]);
  const [entry] = apps;
  const { ids } = await loadPolicyData(entry, 500);
  const bearer = await entry.token('dr-gp', { [c.kind]: 'practitioner', [c.fhirUser]: 'Practitioner/dr-gp', [c.profession]: '10', scope: 'user/*.rs' });
  const slices = Math.max(2, Number(opts.slices));
  const seconds = Number(opts.duration) / slices;
  const totals = { on: { requests: 0, seconds: 0, cpu: 0, p99: [] }, off: { requests: 0, seconds: 0, cpu: 0, p99: [] } };
  await entry.app.notifier.drain();
  for (let i = 0; i < slices; i++) {
    for (const mode of (i % 2 === 0 ? ['on', 'off'] : ['off', 'on']).filter((m) => !opts.mode || m === opts.mode)) {
      if (mode === 'on') entry.app.notifier.start();
      const cpu0 = process.cpuUsage();
      let n = 0;
      const result = await autocannon({
        url: entry.base.url.replace(/\/fhir$/, ''),
        connections: Number(opts.connections),
        duration: seconds,
        requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: `/fhir/DocumentReference/${ids[1 + (n++ % (ids.length - 1))]}`, headers: { authorization: `Bearer ${bearer}`, accept: 'application/fhir+json' } }) }],
      });
      // What the slice left for the notifier is its cost: with notifications on, the time to derive
      // the rest is added to the slice (as policy.mjs adds the audit catch-up).
      const t0 = performance.now();
      if (mode === 'on') {
        await entry.app.notifier.stop();
        await entry.app.notifier.drain();
      } else {
        await store.history({ level: 'type', type: 'AuditEvent' }, { count: 1 });
      }
      const cpu = process.cpuUsage(cpu0);
      totals[mode].cpu += (cpu.user + cpu.system) / 1000;
      totals[mode].requests += result.requests.total;
      totals[mode].seconds += result.duration + (performance.now() - t0) / 1000;
      totals[mode].p99.push(result.latency.p99);
      if (mode === 'off') await entry.app.notifier.drain(); // the off slice's accesses are not charged to the next on slice
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  const rate = (m) => totals[m].requests / totals[m].seconds;
  console.log(`\n## audited read, GP, DocumentReference/<id> (${slices} alternating slices of ${seconds} s, ${opts.connections} connections)`);
  // CPU per request (every thread of the process: the server, its writer thread, autocannon), which
  // the load of a shared machine disturbs far less than the rate.
  const cpuPer = (m) => totals[m].cpu / totals[m].requests;
  console.log(`| notifications | req/s | CPU ms per request (all threads) | p99 ms (slices) |\n|---|---|---|---|`);
  for (const m of ['on', 'off'].filter((m) => totals[m].seconds > 0)) console.log(`| ${m} | ${Math.round(rate(m)).toLocaleString('en')} | ${cpuPer(m).toFixed(3)} | ${totals[m].p99.join(', ')} |`);
  console.log(`ratio on/off: ${(rate('on') / rate('off')).toFixed(3)} req/s, ${(cpuPer('off') / cpuPer('on')).toFixed(3)} by CPU per request (goal: at least 0.90)`);
  // The same cost measured apart, which the drift of a shared machine disturbs less: the CPU of
  // serving --amount reads (and having their audit records taken in), then the CPU of deriving
  // their notifications (one notifier round over all their access records).
  const amount = 20_000;
  await entry.app.notifier.stop();
  await entry.app.notifier.drain();
  let n = 0;
  const cpuReads0 = process.cpuUsage();
  await autocannon({
    url: entry.base.url.replace(/\/fhir$/, ''),
    connections: Number(opts.connections),
    amount,
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: `/fhir/DocumentReference/${ids[1 + (n++ % (ids.length - 1))]}`, headers: { authorization: `Bearer ${bearer}`, accept: 'application/fhir+json' } }) }],
  });
  await store.history({ level: 'type', type: 'AuditEvent' }, { count: 1 });
  const reads = process.cpuUsage(cpuReads0);
  const cpuDerive0 = process.cpuUsage();
  await entry.app.notifier.drain();
  const derive = process.cpuUsage(cpuDerive0);
  const ms = (u) => (u.user + u.system) / 1000;
  console.log(`apart: ${amount.toLocaleString('en')} audited reads took ${Math.round(ms(reads)).toLocaleString('en')} ms of CPU (${((1000 * ms(reads)) / amount).toFixed(0)} µs each, autocannon included); deriving their notifications took ${Math.round(ms(derive)).toLocaleString('en')} ms (${((1000 * ms(derive)) / amount).toFixed(0)} µs an access): ${((100 * ms(derive)) / ms(reads)).toFixed(1)} % of the read's cost`);
  await close();
}

/** How many queue items needed more than one attempt. */
async function queueCounts(store) {
  const rows = store.db ? store.db.prepare('SELECT COUNT(*) AS n FROM queue_item WHERE attempts > 0').get() : { n: 'n/a' };
  return { retried: rows.n };
}

async function eventRate() {
  const subscriptions = Number(opts.subscriptions);
  const documents = Number(opts.documents);
  // 20 receivers: 20 endpoint origins, as many subscribers' servers would be.
  let received = 0;
  let lastAt = 0;
  const receivers = [];
  for (let i = 0; i < 20; i++) {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        received++;
        lastAt = performance.now();
        res.end();
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    receivers.push(server);
  }
  const { store, apps, close } = await inProcessApps('notify-events', [{ notifications: { allow: ['127.0.0.1'] } }]);
  const [{ app, base, token }] = apps;
  const { indexEntries } = await dist('search/extract.js');
  const at = new Date().toISOString();
  // Patients and their GPs, through the storage port (a GP per patient).
  const ops = [];
  for (let i = 0; i < subscriptions; i++) {
    const patient = { resourceType: 'Patient', id: `p${i}`, generalPractitioner: [{ reference: `Practitioner/gp${i}` }] };
    ops.push({ kind: 'create', resource: patient, index: indexEntries(patient), creator: 'client:loader' });
  }
  await store.transact(ops, at);
  const IG = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
  for (let i = 0; i < subscriptions; i++) {
    const gp = await token(`gp${i}`, { [c.kind]: 'practitioner', [c.fhirUser]: `Practitioner/gp${i}`, [c.profession]: '10', scope: 'user/*.cruds' });
    const port = receivers[i % receivers.length].address().port;
    const body = {
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'bench',
      criteria: 'https://carnet.example.org/fhir/SubscriptionTopic/document',
      _criteria: { extension: [{ url: `${IG}backport-filter-criteria`, valueString: `DocumentReference?patient=Patient/p${i}` }] },
      channel: { type: 'rest-hook', endpoint: `http://127.0.0.1:${port}/hook/${i}`, payload: 'application/fhir+json', _payload: { extension: [{ url: `${IG}backport-payload-content`, valueCode: 'id-only' }] } },
    };
    const res = await fetch(`${base.url}/Subscription`, { method: 'POST', headers: { authorization: `Bearer ${gp}`, 'content-type': 'application/fhir+json' }, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`subscription ${i}: ${res.status} ${await res.text()}`);
  }
  await app.notifier.drain(); // the handshakes
  const handshakes = received;
  received = 0;
  // The documents, pushed by a lab through the storage port (their versions are the changes).
  const batch = 500;
  for (let start = 0; start < documents; start += batch) {
    const docs = [];
    for (let i = start; i < Math.min(documents, start + batch); i++) {
      const doc = { resourceType: 'DocumentReference', id: `d${i}`, status: 'current', type: { coding: [{ system: 'http://loinc.org', code: '11502-2' }] }, subject: { reference: `Patient/p${i % subscriptions}` }, author: [{ reference: 'Organization/lab' }], content: [{ attachment: { contentType: 'application/pdf', url: `Binary/d${i}` } }] };
      docs.push({ kind: 'create', resource: doc, index: indexEntries(doc), creator: 'client:lab' });
    }
    await store.transact(docs, new Date().toISOString());
  }
  const t0 = performance.now();
  let derived = 0;
  for (let n; (n = await app.notifier.fanOut()) > 0; ) derived += n;
  const tDerived = performance.now();
  // Delivery: rounds until every event is received (a delivery that failed is retried when due).
  const deadline = Date.now() + 300_000;
  while (received < documents && Date.now() < deadline) {
    await app.notifier.drain();
    if (received < documents) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const seconds = (lastAt - t0) / 1000;
  const { retried } = await queueCounts(store, subscriptions);
  console.log(`deliveries that needed a retry: ${retried}`);
  console.log(`\n## events with ${subscriptions.toLocaleString('en')} active subscriptions (${handshakes} handshakes first, untimed)`);
  console.log('| documents pushed | changes derived | events delivered | derive (s) | derive + deliver (s) | events/s |\n|---|---|---|---|---|---|');
  console.log(`| ${documents.toLocaleString('en')} | ${derived.toLocaleString('en')} | ${received.toLocaleString('en')} | ${((tDerived - t0) / 1000).toFixed(2)} | ${seconds.toFixed(2)} | ${Math.round(received / seconds).toLocaleString('en')} |`);
  await close();
  for (const server of receivers) server.close();
}

if (!opts.only || opts.only === 'read') await readCost();
if (!opts.only || opts.only === 'events') await eventRate();
console.log(`\nload after: ${load()}`);
process.exit(0);
