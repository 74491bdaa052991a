#!/usr/bin/env node
// Storage benchmark of the embedded engine (not a test): bytes on disk per current
// DocumentReference, per extra version, per AuditEvent (access record) and per index row, and the
// projection to a national deployment. Requires a build first:
//   npm run build && node scripts/bench/storage.mjs [options]
//
// Options (all optional):
//   --documents <n>   DocumentReferences created (default 2000), on --patients patients
//   --patients <n>    Patients (default 250)
//   --versions <n>    updates per document, each a new version (default 1)
//   --accesses <n>    access records (AuditEvents) per document (default 10)
//   --docs-total <n>  documents of the projection (default 250,000,000)
//   --years <n>       years of access records kept (default 10)
//   --per-year <n>    accesses per document per year in the projection (default 4)
//   --keep            keep the data directory (its path is printed)
//
// The store is written exactly as the server writes it: a SqliteStore on a data directory (file,
// WAL), resources through transact() with the index entries search/extract computes, access
// records built by audit/event (the same facts fhir/audited gives it: a professional's read of a
// document, the patient's read, the patient's search of their documents) and written through
// journal() (the audit group commit's path; taken into the database by the writer thread). Each
// phase is measured with SQLite's dbstat virtual table (bytes of every table and index, pages
// included in full), after a checkpoint, as the difference from the phase before.
// Figures and how to read them: docs/performance.md (Storage).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { PROJECT, requireBuild } from './server.mjs';

const { values: opts } = parseArgs({
  options: {
    documents: { type: 'string', default: '2000' },
    patients: { type: 'string', default: '250' },
    versions: { type: 'string', default: '1' },
    accesses: { type: 'string', default: '10' },
    'docs-total': { type: 'string', default: '250000000' },
    years: { type: 'string', default: '10' },
    'per-year': { type: 'string', default: '4' },
    keep: { type: 'boolean', default: false },
  },
});
const count = (name, min = 1) => {
  const n = Number(opts[name]);
  if (!Number.isFinite(n) || n < min) {
    console.error(`--${name} must be a number >= ${min}`);
    process.exit(2);
  }
  return n;
};
const documents = count('documents');
const patients = Math.min(count('patients'), documents);
const versions = count('versions', 0);
const accesses = count('accesses', 0);

requireBuild();
const dist = (file) => import(path.join(PROJECT, 'dist', file));
const { SqliteStore } = await dist('store/sqlite/index.js');
const { indexEntries } = await dist('search/extract.js');
const { auditEvent, AUDIT_CREATOR } = await dist('audit/event.js');
const { auditEventId } = await dist('audit/id.js');

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-storage-'));
const store = new SqliteStore({ dataDir });
const SERVER = 'https://carnet.example.fr/fhir';
const at = (ms) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString();
const uuid = (prefix, n) => `${prefix}${n.toString(16).padStart(8, '0')}-4f1c-8a2e-${(n * 7919).toString(16).padStart(12, '0')}`;

const patientIds = Array.from({ length: patients }, (_, i) => uuid('', i + 1));
const documentIds = Array.from({ length: documents }, (_, i) => uuid('', 0x10000000 + i));

function documentOf(n, status = 'current') {
  const patient = patientIds[n % patients];
  return {
    resourceType: 'DocumentReference',
    id: documentIds[n],
    masterIdentifier: { system: 'urn:ietf:rfc:3986', value: `urn:oid:1.2.250.1.213.1.1.9.${100000 + n}` },
    status,
    type: { coding: [{ system: 'http://loinc.org', code: '11502-2', display: 'Laboratory report' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '11502-2' }] }],
    subject: { reference: `Patient/${patient}` },
    date: at(n * 1000),
    author: [{ reference: 'Organization/lab-1' }, { reference: `Practitioner/pr-${n % 50}` }],
    securityLabel: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N' }] }],
    content: [
      {
        attachment: { contentType: 'application/pdf', language: 'fr-FR', url: `Binary/${uuid('b', n)}`, size: 48213, hash: 'q1MKE+RZFJgrefm34/uplM/R8/s=', creation: at(n * 1000) },
        format: { system: 'http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode', code: 'urn:ihe:iti:xds-sd:pdf:2008' },
      },
    ],
    context: {
      facilityType: { coding: [{ system: 'http://snomed.info/sct', code: '82242000' }] },
      practiceSetting: { coding: [{ system: 'http://snomed.info/sct', code: '408467006' }] },
      sourcePatientInfo: { reference: `Patient/${patient}` },
    },
  };
}

