#!/usr/bin/env node
// What the costliest searches the limits of src/search/limits.ts let through cost everyone else
// (not a test). Requires a build:
//   npm run build && node scripts/bench/costly.mjs [--rounds 8] [--concurrency 4] [--docs 500]
//     [--only <request name prefix>] [--token patient|practitioner]   (to profile one of them)
// The app is built in this process on a temporary SQLite store (as scripts/bench/policy.mjs does),
// with the data of the policy benchmark: patient p1 (GP dr-gp), 500 DocumentReferences and a
// mask; plus the Practitioners and Organizations of the chains. The event loop of this thread is
// the server's: its delay is measured with perf_hooks.monitorEventLoopDelay while a worker thread
// sends, with a patient token (p1) and with a practitioner token (dr-gp), each costly request
// `--rounds` times, `--concurrency` at once, and meanwhile reads GET /fhir/Patient/p1 (the cheap
// request every other user is making) one after the other. For each request and token it prints
// the answers' statuses, their latency, the longest and the 99th percentile delay of the event
// loop, and the latency of the cheap reads. Figures: docs/performance.md.

import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { inProcessApps, loadPolicyData, PROJECT } from './server.mjs';

const dist = async (file) => import(pathToFileURL(path.join(PROJECT, 'dist', file)).href);
const FHIR_JSON = 'application/fhir+json';

if (isMainThread) await main();
else await load(workerData);

// ---- the server (main thread) ------------------------------------------------------------------

async function main() {
  const { values: opts } = parseArgs({ options: { rounds: { type: 'string', default: '8' }, concurrency: { type: 'string', default: '4' }, docs: { type: 'string', default: '500' }, only: { type: 'string' }, token: { type: 'string' } } });
  const { CARNET_CLAIMS: c } = await dist('auth/claims.js');
  const limits = await dist('search/limits.js');
  const { paramsOf } = await dist('search/params.js');
  const { SERVED_TYPES } = await dist('base/registry.js');
  const { apps: [server], close } = await inProcessApps('costly');
  const { base, token } = server;

  // The data of scripts/bench/policy.mjs, and the resources its references name.
  const docCount = Number(opts.docs);
  const { put } = await loadPolicyData(server, docCount);
  await put({ resourceType: 'Organization', id: 'org-2', name: 'Groupe hospitalier' });
  await put({ resourceType: 'Organization', id: 'org-1', name: 'Hôpital Nord', partOf: { reference: 'Organization/org-2' } });
  await put({ resourceType: 'Practitioner', id: 'dr-gp', name: [{ family: 'Martin' }] });
  await put({ resourceType: 'Practitioner', id: 'dr-other', name: [{ family: 'Bernard' }] });

  const tokens = {
    patient: await token('p1', { [c.kind]: 'patient', [c.fhirUser]: 'Patient/p1', scope: 'patient/*.rs' }),
    practitioner: await token('dr-gp', { [c.kind]: 'practitioner', [c.fhirUser]: 'Practitioner/dr-gp', [c.profession]: '10', scope: 'user/*.rs' }),
  };
  if (opts.token) for (const who of Object.keys(tokens)) if (who !== opts.token) delete tokens[who];
  const rounds = Number(opts.rounds);
  // Each request of each round, and one more (another shape) sent first, unmeasured.
  const scenarios = costlyRequests(limits, paramsOf, SERVED_TYPES)
    .filter(([name]) => !opts.only || name.startsWith(opts.only))
    .map(([name, make]) => [name, Array.from({ length: rounds + 1 }, (_, round) => make(round))]);

  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const worker = new Worker(new URL(import.meta.url), { workerData: { origin: base.url.replace(/\/fhir$/, ''), scenarios, tokens, concurrency: Number(opts.concurrency) } });
  const ms = (ns) => Math.round(ns / 1e6);
  const rows = await new Promise((resolve, reject) => {
    worker.on('message', (message) => {
      if (message.kind === 'start') {
        delay.reset();
        worker.postMessage({});
      }
      if (message.kind === 'end') worker.postMessage({ max: ms(delay.max), p99: ms(delay.percentile(99)) });
      if (message.kind === 'done') resolve(message.rows);
    });
    worker.on('error', reject);
  });
  await worker.terminate();

  const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
  console.log(`node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}; ${docCount} DocumentReferences; each request ${opts.rounds} times, ${opts.concurrency} at once; load average ${load()}\n`);
  console.log('request                   token         statuses    size kB  latency p50/max ms  loop delay max/p99 ms  cheap read p50/p99/max ms');
  for (const r of rows) {
    const over = r.loopMax > 100 ? '  <-- over 100 ms' : '';
    console.log(`${r.name.padEnd(26)}${r.token.padEnd(14)}${r.statuses.padEnd(12)}${String(r.kB).padStart(7)}  ${`${r.p50}/${r.max}`.padStart(18)}  ${`${r.loopMax}/${r.loopP99}`.padStart(21)}  ${`${r.readP50}/${r.readP99}/${r.readMax}`.padStart(25)}${over}`);
  }
  console.log('\nrequests (a form is POSTed to path/_search):');
  for (const [name, [[target, form]]] of scenarios) console.log(`  ${name}: ${target}${form === undefined ? '' : ` + form ${form.length > 120 ? `${form.slice(0, 120)}... (${form.length} bytes)` : form}`}`);
  await close();
}

