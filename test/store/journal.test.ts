// The audit journal of the SQLite engine (store/sqlite/journal.ts): Store.journal() appends records
// to a file and resolves; the writer thread takes them into the database in the background; a
// stopped process's files are taken in by the next open (complete lines only, each record once,
// with the index entries the line holds); a live one's are left alone; files past their size are
// finished, taken in and deleted; close() leaves no journal. That every kind of read sees a record
// at once is the port's contract, checked on every engine (contract.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import type { JournalEntry } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { indexEntries } from '../../src/search/extract.js';
import type { SearchPlan } from '../../src/search/types.js';
import { auditRecord } from '../fixtures/audit-record.js';

const AT = '2026-11-27T16:00:00.000Z';

function fresh(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-journal-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function record(id: string, patient: string, agent = 'gp'): JournalEntry {
  const resource = auditRecord(id, patient, AT, agent);
  return { resource, index: indexEntries(resource), creator: 'carnet:audit' };
}

const byPatient = (patient: string): SearchPlan => ({ types: ['AuditEvent'], where: [{ kind: 'reference', param: 'patient', values: [{ targetType: 'Patient', targetId: patient }] }], sort: [] });

/** What a second connection (not the store's) finds in the database file. */
function inDatabase(dir: string, sql: string): number {
  const db = new Database(path.join(dir, 'carnet.sqlite'), { readonly: true });
  try {
    return (db.prepare(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
}
const storedRecords = (dir: string) => inDatabase(dir, "SELECT count(*) AS n FROM resource_current WHERE type = 'AuditEvent'");
const journalFiles = (dir: string) => (fs.existsSync(path.join(dir, 'journal')) ? fs.readdirSync(path.join(dir, 'journal')) : []);

t.test('the writer takes the journal in without being asked, and close leaves no journal', async (t) => {
  const dir = fresh(t);
  const store = new SqliteStore({ dataDir: dir });
  for (let i = 0; i < 20; i++) await store.journal([record(`b${i}`, 'p1'), record(`c${i}`, 'p1')], AT);
  t.equal(journalFiles(dir).length, 1, 'one journal file');
  let waited = 0;
  while (storedRecords(dir) < 40 && waited < 5000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    waited += 20;
  }
  t.equal(storedRecords(dir), 40, 'every record reached the database with no read asking for it');
  await store.journal([record('last', 'p1')], AT);
  await store.close();
  t.equal(storedRecords(dir), 41, 'close took in the last record');
  t.same(journalFiles(dir), [], 'no journal file is left');
  t.equal(inDatabase(dir, 'SELECT count(*) AS n FROM journal_applied'), 0, 'nor any journal position');
});

t.test('files past their size are finished, taken in and deleted', async (t) => {
  const dir = fresh(t);
  const store = new SqliteStore({ dataDir: dir, journalLimits: { fileBytes: 2000 } });
  t.teardown(() => store.close());
  for (let i = 0; i < 30; i++) await store.journal([record(`r${i}`, 'p1'), record(`s${i}`, 'p1')], AT);
  t.ok(journalFiles(dir).length > 3, `${journalFiles(dir).length} files written`);
  t.equal((await store.search(byPatient('p1'), { count: 0, total: true })).total, 60, 'every record of every file is found');
  t.same(journalFiles(dir).length, 1, 'the finished files are deleted once taken in; the open one stays');
});

/** Lines a process that is gone (pid 2^22 + 1 is above Linux's pid limit) left in its journal. */
function orphan(dir: string, lines: string[], torn = ''): string {
  const name = `${2 ** 22 + 1}-dead0001-1.ndjson`;
  fs.mkdirSync(path.join(dir, 'journal'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'journal', name), lines.map((l) => `${l}\n`).join('') + torn);
  return name;
}
const line = (id: string, patient = 'p1') => JSON.stringify({ at: AT, ...record(id, patient) });

t.test("a stopped process's journal is taken in at open: complete lines only, each record once", async (t) => {
  const dir = fresh(t);
  // A database the stopped process had made, with one of its records already in.
  const before = new SqliteStore({ dataDir: dir });
  const first = record('o1', 'p1').resource;
  await before.transact([{ kind: 'create', resource: first, index: indexEntries(first), creator: 'carnet:audit' }], AT);
  await before.close();
  const name = orphan(dir, [line('o1'), line('o2'), line('o3')], line('torn').slice(0, 40));

  const store = new SqliteStore({ dataDir: dir });
  t.teardown(() => store.close());
  t.equal(storedRecords(dir), 3, 'the records of the complete lines are in the database before any request');
  t.equal((await store.search(byPatient('p1'), { count: 10, total: true })).total, 3, 'and found by a search, o1 once');
  t.equal((await store.read('AuditEvent', 'torn')).kind, 'missing', 'the torn line, never acknowledged, is not applied');
  t.notOk(journalFiles(dir).includes(name), 'the file is deleted');
});

t.test('a file partly taken in before the stop is taken in from where it was left', async (t) => {
  const dir = fresh(t);
  const lines = [line('q1'), line('q2'), line('q3')];
  const name = orphan(dir, lines);
  // Made by a store that had applied q1: the position is recorded, q1 is not stored (so a replay
  // from the start would be seen).
  const before = new SqliteStore({ dataDir: path.join(dir, 'elsewhere') });
  await before.close();
  fs.copyFileSync(path.join(dir, 'elsewhere', 'carnet.sqlite'), path.join(dir, 'carnet.sqlite'));
  const db = new Database(path.join(dir, 'carnet.sqlite'));
  db.prepare('INSERT INTO journal_applied (file, offset) VALUES (?, ?)').run(name, Buffer.byteLength(`${lines[0]}\n`));
  db.close();

  const store = new SqliteStore({ dataDir: dir });
  t.teardown(() => store.close());
  t.equal((await store.read('AuditEvent', 'q1')).kind, 'missing', 'the applied part is not applied again');
  t.equal((await store.read('AuditEvent', 'q2')).kind, 'found');
  t.equal((await store.read('AuditEvent', 'q3')).kind, 'found');
});

t.test("a second store opened in the same process leaves the first one's journal alone", async (t) => {
  const dir = fresh(t);
  const first = new SqliteStore({ dataDir: dir });
  await first.journal([record('live1', 'p1')], AT);
  const files = journalFiles(dir);
  const second = new SqliteStore({ dataDir: dir });
  await second.close();
  t.same(journalFiles(dir), files, 'the open file is still there');
  await first.journal([record('live2', 'p1')], AT);
  t.equal((await first.search(byPatient('p1'), { count: 0, total: true })).total, 2, 'both records of the first store are found');
  await first.close();
  t.same(journalFiles(dir), [], 'and taken in at its close');
});

t.test("with sync 'full', a journaled record is found and the journal is taken in at close", async (t) => {
  const dir = fresh(t);
  const store = new SqliteStore({ dataDir: dir, sync: 'full', journalLimits: { fileBytes: 3000 } });
  for (let i = 0; i < 10; i++) await store.journal([record(`f${i}`, 'p1')], AT);
  t.equal((await store.search(byPatient('p1'), { count: 0, total: true })).total, 10);
  await store.close();
  t.equal(storedRecords(dir), 10);
  t.same(journalFiles(dir), []);
});

t.test('the writer takes the journal in by chunks, and a read still waits for all of it', async (t) => {
  const dir = fresh(t);
  // About one record per transaction.
  const store = new SqliteStore({ dataDir: dir, journalLimits: { chunkBytes: 800, fileBytes: 6000 } });
  t.teardown(() => store.close());
  for (let i = 0; i < 40; i++) await store.journal([record(`k${i}`, 'p1')], AT);
  t.equal((await store.search(byPatient('p1'), { count: 0, total: true })).total, 40, 'every record is found');
  t.equal(journalFiles(dir).length, 1, 'the finished files are deleted once read to their end');
});

t.test('an append too far ahead of the writer waits for it', async (t) => {
  const dir = fresh(t);
  const store = new SqliteStore({ dataDir: dir, journalLimits: { maxLagBytes: 1 } });
  t.teardown(() => store.close());
  for (let i = 0; i < 5; i++) {
    await store.journal([record(`w${i}`, 'p1'), record(`x${i}`, 'p1')], AT);
    // Checked through another connection: no read of this store asked the writer for them.
    t.equal(storedRecords(dir), 2 * (i + 1), `append ${i + 1}: its records are in the database when it resolves`);
  }
});

t.test('the entries a line holds are written, not entries computed from the record', async (t) => {
  const dir = fresh(t);
  const entry = record('given', 'p1');
  orphan(dir, [JSON.stringify({ at: AT, ...entry, index: [{ kind: 'reference', param: 'patient', group: 0, targetType: 'Patient', targetId: 'elsewhere', url: null }] })]);
  const store = new SqliteStore({ dataDir: dir });
  t.teardown(() => store.close());
  t.equal((await store.search(byPatient('elsewhere'), { count: 0, total: true })).total, 1, 'found by the entry of the line');
  t.equal((await store.search(byPatient('p1'), { count: 0, total: true })).total, 0, 'not by the entries of the record');
});

t.test('a line of an older server, without index entries, is refused at open with the way out', async (t) => {
  const dir = fresh(t);
  const { index: _index, ...older } = record('old', 'p1');
  orphan(dir, [JSON.stringify({ at: AT, ...older })]);
  t.throws(() => new SqliteStore({ dataDir: dir }), /older Carnet left unindexed.*start that version once/);
  t.equal(journalFiles(dir).length, 1, 'the file is left for that version');
});