const practitioner = (n) => ({
  kind: 'practitioner',
  practitionerId: `pr-${n % 50}`,
  rpps: `8100000${String(n % 50).padStart(4, '0')}`,
  profession: '10',
  specialty: 'SM54',
  organizationId: `org-${n % 7}`,
  purposeOfUse: 'TREAT',
  grants: [],
  clientId: 'dmp-client-lgc',
  issuer: 'https://auth.esante.gouv.fr/auth/realms/esante-wallet',
  subject: `f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:ANS/${n % 50}`,
});
const patientActor = (patient) => ({ kind: 'patient', patientId: patient, grants: [], clientId: 'mon-espace-sante', issuer: 'https://auth.monespacesante.fr', subject: `${patient}-sub` });

/** The k-th access to document n: a professional's read (60%), the patient's read (20%), the patient's search (20%). */
function accessOf(n, k) {
  const patient = patientIds[n % patients];
  const recorded = at(n * 1000 + k * 86_400_000 + 17);
  const common = { outcome: 'success', patients: [patient], recorded, server: SERVER, address: `192.0.2.${(n + k) % 250}` };
  const kind = k % 5;
  if (kind < 3) return auditEvent({ ...common, actor: practitioner(n + k), interaction: 'read', resources: [`DocumentReference/${documentIds[n]}`], type: 'DocumentReference' });
  if (kind === 3) return auditEvent({ ...common, actor: patientActor(patient), interaction: 'read', resources: [`DocumentReference/${documentIds[n]}`], type: 'DocumentReference' });
  return auditEvent({ ...common, actor: patientActor(patient), interaction: 'search-type', resources: [`DocumentReference/${documentIds[n]}`], type: 'DocumentReference', query: `patient=${patient}&_sort=-date&_count=20` });
}

// ---------------------------------------------------------------------------------------------
// Measuring

const db = new Database(path.join(dataDir, 'carnet.sqlite'), { readonly: true });
/** Bytes of each table and index (dbstat), after the WAL is in the database file. */
async function sizes() {
  const rw = new Database(path.join(dataDir, 'carnet.sqlite'));
  rw.pragma('busy_timeout = 5000');
  rw.pragma('wal_checkpoint(TRUNCATE)');
  rw.close();
  const rows = db.prepare('SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name').all();
  return new Map(rows.map((r) => [r.name, r.bytes]));
}
const total = (m) => [...m.values()].reduce((a, b) => a + b, 0);
const diff = (after, before) => new Map([...after].map(([name, bytes]) => [name, bytes - (before.get(name) ?? 0)]).filter(([, b]) => b !== 0));
const indexRows = (type) => {
  let n = 0;
  for (const table of ['idx_token', 'idx_string', 'idx_date', 'idx_number', 'idx_quantity', 'idx_reference', 'idx_uri']) n += db.prepare(`SELECT count(*) AS n FROM ${table} WHERE type = ?`).get(type).n;
  return n;
};
const isIndex = (name) => name.startsWith('idx_');
const sumWhere = (m, pred) => [...m].filter(([name]) => pred(name)).reduce((a, [, b]) => a + b, 0);
const kib = (bytes) => `${(bytes / 1024).toFixed(2)} KiB`;
const human = (bytes) => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) {
    bytes /= 1024;
    i++;
  }
  return `${bytes.toFixed(1)} ${units[i]}`;
};

// ---------------------------------------------------------------------------------------------
// Filling

const BATCH = 200;
async function inBatches(n, op) {
  for (let start = 0; start < n; start += BATCH) {
    const ops = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) ops.push(op(i));
    await store.transact(ops, at(start));
  }
}

