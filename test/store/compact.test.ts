// The compact AuditEvent of the SQLite engine (store/sqlite/compact.ts, schema 7): the JSON is
// stored deflated with a dictionary and read back as the very same string; only the access log's
// parameters are indexed; a database of schema 6 (AuditEvents as JSON text, every parameter
// indexed) is converted at open and answers the same reads and searches.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import type { AuditEvent } from '@medplum/fhirtypes';
import { auditEvent } from '../../src/audit/event.js';
import { auditEventId } from '../../src/audit/id.js';
import { indexEntries } from '../../src/search/extract.js';
import { parseSearch } from '../../src/search/plan.js';
import { stamped } from '../../src/store/content.js';
import { packContent, unpackContent } from '../../src/store/sqlite/compact.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { SCHEMA_VERSION } from '../../src/store/sqlite/schema.js';

const AT = '2026-12-07T10:00:00.000Z';

function fresh(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-compact-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A professional's read of a document of `patient`, as fhir/audited records it. */
function readRecord(patient: string, document: string): AuditEvent & { id: string } {
  return {
    ...auditEvent({
      actor: { kind: 'practitioner', practitionerId: 'dr-1', rpps: '81000000001', profession: '10', specialty: 'SM54', organizationId: 'org-1', purposeOfUse: 'TREAT', grants: [], clientId: 'lgc', issuer: 'https://auth.example', subject: 's-1' },
      interaction: 'read',
      outcome: 'success',
      patients: [patient],
      resources: [`DocumentReference/${document}`],
      recorded: AT,
      server: 'https://carnet.example/fhir',
      address: '192.0.2.7',
    }),
    id: auditEventId(),
  };
}

/** The patient's own search, with a query string and a non-ASCII value. */
function searchRecord(patient: string): AuditEvent & { id: string } {
  return {
    ...auditEvent({
      actor: { kind: 'patient', patientId: patient, grants: [], issuer: 'https://auth.example', subject: `${patient}-sub` },
      interaction: 'search-type',
      outcome: 'denied',
      reason: 'Accès refusé',
      patients: [patient],
      resources: [],
      type: 'DocumentReference',
      query: `patient=${patient}&description=compte rendu é`,
      recorded: AT,
      server: 'https://carnet.example/fhir',
    }),
    id: auditEventId(),
  };
}

const search = (query: string) => parseSearch(['AuditEvent'], [...new URLSearchParams(query)] as [string, string][], false).plan;

t.test('the compact form reads back as the same JSON string; other types stay text', async (t) => {
  for (const record of [readRecord('p1', 'd1'), searchRecord('p2')]) {
    const json = JSON.stringify(stamped(record, 1, AT));
    const packed = packContent('AuditEvent', json);
    t.ok(Buffer.isBuffer(packed), 'an AuditEvent is stored as bytes');
    t.ok(packed.length * 4 < Buffer.byteLength(json), `${packed.length} bytes for ${Buffer.byteLength(json)} of JSON`);
    t.equal(unpackContent(packed), json, 'inflated, the same string');
  }
  const document = JSON.stringify({ resourceType: 'DocumentReference', id: 'd1', status: 'current' });
  t.equal(packContent('DocumentReference', document), document, 'a DocumentReference is its JSON');
  t.equal(unpackContent(document), document);
  t.throws(() => unpackContent(Buffer.from([99, 1, 2])), /unknown compact form/, 'a form this server does not know is refused, never misread');
});

t.test('a stored AuditEvent is a small BLOB, read, searched and listed as the JSON it was', async (t) => {
  const dir = fresh(t);
  const store = new SqliteStore({ dataDir: dir, writer: 'inline' });
  const records = [readRecord('p1', 'd1'), searchRecord('p1'), readRecord('p2', 'd2')];
  await store.transact(records.map((r) => ({ kind: 'create', resource: r, index: indexEntries(r), creator: 'carnet:audit' })), AT);
  // Through the journal too (the audit group commit's path).
  const journaled = readRecord('p1', 'd3');
  await store.journal!([{ resource: journaled, index: indexEntries(journaled), creator: 'carnet:audit' }], AT);
  records.push(journaled);
  for (const record of records) {
    const read = await store.read('AuditEvent', record.id);
    t.equal(read.kind, 'found');
    if (read.kind === 'found') t.equal(JSON.stringify(read.version.resource), JSON.stringify(stamped(record, 1, AT)), `AuditEvent/${record.id} reads as written, byte for byte`);
  }
  const page = await store.search(search('patient=p1&_sort=-date'), { count: 10, total: true });
  t.equal(page.total, 3, 'the access log of p1 finds its three records');
  t.same(page.matches.map((m) => JSON.stringify(m.resource)).sort(), records.filter((r) => r.entity?.some((e) => e.what?.reference === 'Patient/p1')).map((r) => JSON.stringify(stamped(r, 1, AT))).sort());
  t.equal((await store.search(search('entity=Patient/p2&subtype=read&outcome=0'), { count: 10, total: true })).total, 1, 'entity, subtype and outcome find a record');
  const history = await store.history({ level: 'type', type: 'AuditEvent' }, { count: 10 });
  t.equal(history.versions.length, 4);
  t.ok(history.versions.every((v) => JSON.stringify(v.resource) === JSON.stringify(stamped(records.find((r) => r.id === v.id)!, 1, AT))), 'history lists the same JSON');
  await store.close();

  const db = new Database(path.join(dir, 'carnet.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const rows = db.prepare<[], { kind: string; bytes: number }>("SELECT typeof(content) AS kind, length(content) AS bytes FROM resource_version WHERE type = 'AuditEvent'").all();
  t.ok(rows.every((r) => r.kind === 'blob' && r.bytes < 700), `stored as BLOBs of ${rows.map((r) => r.bytes).join(', ')} bytes`);
  const params = db.prepare<[], { param: string }>("SELECT DISTINCT param FROM idx_token WHERE type = 'AuditEvent' UNION SELECT DISTINCT param FROM idx_reference WHERE type = 'AuditEvent' UNION SELECT DISTINCT param FROM idx_string WHERE type = 'AuditEvent' UNION SELECT DISTINCT param FROM idx_date WHERE type = 'AuditEvent'").all();
  t.same(params.map((p) => p.param).sort(), ['agent', 'date', 'entity', 'outcome', 'patient', 'subtype'], 'only the access log parameters have index rows');
});

t.test('a database of schema 6 is converted at open and answers as before', async (t) => {
  const dir = fresh(t);
  const records = [readRecord('p1', 'd1'), searchRecord('p1'), readRecord('p2', 'd2')];
  const store = new SqliteStore({ dataDir: dir, writer: 'inline' });
  await store.transact(records.map((r) => ({ kind: 'create', resource: r, index: indexEntries(r), creator: 'carnet:audit' })), AT);
  await store.close();
  // Made into what schema 6 wrote: the JSON as text and index rows of every parameter.
  const old = new Database(path.join(dir, 'carnet.sqlite'));
  const rows = old.prepare<[], { seq: number; content: Buffer }>("SELECT seq, content FROM resource_version WHERE type = 'AuditEvent'").all();
  for (const row of rows) old.prepare('UPDATE resource_version SET content = ? WHERE seq = ?').run(unpackContent(row.content), row.seq);
  const insert = old.prepare("INSERT INTO idx_token (type, id, param, grp, system, code, text) VALUES ('AuditEvent', ?, ?, 0, ?, ?, NULL)");
  for (const r of records) {
    insert.run(r.id, 'type', 'http://terminology.hl7.org/CodeSystem/audit-event-type', 'rest');
    insert.run(r.id, 'entity-type', 'http://terminology.hl7.org/CodeSystem/audit-entity-type', '2');
    insert.run(r.id, 'agent:identifier', 'urn:carnet:client', 'lgc');
  }
  old.pragma('user_version = 6');
  old.close();

  const reopened = new SqliteStore({ dataDir: dir, writer: 'inline' });
  for (const record of records) {
    const read = await reopened.read('AuditEvent', record.id);
    t.equal(read.kind === 'found' && JSON.stringify(read.version.resource), JSON.stringify(stamped(record, 1, AT)), `AuditEvent/${record.id} reads as before`);
  }
  t.equal((await reopened.search(search('patient=p1'), { count: 10, total: true })).total, 2, 'the access log of p1 finds its records');
  await reopened.close();
  const db = new Database(path.join(dir, 'carnet.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION, `schema ${SCHEMA_VERSION}`);
  t.equal((db.prepare("SELECT count(*) AS n FROM resource_version WHERE type = 'AuditEvent' AND typeof(content) = 'text'").get() as { n: number }).n, 0, 'no AuditEvent left as text');
  t.equal((db.prepare("SELECT count(*) AS n FROM idx_token WHERE type = 'AuditEvent' AND param IN ('type', 'entity-type', 'agent:identifier')").get() as { n: number }).n, 0, 'the rows of parameters no longer searched are gone');
  t.ok((db.prepare("SELECT count(*) AS n FROM idx_token WHERE type = 'AuditEvent' AND param = 'subtype'").get() as { n: number }).n >= 3, 'the subtype rows stay');
});

t.test('a search of several types keeps the parameters of every resource on AuditEvent', async (t) => {
  const parsed = parseSearch(['AuditEvent', 'Patient'], [['_lastUpdated', 'gt2020-01-01'], ['_tag', 'x'], ['_security', 'y']], false);
  t.same(parsed.plan.where.map((c) => (c as { param?: string }).param), ['_lastUpdated', '_tag', '_security']);
  t.throws(() => parseSearch(['AuditEvent', 'Patient'], [['address', 'x']], false), /AuditEvent is searched by/, 'an AuditEvent parameter no longer searched is refused');
});
