// Sizing of the MongoDB engine's storage (not a test; docs/performance.md quotes its output):
//   node --import tsx scripts/bench/mongo-sizing.ts
// Maps the DocumentReference examples of test/fixtures/data (French PDSm/PDSm4DMP, IHE MHD/BALP, HL7 R4)
// to the documents store/mongo writes (the current document with its index entries, and its first
// version), measures their BSON size with the bson package, counts the keys each index of
// store/mongo/indexes gets per document and their uncompressed size, and extrapolates per million.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { BSON } from 'bson';
import type { DocumentReference } from '@medplum/fhirtypes';
import { indexEntries } from '../../src/search/extract.js';
import { stamped } from '../../src/store/content.js';
import { currentDocument, patientKey, versionDocument } from '../../src/store/mongo/documents.js';
import { INDEXES } from '../../src/store/mongo/indexes.js';

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DATA = process.env.CARNET_FIXTURE_DATA ?? path.join(PROJECT, 'test/fixtures/data');

function examples(): { file: string; doc: DocumentReference }[] {
  const found: { file: string; doc: DocumentReference }[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/^DocumentReference.*\.json$/.test(entry.name)) {
        const doc = JSON.parse(fs.readFileSync(full, 'utf8')) as DocumentReference;
        if (doc.resourceType === 'DocumentReference') found.push({ file: path.relative(DATA, full), doc });
      }
    }
  };
  for (const dir of ['fr', 'mhd', 'balp', 'r4-examples/DocumentReference']) walk(path.join(DATA, dir));
  return found;
}

/** The values an index key holds for one document: one key per array element for multikey indexes. */
function keysOf(doc: Record<string, unknown>, key: Record<string, unknown>): number[] {
  const fields = Object.keys(key);
  const array = fields.find((f) => f.includes('.'))?.split('.')[0];
  const value = (source: Record<string, unknown>, field: string) => BSON.calculateObjectSize({ v: source[field] ?? null }) - 5;
  const elements = array ? ((doc[array] as Record<string, unknown>[] | undefined) ?? []) : [doc];
  if (array && elements.length === 0) return [];
  // Each key: its field values, plus the record id (8 bytes) and about 4 bytes of key framing.
  return elements.map((element) => fields.reduce((sum, f) => sum + (f.includes('.') ? value(element, f.split('.')[1]) : value(doc, f)), 0) + 12);
}

const at = '2026-01-01T00:00:00.000Z';
const rows = examples().map(({ file, doc }, i) => {
  const resource = { ...doc, id: doc.id ?? `doc-${i}`, subject: doc.subject ?? { reference: 'Patient/7f3a2c1e-1b2d-4e5f-9a8b-0c1d2e3f4a5b' } } as DocumentReference & { id: string };
  const index = indexEntries(resource);
  const version = { type: 'DocumentReference', id: resource.id, versionId: 1, lastUpdated: at, deleted: false, resource: stamped(resource, 1, at) };
  const patient = patientKey('DocumentReference', resource.id, index);
  const current = currentDocument(version, index, 'client:hospital-a', patient) as unknown as Record<string, unknown>;
  const versionDoc = { _id: new BSON.ObjectId(), ...versionDocument(version, patient) };
  const indexKeys = Object.fromEntries(INDEXES.resources.map((spec) => [spec.name!, keysOf(current, spec.key as Record<string, unknown>)]));
  return { file, id: current._id as string, entries: index.length, current: BSON.calculateObjectSize(current), version: BSON.calculateObjectSize(versionDoc), bson: BSON.serialize(current), indexKeys };
});

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const MB = 1024 * 1024;
console.log(`DocumentReference examples measured: ${rows.length}`);
console.log('file | index entries | current doc bytes | version doc bytes');
for (const row of rows) console.log(`${row.file} | ${row.entries} | ${row.current} | ${row.version}`);
const current = mean(rows.map((r) => r.current));
const version = mean(rows.map((r) => r.version));
// Each document alone (WiredTiger compresses pages of several documents, so this is the pessimistic side).
const compressed = mean(rows.map((r) => zlib.deflateSync(r.bson, { level: 6 }).length / r.bson.length));
console.log(`\nmean: ${rows.length} docs, ${mean(rows.map((r) => r.entries)).toFixed(1)} index entries, current ${current.toFixed(0)} B, first version ${version.toFixed(0)} B`);
console.log(`per million DocumentReferences (one version each), uncompressed BSON: resources ${(current * 1e6 / MB).toFixed(0)} MiB, versions ${(version * 1e6 / MB).toFixed(0)} MiB`);
console.log(`block compression (zlib level 6, each document alone; MongoDB's zlib and zstd block compressors give about this, the default snappy less): ${(compressed * 100).toFixed(0)}% of BSON`);
console.log('\nindex | keys per document | uncompressed key bytes per million documents (MiB)');
let total = 0;
for (const spec of INDEXES.resources) {
  const keys = mean(rows.map((r) => r.indexKeys[spec.name!].length));
  const bytes = mean(rows.map((r) => r.indexKeys[spec.name!].reduce((a, b) => a + b, 0)));
  total += bytes;
  console.log(`${spec.name} | ${keys.toFixed(1)} | ${(bytes * 1e6 / MB).toFixed(0)}`);
}
const idBytes = mean(rows.map((r) => BSON.calculateObjectSize({ v: r.id }) + 12));
total += idBytes;
console.log(`_id | 1 | ${(idBytes * 1e6 / MB).toFixed(0)}`);
console.log(`all resources indexes, uncompressed: ${(total * 1e6 / MB).toFixed(0)} MiB per million DocumentReferences (WiredTiger prefix compression typically halves this or better)`);