try {
  const empty = await sizes();
  await inBatches(documents, (n) => {
    const resource = documentOf(n);
    return { kind: 'create', resource, index: indexEntries(resource), creator: 'system:lab' };
  });
  const afterDocs = await sizes();
  for (let v = 0; v < versions; v++) {
    await inBatches(documents, (n) => {
      const resource = { ...documentOf(n), description: `revision ${v + 1}` };
      return { kind: 'update', resource, index: indexEntries(resource), creator: 'system:lab' };
    });
  }
  const afterVersions = await sizes();
  const docIndexRows = indexRows('DocumentReference');
  for (let k = 0; k < accesses; k++) {
    for (let start = 0; start < documents; start += BATCH) {
      const entries = [];
      for (let n = start; n < Math.min(documents, start + BATCH); n++) {
        const record = { ...accessOf(n, k), id: auditEventId() };
        entries.push({ resource: record, index: indexEntries(record), creator: AUDIT_CREATOR });
      }
      await store.journal(entries, at(start));
    }
  }
  // The records are in the database once something could read them: a search of AuditEvents.
  await store.history({ level: 'type', type: 'AuditEvent' }, { count: 1 });
  await store.close();
  const afterAudit = await sizes();

  const docs = diff(afterDocs, empty);
  const vers = diff(afterVersions, afterDocs);
  const audit = diff(afterAudit, afterVersions);
  const auditCount = documents * accesses;
  const auditIndexRows = indexRows('AuditEvent');

  console.log(`node ${process.version}; SQLite ${db.prepare('SELECT sqlite_version() AS v').get().v}; page size ${db.pragma('page_size', { simple: true })}`);
  console.log(`${documents} DocumentReferences of ${patients} patients, ${versions} update(s) each, ${accesses} access records each (${auditCount} AuditEvents)\n`);
  const line = (what, bytes, n, rows, rowBytes) =>
    console.log(`${what.padEnd(28)} ${kib(bytes / n).padStart(11)} each   (index rows: ${rows === undefined ? '-' : (rows / n).toFixed(1)} each, ${rowBytes === undefined ? '-' : `${Math.round(rowBytes / Math.max(rows, 1))} B/row`})`);
  line('current DocumentReference', total(docs), documents, docIndexRows, sumWhere(docs, isIndex));
  if (versions > 0) line('version (update)', total(vers), documents * versions, undefined, undefined);
  if (accesses > 0) line('AuditEvent (all-in)', total(audit), auditCount, auditIndexRows, sumWhere(audit, isIndex));
  const byParam = ['idx_token', 'idx_string', 'idx_date', 'idx_reference', 'idx_uri']
    .flatMap((table) => db.prepare(`SELECT param, count(*) AS n FROM ${table} WHERE type = 'AuditEvent' GROUP BY param`).all())
    .sort((a, b) => b.n - a.n);
  console.log(`\nAuditEvent index rows by parameter: ${byParam.map((r) => `${r.param} ${(r.n / auditCount).toFixed(2)}`).join(', ')}`);
  console.log('\nAuditEvent bytes by table and index:');
  for (const [name, bytes] of [...audit].sort((a, b) => b[1] - a[1])) console.log(`  ${name.padEnd(40)} ${String(Math.round(bytes / Math.max(auditCount, 1))).padStart(6)} B/record`);

  const docsTotal = count('docs-total');
  const years = count('years');
  const perYear = count('per-year', 0);
  const records = docsTotal * years * perYear;
  const docBytes = docsTotal * (total(docs) / documents + (versions > 0 ? (versions * total(vers)) / (documents * versions) : 0));
  const auditBytes = accesses > 0 ? (records * total(audit)) / auditCount : 0;
  console.log(`\nProjection: ${docsTotal.toLocaleString('en')} documents with ${versions} update(s) each; ${perYear} accesses per document per year for ${years} years (${records.toLocaleString('en')} AuditEvents)`);
  console.log(`  documents and versions ${human(docBytes)}; access records ${human(auditBytes)}; total ${human(docBytes + auditBytes)} (without blobs: document bytes are files, docs/performance.md)`);
} finally {
  db.close();
  if (opts.keep) console.log(`\ndata directory kept: ${dataDir}`);
  else fs.rmSync(dataDir, { recursive: true, force: true });
}
