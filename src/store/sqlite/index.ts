// store/sqlite: the embedded engine (better-sqlite3, WAL). Knows SQL and the storage port;
// knows nothing of HTTP, tokens or consent.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Resource } from '@medplum/fhirtypes';
import {
  WriteConflict,
  type Change,
  type HistoryPage,
  type HistoryQuery,
  type HistoryScope,
  type ReadResult,
  type SearchPage,
  type SearchQuery,
  type Store,
  type JournalEntry,
  journalOps,
  type Version,
  type WriteOp,
  type WriteResult,
} from '../port.js';
import type { IndexEntry, SearchPlan } from '../../search/types.js';
import { decodeKeys, encodeKeys, sameContent, stamped } from '../content.js';
import { compileRestriction, compileSearch } from './compile.js';
import { readsIndexOf } from './deferred.js';
import { JOURNAL_LIMITS, journalDir, journalFiles, journalSize, orphanFiles, readJournal, type JournalLimits, type JournalRecord } from './journal.js';
import { FileBlobs } from './blobs.js';
import { SqliteClients } from './clients.js';
import { QueueTables, SqliteQueue, type QueueAnswers, type QueueCall } from './queue.js';
import { DDL, INDEX_TABLES, isIndexed, migrate, SCHEMA_VERSION } from './schema.js';
import { packContent, unpackContent } from './compact.js';
import { WriterThread } from './writer-thread.js';

export interface SqliteOptions {
  /** Folder of the database file; ':memory:' for a throw-away store in tests. */
  dataDir: string;
  /** 'normal' survives a process crash; 'full' also survives power loss (fsync on every commit). */
  sync?: 'normal' | 'full';
  /**
   * Where write transactions run: 'thread' (the default for a database file) on a worker thread
   * with its own connection (writer-thread.ts), 'inline' on this connection (always for ':memory:').
   */
  writer?: 'thread' | 'inline';
  /**
   * 'elsewhere': another connection checkpoints the WAL (the writer thread's checkpointer); this
   * one only does past 10,000 WAL pages, as a safety net. Default 'auto': SQLite's, every 1,000.
   */
  checkpoints?: 'auto' | 'elsewhere';
  /**
   * At open, write the index rows of versions left pending by a stopped process (deferred.ts) and
   * the records of its audit journal (journal.ts). Default true; false for the writer thread's
   * store, opened by a store that has done it.
   */
  recoverPending?: boolean;
  /** The audit journal's sizes (journal.ts); tests make them small. */
  journalLimits?: Partial<JournalLimits>;
}

/** A version committed without its index rows (a create op with deferIndex). */
interface Pending {
  seq: number;
  type: string;
  id: string;
  index: IndexEntry[];
}

interface VersionRow {
  seq: number;
  type: string;
  id: string;
  version: number;
  last_updated: string;
  deleted: number;
  /** The resource JSON, or its compact form (compact.ts). */
  content: string | Buffer | null;
  /** Present when the query joins resource_current. */
  creator?: string | null;
}

interface CurrentRow {
  version: number;
  deleted: number;
  seq: number;
}

function toVersion(row: VersionRow): Version {
  const version: Version = {
    type: row.type,
    id: row.id,
    versionId: row.version,
    lastUpdated: row.last_updated,
    deleted: row.deleted === 1,
  };
  if (row.content !== null) version.resource = JSON.parse(unpackContent(row.content)) as Resource;
  if (row.creator) version.creator = row.creator;
  return version;
}

function readResult(row: VersionRow | undefined): ReadResult {
  if (!row) return { kind: 'missing' };
  const version = toVersion(row);
  return version.deleted ? { kind: 'deleted', version } : { kind: 'found', version };
}

interface SearchRow extends VersionRow {
  [key: `k${number}`]: unknown;
}

/** The values of an entry in the column order of INDEX_TABLES. */
function indexValues(entry: IndexEntry): unknown[] {
  switch (entry.kind) {
    case 'token':
      return [entry.system, entry.code, entry.text];
    case 'string':
      return [entry.value, entry.exact];
    case 'date':
      return [entry.low, entry.high];
    case 'number':
      return [entry.value];
    case 'quantity':
      return [entry.value, entry.system, entry.code, entry.unit];
    case 'reference':
      return [entry.targetType, entry.targetId, entry.url];
    case 'uri':
      return [entry.value];
  }
}

