#!/usr/bin/env node
// Enrolment at national scale (not a test). Requires a build:
//   npm run build && node scripts/bench/enrol.mjs --people 1000000 --batch 10000 [--seed 1] [--concurrency 1] [--out enrol.json]
//
// Starts the real server (dist/main.js) on a fresh data directory (file store, default settings),
// generates --people people with the seeded population (accounts/population: INS with a valid key,
// French names, birth dates over a century, about a fifth minors with one or two representatives),
// and enrols them through HTTP in calls of --batch people (POST /fhir/Patient/$enrol, as the
// insurer's feed: a system token allowed to create Patients and RelatedPersons), --concurrency
// calls at a time (distinct people), a progress bar showing people per second and the ETA. Then sends the first batch again
// (every person answered `existing`), stops the server, and reports people per second, the bytes
// of the data directory per account, and the SQLite pages of each table (dbstat). Writes a JSON
// result (--out).

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import Database from 'better-sqlite3';
import { authorizationFor, cleanup, PROJECT, requireBuild, startServer } from './server.mjs';

const { values: opts } = parseArgs({ options: { people: { type: 'string', default: '50000' }, batch: { type: 'string', default: '10000' }, seed: { type: 'string', default: '1' }, out: { type: 'string', default: 'enrol-bench.json' }, concurrency: { type: 'string', default: '1' } } });
const total = Number(opts.people);
const size = Number(opts.batch);
const seed = Number(opts.seed);
const concurrency = Math.max(1, Number(opts.concurrency));
if (!(total > 0 && size > 0 && size <= 10_000)) {
  console.error('--people > 0 and 0 < --batch <= 10000');
  process.exit(2);
}
requireBuild();
const { population, enrolParameters } = await import(pathToFileURL(path.join(PROJECT, 'dist/accounts/population.js')).href);
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
const today = new Date().toISOString().slice(0, 10);
console.log(`enrol bench: ${total} people in calls of ${size} (${concurrency} at a time), seed ${seed}; ${os.cpus().length} cores (${os.cpus()[0].model}), load ${load()}`);

const server = await startServer();
// However the bench ends (a failed call too), the server and its data directory go with it.
process.on('exit', () => cleanup());
const headers = {
  ...(await authorizationFor(server, { kind: 'system', clientId: 'cnam-feed', scope: 'system/Patient.c system/RelatedPerson.c' })),
  'content-type': 'application/fhir+json',
  accept: 'application/fhir+json',
};
const url = `${server.origin}/fhir/Patient/$enrol`;

/** POST to $enrol with node:http, without a timeout (fetch gives up after 300 s on a loaded machine). */
function post(body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One $enrol call: its outcomes counted, its time and body size. */
async function call(batch) {
  const body = JSON.stringify(enrolParameters(batch));
  const t0 = performance.now();
  const res = await post(body);
  const text = res.text;
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`$enrol answered ${res.status}: ${text.slice(0, 500)}`);
  const outcomes = { created: 0, existing: 0 };
  for (const result of JSON.parse(text).parameter ?? []) outcomes[result.part.find((p) => p.name === 'outcome').valueCode]++;
  return { ms, bytes: body.length, outcomes };
}

const bar = new cliProgress.SingleBar(
  { format: 'enrolling [{bar}] {percentage}% | {value}/{total} people | {rate} people/s | ETA {eta_formatted}', etaBuffer: 20, hideCursor: true, noTTYOutput: true, notTTYSchedule: 10_000 },
  cliProgress.Presets.shades_classic,
);
bar.start(total, 0, { rate: '-' });
const people = population({ seed, today });
const calls = [];
let first;
let sent = 0;
let done = 0;
let representatives = 0;
const t0 = performance.now();
/** One feed connection: takes the next batch of the population until every person was sent. */
async function feed() {
  while (sent < total) {
    const batch = [];
    while (batch.length < Math.min(size, total - sent)) batch.push(people.next().value);
    sent += batch.length;
    first ??= batch;
    representatives += batch.reduce((n, p) => n + p.representatives.length, 0);
    const result = await call(batch);
    if (result.outcomes.created !== batch.length) throw new Error(`expected ${batch.length} created, got ${JSON.stringify(result.outcomes)}`);
    calls.push(result);
    done += batch.length;
    bar.update(done, { rate: Math.round(done / ((performance.now() - t0) / 1000)) });
  }
}
await Promise.all(Array.from({ length: concurrency }, () => feed()));
const seconds = (performance.now() - t0) / 1000;
bar.stop();
const again = await call(first);
if (again.outcomes.existing !== first.length) throw new Error(`the first batch again: expected ${first.length} existing, got ${JSON.stringify(again.outcomes)}`);
await server.stop();

// Storage, once the server has stopped (its WAL checkpointed into the database file).
const files = [];
const walk = (dir) => {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(file);
    else files.push({ file: path.relative(server.dataDir, file), bytes: fs.statSync(file).size });
  }
};
walk(server.dataDir);
const dataBytes = files.reduce((n, f) => n + f.bytes, 0);
let tables;
try {
  const db = new Database(path.join(server.dataDir, 'carnet.sqlite'), { readonly: true });
  const rows = db.prepare("SELECT s.name AS btree, COALESCE(m.tbl_name, s.name) AS tbl, SUM(s.pgsize) AS bytes FROM dbstat s LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY s.name").all();
  db.close();
  const byTable = new Map();
  for (const row of rows) {
    const entry = byTable.get(row.tbl) ?? { table: row.tbl, bytes: 0, indexBytes: 0 };
    if (row.btree === row.tbl) entry.bytes += row.bytes;
    else entry.indexBytes += row.bytes;
    byTable.set(row.tbl, entry);
  }
  tables = [...byTable.values()].map((e) => ({ ...e, perAccount: Math.round((e.bytes + e.indexBytes) / total) })).sort((a, b) => b.bytes + b.indexBytes - (a.bytes + a.indexBytes));
} catch (error) {
  tables = `dbstat unavailable: ${error.message}`;
}
cleanup();

const times = calls.map((c) => c.ms).sort((a, b) => a - b);
const result = {
  date: new Date().toISOString(),
  machine: { cores: os.cpus().length, model: os.cpus()[0].model, node: process.version, loadAfter: load() },
  people: total,
  batch: size,
  concurrency,
  seed,
  representatives,
  seconds: Math.round(seconds * 10) / 10,
  peoplePerSecond: Math.round(total / seconds),
  call: { count: calls.length, medianMs: Math.round(times[Math.floor(times.length / 2)]), maxMs: Math.round(times[times.length - 1]), bodyBytes: calls[0].bytes },
  sameBatchAgainMs: Math.round(again.ms),
  storage: { dataBytes, bytesPerAccount: Math.round(dataBytes / total), files, tables },
};
fs.writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
const mib = (n) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
console.log(`\n${total} people (${representatives} representatives) in ${result.seconds} s: ${result.peoplePerSecond} people/s`);
console.log(`calls of ${size}: median ${result.call.medianMs} ms, max ${result.call.maxMs} ms, body ${mib(result.call.bodyBytes)}; the first batch again (all existing): ${result.sameBatchAgainMs} ms`);
console.log(`storage: ${mib(dataBytes)} in the data directory, ${result.storage.bytesPerAccount} bytes per account`);
if (Array.isArray(tables)) for (const e of tables.slice(0, 12)) console.log(`  ${e.table.padEnd(28)} ${mib(e.bytes).padStart(10)} + indexes ${mib(e.indexBytes).padStart(10)}  ${e.perAccount} B/account`);
console.log(`result written to ${opts.out}`);