/**
 * The costliest requests within the limits: [name, make(round) => [path, form]]. With a form,
 * POST path/_search with it as the body (a GET URL is refused beyond 16 KiB by Node's HTTP
 * parser); without, GET path; a path 'cursor:...' is the first page of a search whose next page is
 * measured. Each round's request has a statement of its own shape (a value more or less, keys in
 * another order): the store prepares each shape once, and an attacker would not repeat one.
 */
function costlyRequests(limits, paramsOf, servedTypes) {
  const { MAX_PARAMETERS, MAX_VALUES, MAX_TOTAL_VALUES, MAX_VALUE_LENGTH, MAX_SEARCH_LENGTH, MAX_INCLUDES, MAX_SORT_KEYS, MAX_DEPTH, MAX_LINKS } = limits;
  const list = (n, value) => Array.from({ length: n }, (_, i) => value(i)).join(',');
  const query = (pairs) => pairs.map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join('&');
  const maxPage = 1000;
  // Every reference parameter of DocumentReference followed, then Type:* reverse includes of the
  // other types, all :iterate: MAX_INCLUDES distinct values.
  const includes = [
    ...paramsOf('DocumentReference').filter((p) => p.type === 'reference').map((p) => ['_include:iterate', `DocumentReference:${p.code}`]),
    ...servedTypes.filter((t) => paramsOf(t).some((p) => p.type === 'reference')).map((t) => ['_revinclude:iterate', `${t}:*`]),
  ].slice(0, MAX_INCLUDES);
  // `count` parameters (MAX_PARAMETERS by default): of MAX_VALUES values while MAX_TOTAL_VALUES
  // allows, the rest of one (the first has `round` values fewer).
  const spread = (round, make, count = MAX_PARAMETERS) => {
    const full = Math.min(count, Math.floor((MAX_TOTAL_VALUES - count) / (MAX_VALUES - 1)));
    return Array.from({ length: count }, (_, i) => make(i, i < full ? MAX_VALUES - (i === 0 ? round : 0) : 1));
  };
  // Chains (or _has) MAX_DEPTH levels deep while MAX_LINKS allows, the last shorter: `name(links)`.
  const linked = (name) => {
    const names = [];
    for (let links = 0; links < MAX_LINKS; links += MAX_DEPTH - 1) names.push(name(Math.min(MAX_DEPTH - 1, MAX_LINKS - links)));
    return names;
  };
  const chains = linked((links) => [...['patient', 'general-practitioner:Organization', 'partof'].slice(0, links), 'name'].join('.'));
  const hases = linked((links) => `_has:DocumentReference:subject:${'_has:AuditEvent:entity:'.repeat(links - 1)}type`);
  const longest = Math.floor((MAX_SEARCH_LENGTH - 64) / (MAX_VALUE_LENGTH + 'description:contains='.length));
  const keys = ['-date', 'type', 'author', '-_lastUpdated', 'status', 'custodian', 'description', '-period', 'subject'].slice(0, MAX_SORT_KEYS);
  const sortKeys = (round) => [...keys.slice(round % keys.length), ...keys.slice(0, round % keys.length)].join(',');
  const documents = '/fhir/DocumentReference';
  // Everything at once: a full page, every include, every sort key, every chain link, and the
  // parameters and values left spent on tokens.
  const everything = (round) => {
    const fixed = [['_count', String(maxPage - round)], ['_sort', sortKeys(round)], ...includes, ...spread(0, (i, n) => [chains[i], list(n, (j) => `h${i}-${j}`)], chains.length)];
    let left = MAX_TOTAL_VALUES - fixed.reduce((sum, [, value]) => sum + value.split(',').length, 0);
    const count = MAX_PARAMETERS - fixed.length;
    const tokens = Array.from({ length: count }, (_, i) => {
      const n = Math.min(MAX_VALUES, left - (count - 1 - i));
      left -= n;
      return ['type', list(n, (j) => `http://loinc.org|${i}-${j}`)];
    });
    return query([...fixed, ...tokens]);
  };
  return [
    ['baseline (10 documents)', () => [documents, 'patient=p1&_count=10']],
    ['page of 1000', () => [documents, `patient=p1&_count=${maxPage}`]],
    [`${MAX_INCLUDES} includes, page 10`, (round) => [documents, `patient=p1&_count=${10 + round}&${query(includes)}`]],
    [`${MAX_INCLUDES} includes, page 1000`, (round) => [documents, `patient=p1&_count=${maxPage - round}&${query(includes)}`]],
    [`${MAX_PARAMETERS} params of tokens`, (round) => [documents, query(spread(round, (i, n) => ['type', list(n, (j) => `http://loinc.org|${i}-${j}`)]))]],
    [`${MAX_PARAMETERS} params of refs`, (round) => [documents, query(spread(round, (i, n) => ['author', list(n, (j) => `Practitioner/x${i}-${j}`)]))]],
    [`${MAX_PARAMETERS} params of dates`, (round) => [documents, query(spread(round, (i, n) => ['date', list(n, (j) => `${['eq', 'ne', 'ge', 'lt'][j % 4]}${2000 + ((i + j) % 25)}-01-01`)]))]],
    [`${longest} longest :contains`, (round) => [documents, query(Array.from({ length: longest }, (_, i) => ['description:contains', `${i}`.padEnd(MAX_VALUE_LENGTH, 'x') + (i === 0 ? list(round, (j) => `,v${j}`).replaceAll(',,', ',') : '')]))]],
    [`${MAX_LINKS} chain links`, (round) => [documents, query(spread(round, (i, n) => [chains[i], list(n, (j) => `h${i}-${j}`)], chains.length))]],
    [`${MAX_LINKS} _has links`, (round) => ['/fhir/Patient', query(spread(round, (i, n) => [hases[i], list(n, (j) => `t${i}-${j}`)], hases.length))]],
    [`sort ${MAX_SORT_KEYS} keys, page 1000`, (round) => [documents, `patient=p1&_count=${maxPage}&_sort=${sortKeys(round)}`]],
    [`sort ${MAX_SORT_KEYS} keys, next page`, (round) => [`cursor:${documents}?patient=p1&_count=50&_sort=${sortKeys(round)}`]],
    ['system search, all types', (round) => [`/fhir?_type=${servedTypes.join(',')}&_lastUpdated=${list(round + 1, (j) => `ge${2000 + j}-01-01`)}&_count=${maxPage}`]],
    ['all limits at once', (round) => [documents, everything(round)]],
  ];
}