// History cursors are a version's seq in base 36.
const encodeCursor = (seq: number) => seq.toString(36);
function decodeCursor(cursor: string): number | undefined {
  const seq = parseInt(cursor, 36);
  return Number.isSafeInteger(seq) && seq > 0 ? seq : undefined;
}

/**
 * Index entries are computed above the port only, so a stopped process's pending rows and journal
 * lines keep theirs; those of a server from before that have none, and are refused rather than
 * left unsearchable.
 */
const OLDER_SERVER =
  'this data folder holds audit records that an older Carnet left unindexed when it stopped (index_pending rows or journal lines without index entries): start that version once on it (its open takes them in), then this one';

/** Resolves after a turn of the event loop (the requests waiting for it get theirs first). */
const giveWay = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Prepared search statements kept per connection. */
const PREPARED_CACHE = 500;

/** The ops that erase (the purge of an account): secure_delete on, the write-ahead log emptied after. */
const ERASURES: ReadonlySet<WriteOp['kind']> = new Set(['expunge', 'redact', 'unstamp', 'drop-queue']);

export class SqliteStore implements Store {
  readonly name = 'sqlite';
  readonly clients: SqliteClients;
  readonly blobs: FileBlobs;
  readonly queue: SqliteQueue;
  private readonly db: Database.Database;
  /** Cursors, queues and leases (queue.ts). */
  private readonly delivery: QueueTables;
  private readonly statements;
  private readonly writer: WriterThread | undefined;
  /** The database file (':memory:' for a throw-away store). */
  readonly file: string;
  private readonly dataDir: string;
  /** Committed versions whose index rows this connection has still to write (deferred.ts). */
  private pending: Pending[] = [];
  /** Those of the transaction running now: pending once it commits. */
  private staged: Pending[] = [];

