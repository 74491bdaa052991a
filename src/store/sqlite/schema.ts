// store/sqlite/schema: the embedded engine's tables, created idempotently at open.
// Every version of every resource is kept (resource_version); resource_current points at the
// newest; one idx_* table per search parameter type holds the index entries of current,
// non-deleted resources (computed above the port by search/extract).

import type Database from 'better-sqlite3';
import type { IndexEntry } from '../../search/types.js';
import { SEARCHABLE_ONLY } from '../../search/params.js';
import { COMPACT_TYPES, packContent } from './compact.js';

// 7: AuditEvents stored compact (compact.ts) and indexed by the access log's parameters only
// (search/params SEARCHABLE_ONLY): migrate() converts a database of an earlier version.
export const SCHEMA_VERSION = 7;

/** The index table of each entry kind, and the value columns it stores besides type, id, param, grp. */
export const INDEX_TABLES = {
  token: { table: 'idx_token', columns: ['system', 'code', 'text'] },
  string: { table: 'idx_string', columns: ['value', 'exact'] },
  date: { table: 'idx_date', columns: ['low', 'high'] },
  number: { table: 'idx_number', columns: ['value'] },
  quantity: { table: 'idx_quantity', columns: ['value', 'system', 'code', 'unit'] },
  reference: { table: 'idx_reference', columns: ['target_type', 'target_id', 'url'] },
  uri: { table: 'idx_uri', columns: ['value'] },
} as const satisfies Record<IndexEntry['kind'], { table: string; columns: readonly string[] }>;

// Dates (epoch ms), numbers and quantity values compare as numbers; everything else as text.
const NUMERIC = new Set(['date.low', 'date.high', 'number.value', 'quantity.value']);

export type IndexKind = keyof typeof INDEX_TABLES;

function indexTable(kind: IndexKind, lookup: string[]): string {
  const { table, columns } = INDEX_TABLES[kind];
  return `
CREATE TABLE IF NOT EXISTS ${table} (
  type  TEXT    NOT NULL,
  id    TEXT    NOT NULL,
  param TEXT    NOT NULL,
  grp   INTEGER NOT NULL,
  ${columns.map((c) => `${c} ${NUMERIC.has(`${kind}.${c}`) ? 'REAL' : 'TEXT'}`).join(',\n  ')}
);
CREATE INDEX IF NOT EXISTS ${table}_owner ON ${table} (type, id, param);
${lookup.map((cols, i) => `CREATE INDEX IF NOT EXISTS ${table}_lookup${i} ON ${table} (${cols});`).join('\n')}`;
}

