#!/usr/bin/env node
// HTTP benchmark of IHE MHD on the built server (not a test): ITI-65 pushes of one document with a
// 100 KiB PDF per Bundle, then the practitioner's path: ITI-67 find by INS, ITI-68 retrieve, the
// audited read of a DocumentReference beside bare Fastify serving the same bytes, and a restart
// on the filled store.
// Requires a build first:  npm run build && node scripts/bench/mhd.mjs [options]
//
// Options (all optional):
//   --duration <s>      seconds per run (default 10)
//   --connections <n>   concurrent clients of the push and pair runs (default 10)
//   --size <KiB>        size of each pushed PDF (default 100)
//   --workers <n>       CARNET_WORKERS of the server (default 1)
//   --only <list>       scenarios, comma-separated: push,find,pairs,read,startup (default all)
//   --cpu-prof <dir>    the server writes a CPU profile of each thread there (node --cpu-prof)
//   --data <dir>        run on this data directory, kept (default: a fresh temporary one)
//
// Each push carries fresh random bytes (so no two documents share a blob) for one patient known
// by INS; the reads are done as that patient's general practitioner, so consent checks and
// audit records are on, as in production. Figures: docs/performance.md.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { INS, INS_SYSTEM, provideBundle, pdf as makePdf } from './mhd-bundle.mjs';
import { authorizationFor, cleanup, PROJECT, requireBuild, startServer } from './server.mjs';

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10' },
    size: { type: 'string', default: '100' },
    workers: { type: 'string', default: '1' },
    only: { type: 'string', default: 'push,find,pairs,read,startup' },
    'cpu-prof': { type: 'string' },
    data: { type: 'string' },
  },
});
const duration = Number(opts.duration);
const connections = Number(opts.connections);
const size = Number(opts.size) * 1024;
const scenarios = new Set(opts.only.split(','));
requireBuild();

const FHIR_JSON = 'application/fhir+json';
const pdf = () => makePdf(size);

function run(options) {
  return new Promise((resolve, reject) => autocannon({ connections, duration, ...options }, (error, result) => (error ? reject(error) : resolve(result))));
}

function row(name, result, perRequest = 1) {
  const rate = Math.round(result.requests.average / perRequest).toLocaleString('en-US');
  const non2xx = result.non2xx ?? 0;
  return `${name.padEnd(56)} ${rate.padStart(9)} ${String(result.latency.p50).padStart(7)} ${String(result.latency.p99).padStart(7)} ${String(result.requests.total).padStart(9)} ${String(non2xx).padStart(8)} ${String(result.errors).padStart(7)}`;
}

/** p50 and p99 (ms, to 0.1) of `count` sequential GETs of `url`, one client: the latency of one find on a quiet server. */
async function sequential(url, headers, count) {
  const times = [];
  for (let i = 0; i < count + 5; i++) {
    const t0 = performance.now();
    const res = await fetch(url, { headers });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
    if (i >= 5) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(1);
  return { p50: at(0.5), p99: at(0.99), mean: (times.reduce((a, b) => a + b, 0) / times.length).toFixed(1) };
}

/** Starts bare Fastify (scripts/bench/bare-fastify.mjs) serving `body`; resolves with its origin and stop(). */
function startBare(body) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-bench-bare-')), 'document.json');
  fs.writeFileSync(file, body);
  const proc = spawn(process.execPath, [path.join(PROJECT, 'scripts/bench/bare-fastify.mjs'), file], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.stdout.setEncoding('utf8').once('data', (port) => resolve({ origin: `http://127.0.0.1:${Number(port)}`, stop: () => { proc.kill('SIGTERM'); fs.rmSync(path.dirname(file), { recursive: true, force: true }); } }));
    proc.once('exit', (code) => reject(new Error(`bare fastify exited ${code}`)));
  });
}

