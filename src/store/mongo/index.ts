// store/mongo: the MongoDB engine (official driver) for a replica set or a sharded cluster. Knows
// MongoDB and the storage port; knows nothing of HTTP, tokens or consent.
//
// Every write of one transact() is one multi-document transaction (store/mongo/transaction).
// Optimistic locking is the database's: a new version replaces the current
// document only where its version is still the one read, and two transactions writing the same
// document conflict (the loser retries, re-reads, and fails the version check).

import crypto from 'node:crypto';
import { MongoClient, ObjectId, type ClientSession, type Collection, type Db } from 'mongodb';
import type { Resource } from '@medplum/fhirtypes';
import {
  StoreUnavailable,
  WriteConflict,
  type Change,
  type HistoryPage,
  type HistoryQuery,
  type HistoryScope,
  type ReadResult,
  type SearchPage,
  type SearchQuery,
  type Store,
  type Version,
  type WriteOp,
  type WriteResult,
} from '../port.js';
import type { IndexEntry, SearchPlan } from '../../search/types.js';
import { decodeKeys, encodeKeys, sameContent, stamped } from '../content.js';
import { compileFilter, type Filter, type Resolve } from './compile.js';
import { compileSearch, RESULT_PROJECTION } from './page.js';
import { currentDocument, patientKey, toVersion, versionDocument, type CurrentDoc, type VersionDoc } from './documents.js';
import { guarded, isDuplicateKey, isUnavailable, redacted } from './errors.js';
import { inTransaction, Retry } from './transaction.js';
import { ensureIndexes } from './indexes.js';
import { MongoClients } from './clients.js';
import { GridFsBlobs } from './blobs.js';
import { increment, MongoDelivery, type CounterDoc } from './queue.js';

export interface MongoOptions {
  uri: string;
  /** Database name; default: the URI's path, else "carnet". */
  database?: string;
  /** How long to look for a usable server before an operation fails (start-up and 503s). */
  serverSelectionTimeoutMS?: number;
}

type VersionRecord = VersionDoc & { _id: ObjectId };

/** The counter document of `counters` that numbers the versions (the change feed's seq). */
const VERSIONS_COUNTER = 'versions';


function readResult(doc: CurrentDoc | null, creator?: string): ReadResult {
  if (!doc) return { kind: 'missing' };
  const version = toVersion(doc, creator ?? doc.creator);
  return version.deleted ? { kind: 'deleted', version } : { kind: 'found', version };
}

// History cursors: the lastUpdated and the ObjectId of the last version of a page.
function encodeHistoryCursor(doc: VersionRecord): string {
  return encodeKeys([doc.lastUpdated, doc._id.toHexString()]);
}
function decodeHistoryCursor(cursor: string): [string, ObjectId] {
  const keys = decodeKeys(cursor);
  if (keys.length !== 2 || typeof keys[0] !== 'string' || typeof keys[1] !== 'string' || !ObjectId.isValid(keys[1])) throw new RangeError('bad history cursor');
  return [keys[0], new ObjectId(keys[1])];
}

/** The database name in a mongodb:// URI's path, if any. */
function databaseOf(uri: string): string | undefined {
  const match = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]+)/.exec(uri);
  return match ? decodeURIComponent(match[1]) : undefined;
}

export class MongoStore implements Store {
  readonly name = 'mongodb';
  readonly clients: MongoClients;
  readonly blobs: GridFsBlobs;
  /** Store.queue; also the cursors and leases (queue.ts). */
  readonly queue: MongoDelivery;
  private readonly resources: Collection<CurrentDoc>;
  private readonly versions: Collection<VersionRecord>;
  private readonly locks: Collection<{ _id: string; n: number }>;
  /** Store.stamps: one document per stamp (`_id` its key, `n` its value). */
  private readonly stampDocs: Collection<{ _id: string; n: number }>;
  private readonly counters: Collection<CounterDoc>;