// ---- the clients (worker thread) ---------------------------------------------------------------

async function load({ origin, scenarios, tokens, concurrency }) {
  // The main thread answers each: 'start' when it has reset the delay histogram, 'end' with it.
  const ask = (kind) => new Promise((resolve) => {
    parentPort.once('message', resolve);
    parentPort.postMessage({ kind });
  });
  const percentile = (values, p) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  };
  const rows = [];
  for (const [who, bearer] of Object.entries(tokens)) {
    const headers = { authorization: `Bearer ${bearer}`, accept: FHIR_JSON };
    for (const [name, variants] of scenarios) {
      const requests = [];
      for (const [target, form] of variants) {
        let url = form === undefined ? `${origin}${target}` : `${origin}${target}/_search`;
        if (target.startsWith('cursor:')) {
          // The next page of a sorted search: the keyset condition of its cursor.
          const first = await (await fetch(`${origin}${target.slice('cursor:'.length)}`, { headers })).json();
          url = first.link?.find((l) => l.relation === 'next')?.url ?? `${origin}${target.slice('cursor:'.length)}`;
        }
        requests.push([url, form === undefined ? { headers } : { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: form }]);
      }
      const [warmUp, ...measured] = [requests.at(-1), ...requests.slice(0, -1)];
      await fetch(...warmUp).then((res) => res.arrayBuffer()); // unmeasured: what a first request loads
      await ask('start');
      let reading = true;
      const reads = [];
      const reader = (async () => {
        while (reading) {
          const t0 = performance.now();
          await (await fetch(`${origin}/fhir/Patient/p1`, { headers })).arrayBuffer();
          reads.push(performance.now() - t0);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const latencies = [];
      const statuses = new Map();
      let bytes = 0;
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < measured.length) {
            const request = measured[next++];
            const t0 = performance.now();
            const res = await fetch(...request);
            bytes = (await res.arrayBuffer()).byteLength;
            latencies.push(performance.now() - t0);
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          }
        }),
      );
      reading = false;
      await reader;
      const loop = await ask('end');
      rows.push({
        name,
        token: who,
        statuses: [...statuses].map(([status, n]) => `${n}x${status}`).join(' '),
        kB: Math.round(bytes / 1024),
        p50: Math.round(percentile(latencies, 50)),
        max: Math.round(Math.max(...latencies)),
        loopMax: loop.max,
        loopP99: loop.p99,
        readP50: Math.round(percentile(reads, 50)),
        readP99: Math.round(percentile(reads, 99)),
        readMax: Math.round(Math.max(...reads)),
      });
    }
  }
  parentPort.postMessage({ kind: 'done', rows });
}