  constructor(options: SqliteOptions) {
    let file = ':memory:';
    if (options.dataDir !== ':memory:') {
      fs.mkdirSync(options.dataDir, { recursive: true });
      file = path.join(options.dataDir, 'carnet.sqlite');
    }
    this.file = file;
    this.dataDir = options.dataDir;
    this.db = new Database(file);
    // First: the writer thread and other processes open the same file at the same time.
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}`);
    // What is deleted or replaced is overwritten, not left in free space: an index row of an
    // earlier version, a freed page. The purge of an account (docs/accounts.md) leaves nothing of
    // the person in the file this way; docs/performance.md has its cost.
    this.db.pragma('secure_delete = ON');
    if (options.checkpoints === 'elsewhere') this.db.pragma('wal_autocheckpoint = 10000');
    const existing = this.db.pragma('user_version', { simple: true }) as number;
    if (existing > SCHEMA_VERSION) {
      throw new Error(`database ${file} has schema version ${existing}, newer than this server's ${SCHEMA_VERSION}`);
    }
    this.db.exec(DDL);
    // Databases made before the creator column: add it (existing rows have no known creator).
    const columns = this.db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('resource_current')").all();
    if (!columns.some((c) => c.name === 'creator')) this.db.exec('ALTER TABLE resource_current ADD COLUMN creator TEXT');
    // Likewise before the pending rows kept their entries (rows left by such a server have none: recoverPending).
    const pendingColumns = this.db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('index_pending')").all();
    if (!pendingColumns.some((c) => c.name === 'entries')) this.db.exec('ALTER TABLE index_pending ADD COLUMN entries TEXT');
    migrate(this.db, existing);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    this.clients = new SqliteClients(this.db);
    this.blobs = new FileBlobs(options.dataDir);
    this.statements = {
      current: this.db.prepare<[string, string], VersionRow>(
        'SELECT v.*, c.creator FROM resource_current c JOIN resource_version v ON v.seq = c.seq WHERE c.type = ? AND c.id = ?',
      ),
      currentEnvelope: this.db.prepare<[string, string], CurrentRow>(
        'SELECT version, deleted, seq FROM resource_current WHERE type = ? AND id = ?',
      ),
      version: this.db.prepare<[string, string, number], VersionRow>(
        'SELECT v.*, c.creator FROM resource_version v LEFT JOIN resource_current c ON c.type = v.type AND c.id = v.id WHERE v.type = ? AND v.id = ? AND v.version = ?',
      ),
      insertVersion: this.db.prepare(
        'INSERT INTO resource_version (type, id, version, last_updated, deleted, content) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      upsertCurrent: this.db.prepare(
        `INSERT INTO resource_current (type, id, version, last_updated, deleted, seq, creator) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (type, id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
           deleted = excluded.deleted, seq = excluded.seq, creator = coalesce(resource_current.creator, excluded.creator)`,
      ),
      deleteIndex: Object.values(INDEX_TABLES).map(({ table }) => this.db.prepare(`DELETE FROM ${table} WHERE type = ? AND id = ?`)),
      insertIndex: Object.fromEntries(
        Object.entries(INDEX_TABLES).map(([kind, { table, columns }]) => [
          kind,
          this.db.prepare(`INSERT INTO ${table} (type, id, param, grp, ${columns.join(', ')}) VALUES (?, ?, ?, ?, ${columns.map(() => '?').join(', ')})`),
        ]),
      ) as Record<IndexEntry['kind'], Database.Statement>,
      instanceCount: this.db.prepare<[string, string], { n: number }>(
        'SELECT count(*) AS n FROM resource_version WHERE type = ? AND id = ?',
      ),
      insertPending: this.db.prepare<[number | bigint, string]>('INSERT INTO index_pending (seq, entries) VALUES (?, ?)'),
      deletePending: this.db.prepare<[number]>('DELETE FROM index_pending WHERE seq = ?'),
      leftPending: this.db.prepare<[], { seq: number; type: string; id: string; entries: string | null }>(
        'SELECT p.seq, v.type, v.id, p.entries FROM index_pending p JOIN resource_version v ON v.seq = p.seq ORDER BY p.seq',
      ),
      journalOffset: this.db.prepare<[string], { offset: number }>('SELECT offset FROM journal_applied WHERE file = ?'),
      journalApplied: this.db.prepare<[string, number]>(
        'INSERT INTO journal_applied (file, offset) VALUES (?, ?) ON CONFLICT (file) DO UPDATE SET offset = excluded.offset',
      ),
      journalForget: this.db.prepare<[string]>('DELETE FROM journal_applied WHERE file = ?'),
      stamp: this.db.prepare<[string], { n: number }>('INSERT INTO stamps (key, n) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET n = n + 1 RETURNING n'),
      stampOf: this.db.prepare<[string], { n: number }>('SELECT n FROM stamps WHERE key = ?'),
      lazyTypes: this.db.prepare<[], { type: string }>('SELECT type FROM lazy_types'),
      isLazyType: this.db.prepare<[string], { one: number }>('SELECT 1 AS one FROM lazy_types WHERE type = ?'),
      addLazyType: this.db.prepare<[string]>('INSERT OR IGNORE INTO lazy_types (type) VALUES (?)'),
      anyPending: this.db.prepare<[], { one: number }>('SELECT 1 AS one FROM index_pending LIMIT 1'),
      changes: this.db.prepare<[number, number], VersionRow>(
        'SELECT v.*, c.creator FROM resource_version v LEFT JOIN resource_current c ON c.type = v.type AND c.id = v.id WHERE v.seq > ? ORDER BY v.seq LIMIT ?',
      ),
    };
    this.delivery = new QueueTables(this.db);
    this.queue = new SqliteQueue(this.delivery, (call) => this.write(call));
    if (options.recoverPending !== false) {
      this.recoverPending();
      if (file !== ':memory:') {
        const orphans = orphanFiles(journalDir(options.dataDir));
        while (!this.applyJournal(orphans, () => true).done);
      }
    }
    // Started after the schema is in place: the writer's own open finds nothing to create.
    if (file !== ':memory:' && options.writer !== 'inline') {
      const journalLimits = { ...JOURNAL_LIMITS, ...options.journalLimits };
      this.writer = new WriterThread({ carnetWriter: true, dataDir: options.dataDir, ...(options.sync ? { sync: options.sync } : {}), journalLimits });
    }
  }

  async read(type: string, id: string): Promise<ReadResult> {
    await this.caughtUp(type);
    return readResult(this.statements.current.get(type, id));
  }

  async readVersion(type: string, id: string, versionId: number): Promise<ReadResult> {
    await this.caughtUp(type);
    return readResult(this.statements.version.get(type, id, versionId));
  }

  /**
   * Waits until the journaled records of `type` (of any type, when undefined) are in the
   * database: this process's, and every other process's of the same data directory.
   */
  private async caughtUp(type: string | undefined): Promise<void> {
    if (!this.writer) return;
    const journaled = this.writer.journaled(type);
    if (journaled) await journaled;
    if (type === undefined ? this.lazyTypes().size > 0 : this.isLazy(type)) await this.caughtUpEverywhere();
  }

  /** Whether `type` is in lazy_types: a type never leaves it, so a yes is remembered. */
  private isLazy(type: string): boolean {
    if (this.knownLazy.has(type)) return true;
    if (this.statements.isLazyType.get(type) === undefined) return false;
    this.knownLazy.add(type);
    return true;
  }

  private readonly knownLazy = new Set<string>();

  /** The types whose rows may be written after their commit was acknowledged, by any process (schema.ts). */
  private lazyTypes(): Set<string> {
    return new Set(this.statements.lazyTypes.all().map((row) => row.type));
  }

  /** Records that `types` are journaled or deferred, before the first such write is acknowledged. */
  private declareLazy(types: Iterable<string>): void {
    for (const type of types) {
      if (this.declaredLazy.has(type)) continue;
      this.statements.addLazyType.run(type);
      this.declaredLazy.add(type);
    }
  }

  private readonly declaredLazy = new Set<string>();

  /**
   * Several processes may share the data directory (CARNET_WORKERS, docs/deployment.md): what the
   * others journaled or deferred and acknowledged must be found here too. When a journal file of
   * another process holds bytes past what is applied, or index rows are pending, this process's
   * writer takes them all in (transactions that record how far each file is, so nothing is applied
   * twice) before the read goes on.
   */
  private async caughtUpEverywhere(): Promise<void> {
    if (!this.writer) return;
    const own = this.writer.ownJournalFiles();
    const behind =
      this.statements.anyPending.get() !== undefined ||
      journalFiles(journalDir(this.dataDir)).some((file) => !own.has(file) && journalSize(path.join(journalDir(this.dataDir), file)) > (this.statements.journalOffset.get(file)?.offset ?? 0));
    if (behind) await this.writer.catchUpEverywhere();
  }

  /**
   * The feed is resource_version in seq order: seq is AUTOINCREMENT (never reused, after a restart
   * too) and given inside the write transaction, which SQLite's write lock serialises across the
   * threads and processes of a data directory, so seq order is commit order. Journaled records get
   * theirs when a writer takes them in: first every process's is, as for a read of any type.
   */
  async changes(after: number, limit: number): Promise<Change[]> {
    await this.caughtUp(undefined);
    // As a search: a consumer reading page after page lets the requests waiting meanwhile go first.
    await giveWay();
    return this.statements.changes.all(after, Math.max(0, limit)).map((row) => ({ seq: row.seq, version: toVersion(row) }));
  }

  async cursor(name: string): Promise<number> {
    return this.delivery.cursor(name);
  }

  lease(name: string, owner: string, now: string, ms: number): Promise<boolean> {
    return this.write({ call: 'lease', name, owner, now, ms });
  }

  /** A queue or lease write, where this store's transactions run (the writer thread, or here). */
  private async write<C extends QueueCall>(call: C): Promise<QueueAnswers[C['call']]> {
    if (this.writer) return this.writer.call(call);
    return this.callNow(call) as QueueAnswers[C['call']];
  }

  /** A queue or lease write on this connection, synchronously (the writer thread runs them here). */
  callNow(call: QueueCall): QueueAnswers[QueueCall['call']] {
    if (call.call === 'vacuum') {
      // Rewrites every table and index from scratch: what erasures left in interior pages of an
      // index (copies of keys) goes with the old pages, which secure_delete zeroes.
      this.db.exec('VACUUM');
      this.db.pragma('wal_checkpoint(TRUNCATE)');
      return true;
    }
    return this.delivery.run(call);
  }

  /** Store.reclaim: after the purge of accounts, nothing erased stays readable in the files. */
  async reclaim(): Promise<void> {
    await this.write({ call: 'vacuum' });
  }

  async stamps(keys: readonly string[]): Promise<number[]> {
    // On this connection: a stamp op resolved its transact() only once committed, so it is seen here.
    return keys.map((key) => this.statements.stampOf.get(key)?.n ?? 0);
  }

  /** Waits until the index rows a plan could read, and the journaled records it could find, are written. */
  private async indexed(plan: SearchPlan): Promise<void> {
    if (this.writer) {
      await this.writer.materialised(plan);
      if (readsIndexOf(plan, this.lazyTypes())) await this.caughtUpEverywhere();
      return;
    }
    if (this.pending.length > 0 && readsIndexOf(plan, new Set(this.pending.map((p) => p.type)))) this.materialisePending();
  }

  /**
   * Without a writer thread (':memory:' stores, the writer's own), a journaled create is an
   * ordinary transaction. With one, the records are appended to this process's journal file
   * (journal.ts) and are durable when this returns; the writer takes them into the database.
   */
  async journal(entries: JournalEntry[], at: string): Promise<void> {
    if (this.writer) {
      this.declareLazy(entries.map((entry) => entry.resource.resourceType));
      return this.writer.journal(entries.map((entry) => ({ at, ...entry })));
    }
    this.transactNow(journalOps(entries), at);
  }

  /**
   * Writes the records of these journal files (in order) that are not in the database yet, from
   * where each was left and up to about `chunkBytes` of lines, in one transaction that also
   * records how far each file now is; then deletes the files read to their end that `finished`
   * says no more records will be appended to. A record whose id is already stored was applied
   * before and is skipped. Returns how far each file read is, the files deleted, and whether every
   * file was read to its end (else call again).
   */
  applyJournal(
    files: readonly string[],
    finished: (file: string) => boolean,
    chunkBytes = JOURNAL_LIMITS.chunkBytes,
  ): { ends: Map<string, number>; deleted: Set<string>; done: boolean } {
    const dir = journalDir(this.dataDir);
    const ends = new Map<string, number>();
    const deleted = new Set<string>();
    const complete = new Set<string>();
    if (files.length === 0) return { ends, deleted, done: true };
    const run = this.db.transaction(() => {
      let budget = chunkBytes;
      for (const file of files) {
        if (budget <= 0) break;
        const start = this.statements.journalOffset.get(file)?.offset ?? 0;
        const { records, end, eof } = readJournal(path.join(dir, file), start, budget);
        ends.set(file, end);
        if (eof) complete.add(file);
        budget -= end - start;
        if (end === start) continue;
        for (const record of records) this.applyRecord(record);
        this.statements.journalApplied.run(file, end);
      }
    });
    run.immediate();
    for (const file of complete) {
      // Nothing more comes into a finished file: what is left unapplied is a torn line, never acknowledged.
      if (!finished(file)) continue;
      // Deleted before its row: a crash in between leaves a row without a file, which nothing reads.
      fs.rmSync(path.join(dir, file), { force: true });
      this.statements.journalForget.run(file);
      deleted.add(file);
    }
    return { ends, deleted, done: complete.size === files.length };
  }

  private applyRecord({ resource, at, creator, index }: JournalRecord): void {
    if (this.statements.currentEnvelope.get(resource.resourceType, resource.id)) return;
    if (!index) throw new Error(OLDER_SERVER);
    this.writeVersion(resource, 1, at, index, false, creator);
  }

  async history(scope: HistoryScope, query: HistoryQuery): Promise<HistoryPage> {
    await this.caughtUp(scope.level === 'system' ? undefined : scope.type);
    if (query.restriction) await this.indexed(query.restriction);
    const conditions: string[] = [];
    const params: unknown[] = [];
    if (scope.level !== 'system') {
      conditions.push('type = ?');
      params.push(scope.type);
    }
    if (scope.level === 'instance') {
      conditions.push('id = ?');
      params.push(scope.id);
    }
    if (query.cursor !== undefined) {
      const before = decodeCursor(query.cursor);
      if (before === undefined) throw new RangeError('bad history cursor');
      conditions.push('seq < ?');
      params.push(before);
    }
    if (query.since !== undefined) {
      conditions.push('last_updated >= ?');
      params.push(query.since);
    }
    if (query.restriction) {
      const restriction = compileRestriction(query.restriction);
      conditions.push(`(v.type, v.id) IN (SELECT c.type, c.id FROM resource_current c WHERE ${restriction.sql})`);
      params.push(...restriction.params);
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.map((c) => c.replace(/^(type|id|seq|last_updated) /, 'v.$1 ')).join(' AND ')}` : '';
    const rows = this.db
      .prepare<unknown[], VersionRow>(
        `SELECT v.*, cur.creator FROM resource_version v LEFT JOIN resource_current cur ON cur.type = v.type AND cur.id = v.id ${where} ORDER BY v.seq DESC LIMIT ?`,
      )
      .all(...params, query.count + 1);
    const page: HistoryPage = { versions: rows.slice(0, query.count).map(toVersion) };
    if (rows.length > query.count) page.next = encodeCursor(rows[query.count - 1].seq);
    if (scope.level === 'instance') page.total = this.statements.instanceCount.get(scope.type, scope.id)?.n ?? 0;
    return page;
  }

  // Compiled searches differ in their parameters far more often than in their SQL (a restricted
  // search is a long statement that takes longer to prepare than to run on a small record).
  private readonly prepared = new Map<string, Database.Statement>();

  private prepare<Row>(sql: string): Database.Statement<unknown[], Row> {
    let statement = this.prepared.get(sql);
    if (statement) {
      // Most recently used last: the first key is the one to drop.
      this.prepared.delete(sql);
    } else {
      statement = this.db.prepare(sql);
      if (this.prepared.size >= PREPARED_CACHE) this.prepared.delete(this.prepared.keys().next().value as string);
    }
    this.prepared.set(sql, statement);
    return statement as Database.Statement<unknown[], Row>;
  }

  async search(plan: SearchPlan, query: SearchQuery): Promise<SearchPage> {
    await this.indexed(plan);
    // Statements run on the event loop: each waits for a turn of it, so that the requests waiting
    // meanwhile (a read behind a search with many includes) get theirs between them.
    await giveWay();
    const after = query.cursor !== undefined ? decodeKeys(query.cursor) : undefined;
    const compiled = compileSearch(plan, after, query.count + 1);
    const rows = this.prepare<SearchRow>(compiled.select.sql).all(compiled.select.params);
    const page: SearchPage = { matches: rows.slice(0, query.count).map(toVersion) };
    if (rows.length > query.count && query.count > 0) {
      const last = rows[query.count - 1];
      page.next = encodeKeys(compiled.keys.map((_k, i) => last[`k${i}`]));
    }
    if (query.total && query.cursor === undefined && query.count > 0 && rows.length <= query.count) {
      // A first page that holds every match counts them itself.
      page.total = page.matches.length;
    } else if (query.total && query.totalAtMost !== undefined) {
      await giveWay();
      const counted = compiled.countAtMost(query.totalAtMost + 1);
      const n = this.prepare<{ n: number }>(counted.sql).get(counted.params)?.n ?? 0;
      if (n <= query.totalAtMost) page.total = n;
    } else if (query.total) {
      await giveWay();
      page.total = this.prepare<{ n: number }>(compiled.count.sql).get(compiled.count.params)?.n ?? 0;
    }
    return page;
  }

  // Conditional create re-checks its criteria inside the write transaction.
  private matching(plan: SearchPlan, limit: number): VersionRow[] {
    const compiled = compileSearch(plan, undefined, limit);
    return this.prepare<SearchRow>(compiled.select.sql).all(compiled.select.params);
  }

  async transact(ops: WriteOp[], at: string): Promise<WriteResult[]> {
    if (!this.writer) return this.transactNow(ops, at);
    this.declareLazy(ops.flatMap((op) => (op.kind === 'create' && op.deferIndex ? [op.resource.resourceType] : [])));
    return this.writer.transact(ops, at);
  }

  /** The transaction on this connection, synchronously (the writer thread runs its transactions here). */
  transactNow(ops: WriteOp[], at: string): WriteResult[] {
    // better-sqlite3 transactions are synchronous: nothing else runs on this connection until
    // commit, so the checks below and the writes form one atomic unit. IMMEDIATE takes the
    // write lock up front, so another process cannot slip in between check and write.
    // Conditional create criteria are searched inside the transaction: every index row first.
    const erasure = ops.some((op) => ERASURES.has(op.kind));
    if (this.pending.length > 0 && (erasure || ops.some((op) => op.kind === 'create' && op.ifNoneExist))) this.materialisePending();
    const run = this.db.transaction(() => ops.map((op) => this.apply(op, at)));
    this.staged = [];
    let results: WriteResult[];
    try {
      results = run.immediate();
    } catch (error) {
      // Rolled back: the staged versions were never written.
      this.staged = [];
      throw error;
    }
    // The write-ahead log still holds the pages as they were before: copied into the database and emptied.
    if (erasure) this.db.pragma('wal_checkpoint(TRUNCATE)');
    // Committed: they are pending now.
    if (this.staged.length > 0) this.pending.push(...this.staged);
    this.staged = [];
    return results;
  }

  /** How many committed versions wait for their index rows (the writer thread schedules on it). */
  get pendingCount(): number {
    return this.pending.length;
  }

  /**
   * Writes the index rows of every pending version, in one transaction. A version replaced or
   * deleted since, or whose pending row is gone (written at another process's open), is skipped.
   */
  materialisePending(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    const run = this.db.transaction(() => {
      for (const p of batch) {
        if (this.statements.deletePending.run(p.seq).changes !== 1) continue;
        const current = this.statements.currentEnvelope.get(p.type, p.id);
        if (!current || current.seq !== p.seq || current.deleted === 1) continue;
        this.insertIndex(p.type, p.id, p.index);
      }
    });
    run.immediate();
    this.pending = [];
  }

  /**
   * The index rows of every version still in index_pending: at open, those a stopped process
   * committed but had not materialised; on a read's request (caughtUpEverywhere), those of the
   * other processes. A row another process wrote meanwhile is skipped.
   */
  recoverPending(): void {
    if (this.statements.anyPending.get() === undefined) return;
    const run = this.db.transaction(() => {
      for (const row of this.statements.leftPending.all()) {
        if (this.statements.deletePending.run(row.seq).changes !== 1) continue;
        const current = this.statements.currentEnvelope.get(row.type, row.id);
        if (!current || current.seq !== row.seq || current.deleted === 1) continue;
        if (row.entries === null) throw new Error(OLDER_SERVER);
        this.replaceIndex(row.type, row.id, JSON.parse(row.entries) as IndexEntry[], true);
      }
    });
    run.immediate();
  }

  private apply(op: WriteOp, at: string): WriteResult {
    switch (op.kind) {
      case 'create': {
        if (op.ifNoneExist) {
          const found = this.matching(op.ifNoneExist, 2);
          if (found.length > 1) {
            throw new WriteConflict('multiple-matches', op.resource.resourceType, 'the conditional create criteria match more than one resource');
          }
          if (found.length === 1) {
            if (op.failIfExists) throw new WriteConflict('already-exists', op.resource.resourceType, 'the conditional create criteria match an existing resource');
            return { kind: 'existing', version: toVersion(found[0]) };
          }
        }
        const current = this.statements.currentEnvelope.get(op.resource.resourceType, op.resource.id);
        if (current) throw new WriteConflict('already-exists', `${op.resource.resourceType}/${op.resource.id}`, 'the id is already taken');
        return { kind: 'created', version: this.writeVersion(op.resource, 1, at, op.deferIndex ? undefined : op.index, false, op.creator, op.index) };
      }
      case 'update': {
        const { resourceType: type, id } = op.resource;
        const target = `${type}/${id}`;
        const row = this.statements.current.get(type, id);
        if (op.mustBeNew && row) throw new WriteConflict('already-exists', target, 'the resource was created meanwhile');
        if (op.expectedVersion !== undefined && (!row || row.version !== op.expectedVersion)) {
          throw new WriteConflict('version-mismatch', target, `expected version ${op.expectedVersion}, current is ${row ? row.version : 'none'}`);
        }
        if (row && row.deleted === 0) {
          const previous = toVersion(row);
          if (previous.resource && sameContent(previous.resource, op.resource)) return { kind: 'unchanged', version: previous };
          return { kind: 'updated', version: this.writeVersion(op.resource, row.version + 1, at, op.index, true, op.creator), previous };
        }
        return { kind: 'created', version: this.writeVersion(op.resource, (row?.version ?? 0) + 1, at, op.index, row !== undefined, op.creator) };
      }
      case 'delete': {
        const row = this.statements.currentEnvelope.get(op.type, op.id);
        if (op.expectedVersion !== undefined && (!row || row.version !== op.expectedVersion)) {
          throw new WriteConflict('version-mismatch', `${op.type}/${op.id}`, `expected version ${op.expectedVersion}, current is ${row ? row.version : 'none'}`);
        }
        if (!row || row.deleted === 1) return { kind: 'absent' };
        return { kind: 'deleted', version: this.writeTombstone(op.type, op.id, row.version + 1, at) };
      }
      case 'stamp':
        return { kind: 'stamped', key: op.key, stamp: (this.statements.stamp.get(op.key) as { n: number }).n };
      case 'cursor':
        this.delivery.moveCursor(op.name, op.from, op.to);
        return { kind: 'cursor', name: op.name, value: op.to };
      case 'enqueue':
        return { kind: 'enqueued', queue: op.queue, number: this.delivery.enqueue(op.queue, op.data, op.due, at) };
      case 'expunge':
        return { kind: 'erased', found: this.expunge(op.type, op.id) };
      case 'redact':
        return { kind: 'erased', found: this.redact(op.resource, op.index) };
      case 'unstamp':
        return { kind: 'erased', found: this.prepare('DELETE FROM stamps WHERE key = ?').run(op.key).changes > 0 };
      case 'drop-queue': {
        const items = this.prepare('DELETE FROM queue_item WHERE queue = ?').run(op.queue).changes;
        return { kind: 'erased', found: this.prepare('DELETE FROM queue_last WHERE queue = ?').run(op.queue).changes + items > 0 };
      }
      default: {
        const unreachable: never = op;
        throw new Error(`unknown write ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /**
   * `existed`: the id had a current row, whose index entries must go (a new id has none).
   * `index` undefined: the entries `deferred` are written later (a new id only).
   */
  private writeVersion(
    resource: Resource & { id: string },
    versionId: number,
    at: string,
    index: IndexEntry[] | undefined,
    existed: boolean,
    creator?: string,
    deferred?: IndexEntry[],
  ): Version {
    const stored = stamped(resource, versionId, at);
    const { type, id } = { type: resource.resourceType, id: resource.id };
    const info = this.statements.insertVersion.run(type, id, versionId, at, 0, packContent(type, JSON.stringify(stored)));
    this.statements.upsertCurrent.run(type, id, versionId, at, 0, info.lastInsertRowid, creator ?? null);
    if (index) this.replaceIndex(type, id, index, existed);
    else {
      this.statements.insertPending.run(info.lastInsertRowid, JSON.stringify(deferred ?? []));
      this.staged.push({ seq: Number(info.lastInsertRowid), type, id, index: deferred ?? [] });
    }
    return { type, id, versionId, lastUpdated: at, deleted: false, resource: stored };
  }

  /** Every version of Type/id, its current row and its index rows (written or pending) erased. */
  private expunge(type: string, id: string): boolean {
    const seqs = this.prepare<{ seq: number }>('SELECT seq FROM resource_version WHERE type = ? AND id = ?').all(type, id);
    for (const { seq } of seqs) this.statements.deletePending.run(seq);
    for (const statement of this.statements.deleteIndex) statement.run(type, id);
    this.prepare('DELETE FROM resource_current WHERE type = ? AND id = ?').run(type, id);
    this.prepare('DELETE FROM resource_version WHERE type = ? AND id = ?').run(type, id);
    return seqs.length > 0;
  }

  /** The current version of the resource rewritten in place (content, index rows), its older versions erased. */
  private redact(resource: Resource & { id: string }, index: IndexEntry[]): boolean {
    const { resourceType: type, id } = resource;
    const row = this.statements.current.get(type, id);
    if (!row || row.deleted === 1) return false;
    const stored = stamped(resource, row.version, row.last_updated);
    this.prepare('UPDATE resource_version SET content = ? WHERE seq = ?').run(packContent(type, JSON.stringify(stored)), row.seq);
    for (const { seq } of this.prepare<{ seq: number }>('SELECT seq FROM resource_version WHERE type = ? AND id = ? AND seq <> ?').all(type, id, row.seq)) this.statements.deletePending.run(seq);
    this.prepare('DELETE FROM resource_version WHERE type = ? AND id = ? AND seq <> ?').run(type, id, row.seq);
    // Pending rows of the current version would write the old entries later: the new ones now.
    this.statements.deletePending.run(row.seq);
    this.replaceIndex(type, id, index, true);
    return true;
  }

  private writeTombstone(type: string, id: string, versionId: number, at: string): Version {
    const info = this.statements.insertVersion.run(type, id, versionId, at, 1, null);
    this.statements.upsertCurrent.run(type, id, versionId, at, 1, info.lastInsertRowid, null);
    this.replaceIndex(type, id, [], true);
    return { type, id, versionId, lastUpdated: at, deleted: true };
  }

  private replaceIndex(type: string, id: string, index: IndexEntry[], existed: boolean): void {
    if (existed) for (const statement of this.statements.deleteIndex) statement.run(type, id);
    this.insertIndex(type, id, index);
  }

  private insertIndex(type: string, id: string, index: IndexEntry[]): void {
    for (const entry of index) if (isIndexed(type, entry.param)) this.statements.insertIndex[entry.kind].run(type, id, entry.param, entry.group, ...indexValues(entry));
  }

  async close(): Promise<void> {
    await this.writer?.close();
    // Not needed for safety (the next open writes them), but a store closed cleanly leaves none.
    if (this.db.open) this.materialisePending();
    this.db.close();
    this.blobs.close();
  }
}