async function main() {
  console.log(`Carnet MHD benchmark: node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}; ${connections} clients, ${duration} s per run, ${size / 1024} KiB PDFs, CARNET_WORKERS=${opts.workers}`);
  const settings = { LOG_LEVEL: 'info', CARNET_WORKERS: opts.workers };
  const nodeArgs = opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(opts['cpu-prof'])}`] : [];
  const dataDir = opts.data === undefined ? undefined : (fs.mkdirSync(opts.data, { recursive: true }), path.resolve(opts.data));
  let server = await startServer(settings, { nodeArgs, dataDir });
  const lines = [];
  try {
    const system = await authorizationFor(server);
    // PUT with an id: a kept data directory (--data) is filled further by the next run.
    const patient = await fetch(`${server.origin}/fhir/Patient/durand`, { method: 'PUT', headers: { ...system, 'content-type': FHIR_JSON }, body: JSON.stringify({ resourceType: 'Patient', id: 'durand', identifier: [{ system: INS_SYSTEM, value: INS }], name: [{ family: 'Durand' }], generalPractitioner: [{ reference: 'Practitioner/gp' }] }) });
    if (patient.status >= 300) throw new Error(`the patient was refused: ${patient.status} ${await patient.text()}`);
    const check = await fetch(`${server.origin}/fhir`, { method: 'POST', headers: { ...system, 'content-type': FHIR_JSON }, body: provideBundle(pdf()).replaceAll('__UID__', `check-${Date.now()}`) });
    if (check.status !== 200) throw new Error(`a Provide Document Bundle was refused: ${check.status} ${await check.text()}`);

    if (scenarios.has('push')) {
      const push = await run({
        url: `${server.origin}/fhir`,
        method: 'POST',
        headers: { ...system, 'content-type': FHIR_JSON, accept: FHIR_JSON, prefer: 'return=minimal' },
        // 200 distinct PDFs generated before the run, cycled: every push is a new document.
        // Each push gets fresh uniqueIds (a uniqueId is provided once).
        requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next % bodies.length].replaceAll('__UID__', `${runId}.${++next}`) }) }],
      });
      lines.push(row(`ITI-65 push, 1 document + ${size / 1024} KiB PDF per Bundle`, push));
      console.log(`documents pushed per second: ${Math.round(push.requests.average)}; p99 push latency ${push.latency.p99} ms`);
    }

    const gp = await authorizationFor(server, { kind: 'practitioner', fhirUser: 'Practitioner/gp', profession: '10', scope: 'user/*.rs' });
    const byIns = `patient.identifier=${encodeURIComponent(`${INS_SYSTEM}|${INS}`)}&status=current&_count=10`;
    const find = `/fhir/DocumentReference?${byIns}`;
    const total = await (await fetch(`${server.origin}/fhir/DocumentReference?patient=Patient/durand&_summary=count`, { headers: system })).json();
    console.log(`the patient has ${total.total} documents`);

    if (scenarios.has('find')) {
      // One client, one request at a time: the latency of a find itself, not of a queue.
      console.log('\nITI-67 find as the GP, one client, 200 sequential requests:  p50 / p99 / mean ms');
      for (const [name, query] of [
        ['patient.identifier (INS) + status, _count=10', byIns],
        ['the same, _total=none', `${byIns}&_total=none`],
        ['the same, _total=accurate', `${byIns}&_total=accurate`],
        ['patient=<id>, _count=10', 'patient=Patient/durand&_count=10'],
        ['patient=<id>, _count=10, _total=none', 'patient=Patient/durand&_count=10&_total=none'],
      ]) {
        const r = await sequential(`${server.origin}/fhir/DocumentReference?${query}`, { ...gp, accept: FHIR_JSON }, 200);
        console.log(`  ${name.padEnd(52)} ${r.p50.padStart(7)} ${r.p99.padStart(7)} ${r.mean.padStart(7)}`);
      }
    }

    if (scenarios.has('pairs')) {
      const retrieveAll = await run({
        url: server.origin,
        headers: { ...gp, accept: FHIR_JSON },
        requests: [
          {
            method: 'GET',
            path: find,
            onResponse: (status, body, context) => {
              const bundle = JSON.parse(body);
              const urls = (bundle.entry ?? []).map((e) => e.resource.content[0].attachment.url);
              context.binary = urls[Math.floor(Math.random() * urls.length)];
            },
          },
          { method: 'GET', setupRequest: (req, context) => ({ ...req, path: `/fhir/${context.binary}`, headers: { ...req.headers, accept: 'application/pdf' } }) },
        ],
      });
      lines.push(row('ITI-67 find by INS (10 per page) + ITI-68 retrieve, pairs', retrieveAll, 2));
    }

    if (scenarios.has('read')) {
      // The same DocumentReference bytes from Carnet (token, consent, audit record) and from bare
      // Fastify, in alternating slices so that the machine's drift weighs on both alike.
      const page = await (await fetch(`${server.origin}${find}`, { headers: { ...gp, accept: FHIR_JSON } })).json();
      const id = page.entry[0].resource.id;
      const carnetRead = await fetch(`${server.origin}/fhir/DocumentReference/${id}`, { headers: { ...gp, accept: FHIR_JSON } });
      const body = Buffer.from(await carnetRead.arrayBuffer());
      const bare = await startBare(body);
      try {
        const slices = 4;
        const sum = { carnet: { requests: 0, seconds: 0, p99: [] }, bare: { requests: 0, seconds: 0, p99: [] } };
        for (let i = 0; i < slices; i++) {
          for (const which of i % 2 === 0 ? ['carnet', 'bare'] : ['bare', 'carnet']) {
            const origin = which === 'carnet' ? server.origin : bare.origin;
            const r = await run({ url: `${origin}/fhir/DocumentReference/${id}`, headers: { ...gp, accept: FHIR_JSON }, duration: Math.max(1, Math.round(duration / slices)) });
            if ((r.non2xx ?? 0) > 0 || r.errors > 0) throw new Error(`${which} read: ${r.non2xx} non-2xx, ${r.errors} errors`);
            sum[which].requests += r.requests.total;
            sum[which].seconds += r.duration;
            sum[which].p99.push(r.latency.p99);
          }
        }
        const rate = (w) => sum[w].requests / sum[w].seconds;
        console.log(`\nDocumentReference read (${body.length} bytes), ${slices} alternating slices each: Carnet as the GP ${Math.round(rate('carnet'))} req/s (p99 ${Math.max(...sum.carnet.p99)} ms), bare Fastify ${Math.round(rate('bare'))} req/s (p99 ${Math.max(...sum.bare.p99)} ms): ratio ${(rate('carnet') / rate('bare')).toFixed(2)}`);
      } finally {
        bare.stop();
      }
    }

    if (scenarios.has('startup')) {
      // A restart on the store just filled: spawn to the listening line, and the server's own "ready in".
      const times = [];
      for (let i = 0; i < 3; i++) {
        await server.stop();
        server = await startServer(settings, { dataDir: server.dataDir });
        const ok = await fetch(`${server.origin}/fhir/metadata`);
        if (ok.status !== 200) throw new Error(`metadata after restart: ${ok.status}`);
        times.push(`${Math.round(server.startupMs)} ms (ready in ${server.selfReportedMs} ms)`);
      }
      console.log(`\nstart-up on the filled store (${total.total} documents), 3 restarts: ${times.join(', ')}`);
    }

    if (lines.length > 0) {
      console.log(`\nscenario                                                 req/s avg  p50 ms  p99 ms  requests  non-2xx  errors`);
      console.log(`${'-'.repeat(56)} --------- ------- ------- --------- -------- -------`);
      for (const line of lines) console.log(line);
    }
  } finally {
    await server.stop();
    cleanup();
  }
}

const bodies = Array.from({ length: 200 }, () => provideBundle(pdf()));
const runId = Date.now();
let next = 0;
main().catch((error) => {
  console.error(error);
  cleanup();
  process.exit(1);
});
