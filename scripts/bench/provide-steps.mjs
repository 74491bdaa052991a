#!/usr/bin/env node
// Where an ITI-65 push spends the answering thread's time, step by step (not a test): times, in
// this process, the compiled code each step of a Provide Document Bundle runs, on the Bundle the
// MHD benchmark pushes (scripts/bench/mhd.mjs), N times each, and prints µs per push. The steps
// are those a push takes in order: read the JSON (depth check, JSON.parse), the R4 schema of each
// entry, the MHD profiles, base64 decode and SHA-1 of the PDF, the index rows of each resource,
// the blob write with its fsync, and one commit of the same rows on a SQLite store.
// Requires a build first:  npm run build && node scripts/bench/provide-steps.mjs [--size 100] [--n 200]
// --dist <dir> times another build's compiled code (a worktree's dist/) for a before/after comparison.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { PROJECT, requireBuild } from './server.mjs';
import { provideBundle, pdf } from './mhd-bundle.mjs';

const { values: opts } = parseArgs({ options: { size: { type: 'string', default: '100' }, n: { type: 'string', default: '200' }, dist: { type: 'string', default: path.join(PROJECT, 'dist') } } });
const size = Number(opts.size) * 1024;
const n = Number(opts.n);
requireBuild();
const dist = (file) => import(pathToFileURL(path.resolve(opts.dist, file)).href);

const [{ parseJson }, { schemaIssues }, { validateProfile }, { indexEntries }, { FileBlobs }, { SqliteStore }] = await Promise.all(
  ['fhir/media.js', 'fhir/validate.js', 'fhir/profiles.js', 'search/extract.js', 'store/sqlite/blobs.js', 'store/sqlite/index.js'].map(dist),
);

// Flat strings, as a body read from the socket is (a replaceAll result may be a rope).
const texts = Array.from({ length: 20 }, (_, i) => Buffer.from(provideBundle(pdf(size)).replaceAll('__UID__', String(i))).toString('utf8'));
const bundles = texts.map((t) => JSON.parse(t));
const entry = (bundle, type) => bundle.entry.find((e) => e.resource.resourceType === type).resource;
const MHD = 'https://profiles.ihe.net/ITI/MHD/StructureDefinition/';

/** Mean µs of `step(i)` over n calls (after n/10 untimed warm-up calls). */
async function time(step) {
  for (let i = 0; i < Math.max(5, n / 10); i++) await step(i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await step(i);
  return ((performance.now() - t0) * 1000) / n;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-provide-steps-'));
const blobs = new FileBlobs(path.join(dir, 'b'));
const store = new SqliteStore({ dataDir: path.join(dir, 's') });
const rows = [];
try {
  const at = (i) => bundles[i % bundles.length];
  rows.push(['JSON: depth check + JSON.parse of the body', await time((i) => parseJson(texts[i % texts.length]))]);
  rows.push(['JSON.parse alone', await time((i) => JSON.parse(texts[i % texts.length]))]);
  rows.push(['R4 schema, the 3 entries (Binary with its base64)', await time((i) => at(i).entry.forEach((e) => schemaIssues(e.resource)))]);
  rows.push(['MHD profiles: SubmissionSet + DocumentReference', await time((i) => {
    validateProfile(entry(at(i), 'List'), `${MHD}IHE.MHD.Comprehensive.SubmissionSet`);
    validateProfile(entry(at(i), 'DocumentReference'), `${MHD}IHE.MHD.Comprehensive.DocumentReference`);
  })]);
  rows.push(['base64 decode of the PDF', await time((i) => Buffer.from(entry(at(i), 'Binary').data, 'base64'))]);
  const bytes = bundles.map((b) => Buffer.from(entry(b, 'Binary').data, 'base64'));
  rows.push(['SHA-1 of the PDF', await time((i) => crypto.createHash('sha1').update(bytes[i % bytes.length]).digest('base64'))]);
  for (const type of ['List', 'DocumentReference', 'Binary']) {
    rows.push([`index entries (FHIRPath) of the ${type}`, await time((i) => indexEntries({ ...entry(at(i), type) }))]);
  }
  let k = 0;
  rows.push(['blob write: temp file, SHA-256 + SHA-1, fsync, rename, folder fsync', await time(() => blobs.put(Buffer.concat([bytes[0], Buffer.from(String(k++))])))]);
  const docs = bundles.map((b) => ['List', 'DocumentReference'].map((t) => ({ ...entry(b, t) })));
  let m = 0;
  rows.push(['commit: 3 creates with their index rows (SQLite writer thread)', await time(async () => {
    const ops = docs[m % docs.length].map((r) => ({ kind: 'create', resource: { ...r, id: `r${m}-${r.resourceType}` }, index: indexEntries({ ...r }) }));
    ops.push({ kind: 'create', resource: { resourceType: 'Binary', id: `b${m}`, contentType: 'application/pdf' }, index: [] });
    m++;
    await store.transact(ops, new Date().toISOString());
  })]);
} finally {
  await store.close();
  blobs.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(`Provide Document Bundle steps, ${size / 1024} KiB PDF, ${n} runs each, node ${process.version}, ${opts.dist}\n`);
for (const [name, us] of rows) console.log(`${name.padEnd(72)} ${us.toFixed(0).padStart(7)} µs`);