  constructor(
    private readonly client: MongoClient,
    readonly db: Db,
  ) {
    this.resources = db.collection<CurrentDoc>('resources');
    this.versions = db.collection<VersionRecord>('versions');
    this.locks = db.collection('locks');
    this.stampDocs = db.collection('stamps');
    this.counters = db.collection<CounterDoc>('counters');
    this.queue = new MongoDelivery(db, this.counters);
    this.clients = new MongoClients(db);
    this.blobs = new GridFsBlobs(db);
  }

  stamps(keys: readonly string[]): Promise<number[]> {
    return guarded(async () => {
      if (keys.length === 0) return [];
      // The client reads with readConcern majority: a stamp committed (w: majority) through another process is seen here.
      const docs = await this.stampDocs.find({ _id: { $in: [...keys] } }).toArray();
      const byKey = new Map(docs.map((d) => [d._id, d.n]));
      return keys.map((key) => byKey.get(key) ?? 0);
    });
  }

  /**
   * The versions by seq, which transact() gives in commit order (below). Versions written before
   * the feed existed have no seq and are not in it.
   */
  changes(after: number, limit: number): Promise<Change[]> {
    return guarded(async () => {
      if (limit <= 0) return [];
      const docs = await this.versions.find({ seq: { $gt: after } }).sort({ seq: 1 }).limit(limit).toArray();
      const creators = await this.creatorsOf(docs);
      return docs.map((doc) => ({ seq: doc.seq as number, version: toVersion(doc, creators.get(`${doc.type}/${doc.id}`)) }));
    });
  }

  cursor(name: string): Promise<number> {
    return this.queue.cursor(name);
  }

  lease(name: string, owner: string, now: string, ms: number): Promise<boolean> {
    return this.queue.lease(name, owner, now, ms);
  }

  read(type: string, id: string): Promise<ReadResult> {
    return guarded(async () => readResult(await this.resources.findOne({ _id: `${type}/${id}` }, { projection: RESULT_PROJECTION })));
  }

  readVersion(type: string, id: string, versionId: number): Promise<ReadResult> {
    return guarded(async () => {
      const doc = await this.versions.findOne({ type, id, version: versionId });
      if (!doc) return { kind: 'missing' };
      const current = await this.resources.findOne({ _id: `${type}/${id}` }, { projection: { creator: 1 } });
      const version = toVersion(doc, current?.creator);
      return version.deleted ? { kind: 'deleted', version } : { kind: 'found', version };
    });
  }

  history(scope: HistoryScope, query: HistoryQuery): Promise<HistoryPage> {
    return guarded(async () => {
      const parts: Filter[] = [];
      if (scope.level !== 'system') parts.push({ type: scope.type });
      if (scope.level === 'instance') parts.push({ id: scope.id });
      if (query.cursor !== undefined) {
        const [at, id] = decodeHistoryCursor(query.cursor);
        parts.push({ $or: [{ lastUpdated: { $lt: at } }, { lastUpdated: at, _id: { $lt: id } }] });
      }
      if (query.since !== undefined) parts.push({ lastUpdated: { $gte: query.since } });
      if (query.restriction) {
        // Versions of the resources whose current version the restriction matches.
        const current = await this.resolver()(await compileFilter(query.restriction, this.resolver()));
        const byType = new Map<string, string[]>();
        for (const doc of current) {
          if (!byType.has(doc.type)) byType.set(doc.type, []);
          byType.get(doc.type)!.push(doc.id);
        }
        parts.push(byType.size === 0 ? { _id: { $in: [] } } : { $or: [...byType].map(([type, ids]) => ({ type, id: { $in: ids } })) });
      }
      const docs = await this.versions
        .find(parts.length > 0 ? { $and: parts } : {})
        .sort({ lastUpdated: -1, _id: -1 })
        .limit(query.count + 1)
        .toArray();
      const shown = docs.slice(0, query.count);
      const creators = await this.creatorsOf(shown);
      const page: HistoryPage = { versions: shown.map((doc) => toVersion(doc, creators.get(`${doc.type}/${doc.id}`))) };
      if (docs.length > query.count && query.count > 0) page.next = encodeHistoryCursor(docs[query.count - 1]);
      if (scope.level === 'instance') page.total = await this.versions.countDocuments({ type: scope.type, id: scope.id });
      return page;
    });
  }

