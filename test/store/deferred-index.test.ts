// Deferred index rows (store/sqlite/deferred.ts): a create op with deferIndex commits its version
// and a pending row that keeps its entries; the index rows come later; a stopped process's pending
// versions get their rows at the next open, from the entries their pending row keeps. That every
// search sees them at once, and that an update or a rollback wins, is the port's contract, checked
// on every engine (contract.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import type { WriteOp } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { indexEntries } from '../../src/search/extract.js';
import type { SearchPlan } from '../../src/search/types.js';
import { auditRecord } from '../fixtures/audit-record.js';

const AT = '2026-11-27T15:00:00.000Z';

function fresh(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-deferred-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function record(id: string, patient: string, deferIndex = true): WriteOp {
  const resource = auditRecord(id, patient, AT);
  return { kind: 'create', resource, index: indexEntries(resource), creator: 'carnet:audit', ...(deferIndex ? { deferIndex: true as const } : {}) };
}

const byPatient = (patient: string): SearchPlan => ({ types: ['AuditEvent'], where: [{ kind: 'reference', param: 'patient', values: [{ targetType: 'Patient', targetId: patient }] }], sort: [] });

function indexRows(file: string, id: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    const tables = ['idx_token', 'idx_string', 'idx_date', 'idx_reference', 'idx_uri'];
    return tables.flatMap((table) => db.prepare(`SELECT * FROM ${table} WHERE type = 'AuditEvent' AND id = ?`).all(id).map((row) => `${table} ${JSON.stringify(row)}`)).sort();
  } finally {
    db.close();
  }
}

const pendingRows = (file: string) => {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM index_pending').get() as { n: number }).n;
  } finally {
    db.close();
  }
};

t.test('deferred index rows equal the rows written at once, also when written at open', async (t) => {
  const dir = fresh(t);
  const file = path.join(dir, 'carnet.sqlite');
  const first = new SqliteStore({ dataDir: dir, writer: 'inline' });
  await first.transact([record('now', 'p2', false), record('later', 'p2')], AT);
  t.equal(pendingRows(file), 1, 'the deferred record is pending after its commit');
  t.same(indexRows(file, 'later'), [], 'and has no index rows yet');
  // Another store opening the file finds the pending version, as after a crash of the first.
  const second = new SqliteStore({ dataDir: dir, writer: 'inline' });
  t.equal(pendingRows(file), 0, 'the open wrote the pending rows');
  const strip = (rows: string[]) => rows.map((row) => row.replace(/"id":"(now|later)"/, '"id":"x"'));
  t.same(strip(indexRows(file, 'later')), strip(indexRows(file, 'now')), 'from the entries of the pending row: the same rows');
  // The first store's own materialisation must not write them twice.
  await first.close();
  t.same(strip(indexRows(file, 'later')), strip(indexRows(file, 'now')), 'not written twice');
  await second.close();
});

t.test('a rolled-back deferred record leaves nothing pending', async (t) => {
  const dir = fresh(t);
  const file = path.join(dir, 'carnet.sqlite');
  const store = new SqliteStore({ dataDir: dir, writer: 'inline' });
  t.teardown(() => store.close());
  await store.transact([record('taken', 'p3', false)], AT);
  await t.rejects(store.transact([record('rolled-back', 'p3'), record('taken', 'p3')], AT));
  t.equal(pendingRows(file), 0, 'no pending mark survives the rollback');
});

t.test('the entries written at open are the ones the pending row keeps, not entries computed from the content', async (t) => {
  const dir = fresh(t);
  const first = new SqliteStore({ dataDir: dir, writer: 'inline' });
  const op = record('given', 'p7');
  if (op.kind !== 'create') throw new Error('a create');
  await first.transact([{ ...op, index: [{ kind: 'reference', param: 'patient', group: 0, targetType: 'Patient', targetId: 'elsewhere', url: null }] }], AT);
  const second = new SqliteStore({ dataDir: dir, writer: 'inline' });
  t.teardown(async () => {
    await second.close();
    await first.close();
  });
  t.equal((await second.search(byPatient('elsewhere'), { count: 0, total: true })).total, 1, 'found by the entry given');
  t.equal((await second.search(byPatient('p7'), { count: 0, total: true })).total, 0, 'not by the entries of the content');
});

t.test('a pending row of an older server, without its entries, is refused at open with the way out', async (t) => {
  const dir = fresh(t);
  const file = path.join(dir, 'carnet.sqlite');
  const first = new SqliteStore({ dataDir: dir, writer: 'inline' });
  await first.transact([record('old', 'p8')], AT);
  // What a server from before the entries column leaves: the mark alone.
  const db = new Database(file);
  db.prepare('UPDATE index_pending SET entries = NULL').run();
  db.close();
  t.throws(() => new SqliteStore({ dataDir: dir, writer: 'inline' }), /older Carnet left unindexed.*start that version once/);
  t.equal(pendingRows(file), 1, 'the row is left for that version');
  // The first store's own materialisation (the entries it kept in memory) is unaffected.
  await first.close();
});

t.test('a database from before the entries column gets it at open', async (t) => {
  const dir = fresh(t);
  const file = path.join(dir, 'carnet.sqlite');
  await new SqliteStore({ dataDir: dir, writer: 'inline' }).close();
  const db = new Database(file);
  db.exec('DROP TABLE index_pending; CREATE TABLE index_pending (seq INTEGER PRIMARY KEY)');
  db.close();
  const store = new SqliteStore({ dataDir: dir, writer: 'inline' });
  t.teardown(() => store.close());
  await store.transact([record('after', 'p9')], AT);
  t.equal((await store.search(byPatient('p9'), { count: 0, total: true })).total, 1);
});

t.test('searches of other types do not wait for deferred rows', async (t) => {
  const dir = fresh(t);
  const store = new SqliteStore({ dataDir: dir, writer: 'inline' });
  t.teardown(() => store.close());
  await store.transact([record('quiet', 'p6')], AT);
  await store.search({ types: ['DocumentReference'], where: [], sort: [] }, { count: 1 });
  t.equal(pendingRows(path.join(dir, 'carnet.sqlite')), 1, 'a DocumentReference search left the record pending');
  await store.search({ types: ['DocumentReference'], where: [{ kind: 'has', sourceType: 'AuditEvent', param: 'entity', where: [] }], sort: [] }, { count: 1 });
  t.equal(pendingRows(path.join(dir, 'carnet.sqlite')), 0, 'one with _has:AuditEvent did not');
});