export const DDL = `
CREATE TABLE IF NOT EXISTS resource_version (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  type         TEXT    NOT NULL,
  id           TEXT    NOT NULL,
  version      INTEGER NOT NULL,
  last_updated TEXT    NOT NULL,
  deleted      INTEGER NOT NULL,
  content      TEXT,
  UNIQUE (type, id, version)
);
CREATE INDEX IF NOT EXISTS resource_version_type_seq ON resource_version (type, seq);

CREATE TABLE IF NOT EXISTS resource_current (
  type         TEXT    NOT NULL,
  id           TEXT    NOT NULL,
  version      INTEGER NOT NULL,
  last_updated TEXT    NOT NULL,
  deleted      INTEGER NOT NULL,
  seq          INTEGER NOT NULL,
  creator      TEXT,
  PRIMARY KEY (type, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resource_current_updated ON resource_current (type, last_updated);

-- Versions written with deferIndex whose index rows are not written yet (store/sqlite/deferred.ts),
-- with the entries to write (JSON, as the caller computed them): appended by the commit of the
-- version, emptied in batches, and at open after a crash. (Databases made before the entries
-- column get it at open: SqliteStore.)
CREATE TABLE IF NOT EXISTS index_pending (seq INTEGER PRIMARY KEY, entries TEXT);
-- How far each audit journal file (store/sqlite/journal.ts) is in the database, in bytes: written
-- by the transaction that applies its lines; a file's row goes when the file is deleted.
CREATE TABLE IF NOT EXISTS journal_applied (file TEXT PRIMARY KEY, offset INTEGER NOT NULL) WITHOUT ROWID;
-- The types whose rows may reach the database after their write was acknowledged (journaled
-- records, deferred index rows), by any process: a read or search of one of them first takes in
-- what every process of the data directory left behind (SqliteStore.caughtUpEverywhere).
CREATE TABLE IF NOT EXISTS lazy_types (type TEXT PRIMARY KEY) WITHOUT ROWID;
-- Stamps (Store.stamps): counters bumped in the transaction of the writes they describe.
CREATE TABLE IF NOT EXISTS stamps (key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
-- Delivery state (store/sqlite/queue.ts): named cursors over the change feed (resource_version in
-- seq order), moved by compare-and-set in transactions; durable queues, one row per item, numbered
-- per queue from queue_last in the transaction that enqueues (due and lease_until in epoch ms);
-- leases of jobs that run in one process at a time.
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_last (queue TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_item (
  queue       TEXT    NOT NULL,
  number      INTEGER NOT NULL,
  data        TEXT    NOT NULL,
  enqueued    TEXT    NOT NULL,
  state       TEXT    NOT NULL,
  attempts    INTEGER NOT NULL,
  due         INTEGER NOT NULL,
  error       TEXT,
  owner       TEXT,
  lease_until INTEGER,
  PRIMARY KEY (queue, number)
) WITHOUT ROWID;
-- The items not done, by queue: the head of each queue is its first entry (claim).
CREATE INDEX IF NOT EXISTS queue_item_open ON queue_item (queue, number) WHERE state <> 'done';
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until INTEGER NOT NULL) WITHOUT ROWID;
${indexTable('token', ['type, param, code, system', 'type, param, system'])}
${indexTable('string', ['type, param, value'])}
${indexTable('date', ['type, param, low', 'type, param, high'])}
${indexTable('number', ['type, param, value'])}
${indexTable('quantity', ['type, param, value'])}
${indexTable('reference', ['type, param, target_id, target_type', 'target_type, target_id, param', 'type, param, url'])}
${indexTable('uri', ['type, param, value'])}
`;

/**
 * Whether index entries of `param` ("<code>", "<code>:identifier", "<code>#<i>") are written for
 * `type`: not for the parameters a type is no longer searched by (search/params SEARCHABLE_ONLY),
 * which entries computed by an older server (its journal lines, pending rows) may still carry.
 */
export function isIndexed(type: string, param: string): boolean {
  const only = SEARCHABLE_ONLY[type];
  if (only === undefined || only.includes(param)) return true;
  // "<code>#<i>" components go with their composite; derived "<code>:identifier" entries only when listed.
  return !param.includes(':') && only.includes(param.split('#')[0]);
}

/** Rows converted per transaction by migrate(), so that no request waits long behind one. */
const MIGRATE_BATCH = 5000;

/**
 * Brings a database of schema version `from` to SCHEMA_VERSION (6 and earlier: to 7, the compact
 * AuditEvent). Idempotent and in batches of transactions, each taking only rows not yet converted:
 * a second process opening the same old database meanwhile does the rest, or nothing. The pages
 * freed are reused by later writes; `VACUUM` (server stopped) gives them back to the file system.
 */
export function migrate(db: Database.Database, from: number): void {
  if (from >= 7 || from === 0) return; // 0: a new database, created by DDL as it is now
  for (const type of COMPACT_TYPES) {
    const select = db.prepare<[string, number], { seq: number; content: string }>(
      "SELECT seq, content FROM resource_version WHERE type = ? AND seq > ? AND typeof(content) = 'text' ORDER BY seq LIMIT " + MIGRATE_BATCH,
    );
    const update = db.prepare<[Buffer | string, number]>('UPDATE resource_version SET content = ? WHERE seq = ?');
    let after = 0;
    const batch = db.transaction(() => {
      const rows = select.all(type, after);
      for (const row of rows) update.run(packContent(type, row.content), row.seq);
      if (rows.length > 0) after = rows[rows.length - 1].seq;
      return rows.length;
    });
    while (batch.immediate() === MIGRATE_BATCH);
  }
  for (const type of Object.keys(SEARCHABLE_ONLY)) {
    db.transaction(() => {
      for (const { table } of Object.values(INDEX_TABLES)) {
        const params = db.prepare<[string], { param: string }>(`SELECT DISTINCT param FROM ${table} WHERE type = ?`).all(type);
        const remove = db.prepare<[string, string]>(`DELETE FROM ${table} WHERE type = ? AND param = ?`);
        for (const { param } of params) if (!isIndexed(type, param)) remove.run(type, param);
      }
    }).immediate();
  }
}