  // The creator lives on the current document (kept across versions, as the embedded engine does).
  private async creatorsOf(docs: VersionDoc[]): Promise<Map<string, string>> {
    const ids = [...new Set(docs.map((d) => `${d.type}/${d.id}`))];
    if (ids.length === 0) return new Map();
    const current = await this.resources.find({ _id: { $in: ids }, creator: { $exists: true } }, { projection: { creator: 1 } }).toArray();
    return new Map(current.map((doc) => [doc._id, doc.creator as string]));
  }

  search(plan: SearchPlan, query: SearchQuery): Promise<SearchPage> {
    return guarded(() => this.searchIn(plan, query));
  }

  private async searchIn(plan: SearchPlan, query: SearchQuery, session?: ClientSession): Promise<SearchPage> {
    const after = query.cursor !== undefined ? decodeKeys(query.cursor) : undefined;
    const compiled = await compileSearch(plan, this.resolver(session), after, query.count + 1);
    // Large sorts may spill to disk, outside transactions (a conditional create's check is a small search).
    const rows = await this.resources.aggregate<CurrentDoc & Record<string, unknown>>(compiled.pipeline, session ? { session } : { allowDiskUse: true }).toArray();
    const page: SearchPage = { matches: rows.slice(0, query.count).map((row) => toVersion(row, row.creator)) };
    if (rows.length > query.count && query.count > 0) page.next = encodeKeys(compiled.cursorOf(rows[query.count - 1]));
    if (query.total && query.cursor === undefined && query.count > 0 && rows.length <= query.count) {
      // A first page that holds every match counts them itself.
      page.total = page.matches.length;
    } else if (query.total && query.totalAtMost !== undefined) {
      const n = await this.resources.countDocuments(compiled.filter, { ...(session ? { session } : {}), limit: query.totalAtMost + 1 });
      if (n <= query.totalAtMost) page.total = n;
    } else if (query.total) page.total = await this.resources.countDocuments(compiled.filter, session ? { session } : {});
    return page;
  }

  /** Chains and _has targets, looked up in the same session (the transaction's snapshot). */
  private resolver(session?: ClientSession): Resolve {
    return (filter) => this.resources.find(filter, { projection: { type: 1, id: 1, ref: 1 }, ...(session ? { session } : {}) }).toArray();
  }

  /**
   * The versions a transaction writes are inserted at its end, numbered by one increment of the
   * `versions` counter (the change feed's seq). Two transactions incrementing it conflict, so the
   * second runs again once the first committed, on a snapshot that holds it: seq order is commit
   * order. The cost: every transaction that writes a version writes that one document, so such
   * transactions are serialised (the losers of a race run again, up to inTransaction's attempts,
   * then answer StoreUnavailable); the increment is the last write, to keep the window short.
   */
  transact(ops: WriteOp[], at: string): Promise<WriteResult[]> {
    return guarded(() =>
      inTransaction(this.client, async (session) => {
        const results: WriteResult[] = [];
        const written: VersionDoc[] = [];
        for (const op of ops) results.push(await this.apply(op, at, session, written));
        if (written.length > 0) {
          const last = await increment(this.counters, VERSIONS_COUNTER, written.length, session);
          const first = last - written.length + 1;
          await this.versions.insertMany(
            written.map((doc, i) => ({ _id: new ObjectId(), ...doc, seq: first + i })),
            { session },
          );
        }
        return results;
      }),
    );
  }

