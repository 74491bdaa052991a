#!/usr/bin/env node
// HTTP benchmark of the built server (not a test): start-up time, create throughput, read throughput.
// Requires a build first:  npm run build && node scripts/bench/run.mjs [options]
//
// Options (all optional):
//   --duration <s>      seconds per throughput run (default 10)
//   --connections <n>   concurrent connections of autocannon (default 10)
//   --starts <n>        start-ups measured, the median is reported (default 5)
//   --ids <n>           Patients created before the read run, read in rotation (default 1000)
//   --log-level <lvl>   LOG_LEVEL of the server (default info, the production default)
//   --sync <mode>       CARNET_SQLITE_SYNC of the server: normal | full (default normal)
//   --token-cache <on|off>  CARNET_TOKEN_CACHE of the server (default on; off verifies every token)
//
// The script starts every server itself (node dist/main.js, PORT=0, a temporary data directory),
// and stops them and removes their directories when done, on error, or on Ctrl-C. Requests carry a
// development bearer token minted here (the server is started without NODE_ENV=production).
// Figures and how to read them: docs/performance.md.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { authorizationFor, cleanup, PROJECT, requireBuild, startServer } from './server.mjs';
const FHIR_JSON = 'application/fhir+json';

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10' },
    starts: { type: 'string', default: '5' },
    ids: { type: 'string', default: '1000' },
    'log-level': { type: 'string', default: 'info' },
    sync: { type: 'string', default: 'normal' },
    'token-cache': { type: 'string', default: 'on' },
  },
});
const positive = (name) => {
  const n = Number(opts[name]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer, got "${opts[name]}"`);
    process.exit(2);
  }
  return n;
};
const duration = positive('duration');
const connections = positive('connections');
const starts = positive('starts');
const idCount = positive('ids');

requireBuild();

// ---- workload ---------------------------------------------------------------------------------

// A realistic Patient (~1 kB): INS identifier, local identifier, names, telecom, address, contact.
// `[<id>]` is replaced by autocannon with a random id, so each create carries its own identifier.
function patientBody(unique) {
  return JSON.stringify({
    resourceType: 'Patient',
    meta: { profile: ['http://interopsante.org/fhir/StructureDefinition/FrPatient'] },
    identifier: [
      { use: 'official', system: 'urn:oid:1.2.250.1.213.1.4.8', value: `INS-${unique}` },
      { use: 'usual', system: 'https://hopital.example.fr/ipp', value: `IPP-${unique}` },
    ],
    active: true,
    name: [
      { use: 'official', family: 'Martin', given: ['Camille', 'Louise'], prefix: ['Mme'] },
      { use: 'maiden', family: 'Bernard' },
    ],
    telecom: [
      { system: 'phone', value: '+33 6 12 34 56 78', use: 'mobile' },
      { system: 'email', value: 'camille.martin@example.fr', use: 'home' },
    ],
    gender: 'female',
    birthDate: '1987-05-21',
    address: [{ use: 'home', line: ['14 avenue Jean Jaurès', 'Bâtiment B'], city: 'Toulouse', postalCode: '31000', country: 'FR' }],
    maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M', display: 'Married' }] },
    contact: [
      {
        relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131', code: 'N', display: 'Next-of-Kin' }] }],
        name: { family: 'Martin', given: ['Paul'] },
        telecom: [{ system: 'phone', value: '+33 6 98 76 54 32' }],
      },
    ],
    communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'fr-FR' }] }, preferred: true }],
  });
}

function run(options) {
  return new Promise((resolve, reject) => {
    autocannon({ connections, duration, ...options }, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

/** Creates `n` Patients with `concurrency` parallel requests; returns their ids. */
async function createPatients(origin, auth, n, concurrency) {
  const ids = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const res = await fetch(`${origin}/fhir/Patient`, {
        method: 'POST',
        headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON, ...auth },
        body: patientBody(`seed-${i}`),
      });
      const body = await res.json();
      if (res.status !== 201) throw new Error(`seeding create answered ${res.status}: ${JSON.stringify(body)}`);
      ids.push(body.id);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ids;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

function row(name, result) {
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

// ---- main -------------------------------------------------------------------------------------

async function main() {
  console.log(`Carnet benchmark: node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${os.platform()} ${os.release()}`);
  const authenticated = fs.existsSync(path.join(PROJECT, 'dist/auth/keys.js'));
  console.log(`server: node dist/main.js, LOG_LEVEL=${opts['log-level']}, CARNET_SQLITE_SYNC=${opts.sync}, CARNET_TOKEN_CACHE=${opts['token-cache']}${authenticated ? ', requests carry a development bearer token' : ''}; load: ${connections} connections, ${duration} s per run\n`);

  // (a) start-up: spawn to listening line, each on an empty data directory.
  const startups = [];
  const selfReported = [];
  for (let i = 0; i < starts; i++) {
    const server = await startServer({ CARNET_SQLITE_SYNC: opts.sync, CARNET_TOKEN_CACHE: opts['token-cache'], LOG_LEVEL: opts['log-level'] });
    startups.push(server.startupMs);
    if (server.selfReportedMs !== undefined) selfReported.push(server.selfReportedMs);
    // One request before stopping: checks that the server answers.
    const res = await fetch(`${server.origin}/fhir/metadata`, { headers: { accept: FHIR_JSON } });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET /fhir/metadata answered ${res.status}`);
    await server.stop();
  }

  const server = await startServer({ CARNET_SQLITE_SYNC: opts.sync, CARNET_TOKEN_CACHE: opts['token-cache'], LOG_LEVEL: opts['log-level'] });
  const auth = await authorizationFor(server);
  // (b) create throughput.
  const create = await run({
    url: `${server.origin}/fhir/Patient`,
    method: 'POST',
    headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON, ...auth },
    body: patientBody('[<id>]'),
    idReplacement: true,
  });
  // (c) read throughput, over ids created beforehand (on top of those of the create run).
  const ids = await createPatients(server.origin, auth, idCount, connections);
  let cursor = 0;
  const read = await run({
    url: server.origin,
    headers: { accept: FHIR_JSON, ...auth },
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => {
          request.path = `/fhir/Patient/${ids[cursor++ % ids.length]}`;
          return request;
        },
      },
    ],
  });
  const dbBytes = fs
    .readdirSync(server.dataDir)
    .reduce((sum, file) => sum + fs.statSync(path.join(server.dataDir, file)).size, 0);
  await server.stop();

  const fmt = (n, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  console.log(`start-up (spawn to listening line, ${starts} starts): median ${fmt(median(startups))} ms, min ${fmt(Math.min(...startups))} ms, max ${fmt(Math.max(...startups))} ms` +
    (selfReported.length ? `; server's own "ready in": median ${fmt(median(selfReported))} ms` : ''));
  console.log('');
  const rows = [row('POST /fhir/Patient (create)', create), row(`GET /fhir/Patient/<id> (read, ${ids.length} ids)`, read)];
  const header = ['scenario', 'req/s avg', 'p50 ms', 'p99 ms', 'requests', 'non-2xx', 'errors'];
  const ms = (n) => (n < 1 ? '<1' : fmt(n)); // autocannon records latency in whole milliseconds
  const cells = rows.map((r) => [r.name, fmt(r.rps), ms(r.p50), ms(r.p99), fmt(r.total), fmt(r.non2xx), fmt(r.errors)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
  console.log(`\ndatabase after the runs: ${fmt(dbBytes / 1024 / 1024, 1)} MiB (${fmt(create.requests.total + ids.length)} creates)`);
  if (create.non2xx > 0 || read.non2xx > 0 || create.errors > 0 || read.errors > 0) {
    console.log(`status codes: create ${JSON.stringify(create.statusCodeStats)}, read ${JSON.stringify(read.statusCodeStats)}`);
  }
}

try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? error.stack : error);
  process.exitCode = 1;
} finally {
  cleanup();
}
