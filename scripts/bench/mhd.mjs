#!/usr/bin/env node
// HTTP benchmark of IHE MHD on the built server (not a test): ITI-65 pushes of one document with a
// 100 KiB PDF per Bundle, then the practitioner's path: ITI-67 find by INS, then ITI-68 retrieve.
// Requires a build first:  npm run build && node scripts/bench/mhd.mjs [options]
//
// Options (all optional):
//   --duration <s>      seconds per run (default 10)
//   --connections <n>   concurrent clients (default 10)
//   --size <KiB>        size of each pushed PDF (default 100)
//
// Each push carries fresh random bytes (so no two documents share a blob) for one patient known
// by INS; the find-and-retrieve run is done as that patient's general practitioner, so consent
// checks and audit records are on, as in production. Figures: docs/performance.md.

import crypto from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { authorizationFor, cleanup, provideBundle as provide, requireBuild, startServer } from './server.mjs';

const provideBundle = (bytes) => provide(INS, bytes);

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10' },
    size: { type: 'string', default: '100' },
  },
});
const duration = Number(opts.duration);
const connections = Number(opts.connections);
const size = Number(opts.size) * 1024;
requireBuild();

const FHIR_JSON = 'application/fhir+json';
const INS_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
const INS = '277076322082910';

const pdf = () => Buffer.concat([Buffer.from('%PDF-1.7\n'), crypto.randomBytes(size - 9)]);

function run(options) {
  return new Promise((resolve, reject) => autocannon({ connections, duration, ...options }, (error, result) => (error ? reject(error) : resolve(result))));
}

function row(name, result, perRequest = 1) {
  const rate = Math.round(result.requests.average / perRequest).toLocaleString('en-US');
  const non2xx = result.non2xx ?? 0;
  return `${name.padEnd(56)} ${rate.padStart(9)} ${String(result.latency.p50).padStart(7)} ${String(result.latency.p99).padStart(7)} ${String(result.requests.total).padStart(9)} ${String(non2xx).padStart(8)} ${String(result.errors).padStart(7)}`;
}

async function main() {
  console.log(`Carnet MHD benchmark: node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}; ${connections} clients, ${duration} s per run, ${size / 1024} KiB PDFs`);
  const server = await startServer({ LOG_LEVEL: 'info' });
  try {
    const system = await authorizationFor(server);
    const post = (path, body) => fetch(`${server.origin}/fhir/${path}`, { method: 'POST', headers: { ...system, 'content-type': FHIR_JSON, accept: FHIR_JSON }, body: JSON.stringify(body) });
    await post('Patient', { resourceType: 'Patient', identifier: [{ system: INS_SYSTEM, value: INS }], name: [{ family: 'Durand' }], generalPractitioner: [{ reference: 'Practitioner/gp' }] });
    const check = await fetch(`${server.origin}/fhir`, { method: 'POST', headers: { ...system, 'content-type': FHIR_JSON }, body: provideBundle(pdf()).replaceAll('__UID__', 'check') });
    if (check.status !== 200) throw new Error(`a Provide Document Bundle was refused: ${check.status} ${await check.text()}`);

    const push = await run({
      url: `${server.origin}/fhir`,
      method: 'POST',
      headers: { ...system, 'content-type': FHIR_JSON, accept: FHIR_JSON, prefer: 'return=minimal' },
      // 200 distinct PDFs generated before the run, cycled: every push is a new document.
      // Each push gets fresh uniqueIds (a uniqueId is provided once).
      requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next % bodies.length].replaceAll('__UID__', String(++next)) }) }],
    });

    const gp = await authorizationFor(server, { kind: 'practitioner', fhirUser: 'Practitioner/gp', profession: '10', scope: 'user/*.rs' });
    const find = `/fhir/DocumentReference?patient.identifier=${encodeURIComponent(`${INS_SYSTEM}|${INS}`)}&status=current&_count=10`;
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

    console.log(`\nscenario                                                 req/s avg  p50 ms  p99 ms  requests  non-2xx  errors`);
    console.log(`${"-".repeat(56)} --------- ------- ------- --------- -------- -------`);
    console.log(row(`ITI-65 push, 1 document + ${size / 1024} KiB PDF per Bundle`, push));
    console.log(row('ITI-67 find by INS (10 per page) + ITI-68 retrieve, pairs', retrieveAll, 2));
    console.log(`\ndocuments pushed per second: ${Math.round(push.requests.average)}; p99 push latency ${push.latency.p99} ms`);
  } finally {
    await server.stop();
    cleanup();
  }
}

const bodies = Array.from({ length: 200 }, () => provideBundle(pdf()));
let next = 0;
main().catch((error) => {
  console.error(error);
  cleanup();
  process.exit(1);
});