  /** One op in the transaction; the versions it writes are appended to `written` (see transact). */
  private async apply(op: WriteOp, at: string, session: ClientSession, written: VersionDoc[]): Promise<WriteResult> {
    switch (op.kind) {
      case 'create': {
        const type = op.resource.resourceType;
        if (op.ifNoneExist) {
          // Two conditional creates with the same criteria write the same lock document, so they
          // conflict and the second re-runs its check after the first committed.
          const lock = `ifNoneExist ${type} ${crypto.createHash('sha256').update(JSON.stringify(op.ifNoneExist)).digest('hex')}`;
          try {
            await this.locks.updateOne({ _id: lock }, { $inc: { n: 1 } }, { upsert: true, session });
          } catch (error) {
            // The lock document was created by a transaction that committed meanwhile.
            if (isDuplicateKey(error)) throw new Retry();
            throw error;
          }
          const found = await this.searchIn(op.ifNoneExist, { count: 2 }, session);
          if (found.matches.length > 1) throw new WriteConflict('multiple-matches', type, 'the conditional create criteria match more than one resource');
          if (found.matches.length === 1) {
            if (op.failIfExists) throw new WriteConflict('already-exists', type, 'the conditional create criteria match an existing resource');
            return { kind: 'existing', version: found.matches[0] };
          }
        }
        try {
          return { kind: 'created', version: await this.writeVersion(op.resource, 1, at, op.index, op.creator, undefined, session, written) };
        } catch (error) {
          if (isDuplicateKey(error)) throw new WriteConflict('already-exists', `${type}/${op.resource.id}`, 'the id is already taken');
          throw error;
        }
      }
      case 'update': {
        const { resourceType: type, id } = op.resource;
        const target = `${type}/${id}`;
        const row = await this.resources.findOne({ _id: target }, { projection: { ...RESULT_PROJECTION, patient: 1 }, session });
        if (op.mustBeNew && row) throw new WriteConflict('already-exists', target, 'the resource was created meanwhile');
        if (op.expectedVersion !== undefined && (!row || row.version !== op.expectedVersion)) {
          throw new WriteConflict('version-mismatch', target, `expected version ${op.expectedVersion}, current is ${row ? row.version : 'none'}`);
        }
        if (row && !row.deleted) {
          const previous = toVersion(row, row.creator);
          if (previous.resource && sameContent(previous.resource, op.resource)) return { kind: 'unchanged', version: previous };
          return { kind: 'updated', version: await this.writeVersion(op.resource, row.version + 1, at, op.index, row.creator ?? op.creator, row, session, written), previous };
        }
        try {
          return { kind: 'created', version: await this.writeVersion(op.resource, (row?.version ?? 0) + 1, at, op.index, row?.creator ?? op.creator, row ?? undefined, session, written) };
        } catch (error) {
          // Created by a concurrent transaction since our read: run again, as an update.
          if (isDuplicateKey(error) && !op.mustBeNew) throw new Retry();
          if (isDuplicateKey(error)) throw new WriteConflict('already-exists', target, 'the resource was created meanwhile');
          throw error;
        }
      }
      case 'delete': {
        const target = `${op.type}/${op.id}`;
        const row = await this.resources.findOne({ _id: target }, { projection: { version: 1, deleted: 1, creator: 1, patient: 1 }, session });
        if (op.expectedVersion !== undefined && (!row || row.version !== op.expectedVersion)) {
          throw new WriteConflict('version-mismatch', target, `expected version ${op.expectedVersion}, current is ${row ? row.version : 'none'}`);
        }
        if (!row || row.deleted) return { kind: 'absent' };
        const version: Version = { type: op.type, id: op.id, versionId: row.version + 1, lastUpdated: at, deleted: true };
        await this.replaceCurrent(currentDocument(version, [], row.creator, row.patient), row, session);
        written.push(versionDocument(version, row.patient));
        return { kind: 'deleted', version };
      }
      case 'stamp': {
        const doc = await this.stampDocs.findOneAndUpdate({ _id: op.key }, { $inc: { n: 1 } }, { upsert: true, returnDocument: 'after', session });
        return { kind: 'stamped', key: op.key, stamp: doc?.n ?? 1 };
      }
      case 'cursor':
        await this.queue.moveCursor(op.name, op.from, op.to, session);
        return { kind: 'cursor', name: op.name, value: op.to };
      case 'enqueue':
        return { kind: 'enqueued', queue: op.queue, number: await this.queue.enqueue(op.queue, op.data, op.due, at, session) };
      case 'expunge': {
        const target = `${op.type}/${op.id}`;
        const current = await this.resources.deleteOne({ _id: target }, { session });
        const versions = await this.versions.deleteMany({ type: op.type, id: op.id }, { session });
        return { kind: 'erased', found: current.deletedCount + versions.deletedCount > 0 };
      }
      case 'redact': {
        const { resourceType: type, id } = op.resource;
        const row = await this.resources.findOne({ _id: `${type}/${id}` }, { session });
        if (!row || row.deleted) return { kind: 'erased', found: false };
        const version: Version = { type, id, versionId: row.version, lastUpdated: row.lastUpdated, deleted: false, resource: stamped(op.resource, row.version, row.lastUpdated) };
        await this.replaceCurrent(currentDocument(version, op.index, row.creator, row.patient), row, session);
        await this.versions.updateOne({ type, id, version: row.version }, { $set: { resource: version.resource } }, { session });
        await this.versions.deleteMany({ type, id, version: { $ne: row.version } }, { session });
        return { kind: 'erased', found: true };
      }
      case 'unstamp':
        return { kind: 'erased', found: (await this.stampDocs.deleteOne({ _id: op.key }, { session })).deletedCount > 0 };
      case 'drop-queue':
        return { kind: 'erased', found: await this.queue.drop(op.queue, session) };
      default: {
        const unreachable: never = op;
        throw new Error(`unknown write ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /**
   * Writes the current document of a version, and appends the version to `written` (inserted at
   * the transaction's end); `existing` is the current document it replaces, if any.
   */
  private async writeVersion(
    resource: Resource & { id: string },
    versionId: number,
    at: string,
    index: IndexEntry[],
    creator: string | undefined,
    existing: Pick<CurrentDoc, 'version' | 'patient'> | undefined,
    session: ClientSession,
    written: VersionDoc[],
  ): Promise<Version> {
    const { resourceType: type, id } = resource;
    const version: Version = { type, id, versionId, lastUpdated: at, deleted: false, resource: stamped(resource, versionId, at) };
    if (creator) version.creator = creator;
    const patient = patientKey(type, id, index);
    const doc = currentDocument(version, index, creator, patient);
    if (existing) await this.replaceCurrent(doc, existing, session);
    else await this.resources.insertOne(doc, { session });
    written.push(versionDocument(version, patient));
    return version;
  }

  // The optimistic lock, enforced by the database: only the version that was read is replaced.
  // The filter names the patient key it had: on a sharded cluster a replacement that moves the
  // document to another shard key value must name the current one.
  private async replaceCurrent(doc: CurrentDoc, read: Pick<CurrentDoc, 'version' | 'patient'>, session: ClientSession): Promise<void> {
    const result = await this.resources.replaceOne({ _id: doc._id, version: read.version, patient: read.patient }, doc, { session });
    if (result.matchedCount === 0) throw new Retry();
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/**
 * Connects and checks the deployment: a replica set or a sharded cluster (transactions need one),
 * then creates the indexes. Throws StoreUnavailable when no server answers in time, and an Error
 * naming the problem when the server is a standalone one.
 */
export async function openMongoStore(options: MongoOptions): Promise<MongoStore> {
  const where = redacted(options.uri);
  const client = new MongoClient(options.uri, {
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 10_000,
    writeConcern: { w: 'majority', journal: true },
    readConcern: { level: 'majority' },
    retryWrites: true,
    retryReads: true,
    appName: 'carnet',
  });
  try {
    await client.connect();
    const hello = await client.db('admin').command({ hello: 1 });
    if (typeof hello.setName !== 'string' && hello.msg !== 'isdbgrid') {
      throw new Error(
        `MongoDB at ${where} is a standalone server; Carnet needs a replica set or a sharded cluster (its writes are multi-document transactions). Start mongod with --replSet and run rs.initiate() (docs/deployment.md)`,
      );
    }
    const store = new MongoStore(client, client.db(options.database ?? databaseOf(options.uri) ?? 'carnet'));
    await ensureIndexes(store.db);
    return store;
  } catch (error) {
    await client.close().catch(() => undefined);
    if (isUnavailable(error)) {
      throw new StoreUnavailable(`MongoDB at ${where} is unreachable (no server answered within ${options.serverSelectionTimeoutMS ?? 10_000} ms): ${(error as Error).message}`, { cause: error });
    }
    throw error;
  }
}
