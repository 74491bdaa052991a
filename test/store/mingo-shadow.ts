// The proof of the MongoDB search compiler without a MongoDB server: a store that runs on the
// embedded engine and, beside it, keeps the MongoDB documents store/mongo/documents makes of every
// write (in memory). Every search() is also compiled by store/mongo/compile and evaluated with
// mingo (a MongoDB query language implementation) over those documents; the ids selected, their
// order, the next cursor and the total must be the embedded engine's, or the search throws (the
// request answers 500 and the test fails). Filters may only use operators MongoDB has and mingo
// implements: anything else throws too.

import { Aggregator, Query } from 'mingo';
import type { Change, HistoryPage, HistoryQuery, HistoryScope, JournalEntry, ReadResult, SearchPage, SearchQuery, Store, WriteOp, WriteResult } from '../../src/store/port.js';
import type { SearchPlan } from '../../src/search/types.js';
import { decodeKeys, encodeKeys, stamped } from '../../src/store/content.js';
import type { Filter, Resolve } from '../../src/store/mongo/compile.js';
import { compileSearch } from '../../src/store/mongo/page.js';
import { currentDocument, patientKey, type CurrentDoc } from '../../src/store/mongo/documents.js';

/** The MongoDB operators the compiler may emit: query, aggregation stages and expressions. */
const ALLOWED = new Set([
  ...['$and', '$or', '$nor', '$in', '$nin', '$eq', '$gt', '$gte', '$lt', '$lte', '$elemMatch', '$regex'],
  ...['$match', '$addFields', '$sort', '$limit', '$project'],
  ...['$ifNull', '$min', '$max', '$map', '$filter', '$concat'],
]);

/** Throws when `value` uses an operator outside ALLOWED. */
export function assertSupported(value: unknown, where = 'filter'): void {
  if (Array.isArray(value)) {
    for (const item of value) assertSupported(item, where);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const [key, inner] of Object.entries(value)) {
    if (key.startsWith('$') && !ALLOWED.has(key)) throw new Error(`the ${where} uses ${key}, which is not in the MongoDB operator set the engine may use`);
    assertSupported(inner, where);
  }
}

/** Evaluates a filter over documents as MongoDB would. */
export function mingoFind(docs: CurrentDoc[], filter: Filter): CurrentDoc[] {
  assertSupported(filter);
  return new Query(filter).find<CurrentDoc>(docs).all();
}

export function mingoAggregate(docs: CurrentDoc[], pipeline: Record<string, unknown>[]): Record<string, unknown>[] {
  assertSupported(pipeline, 'pipeline');
  return new Aggregator(pipeline).run(docs) as Record<string, unknown>[];
}

/** What one checked search selected on each side. */
export interface Comparison {
  sqlite: { ids: string[]; next?: string; total?: number };
  mongo: { ids: string[]; next?: string; total?: number };
}

/** Runs the MongoDB form of a search over `docs` and compares it with the page the embedded engine gave. */
export async function compareSearch(docs: CurrentDoc[], plan: SearchPlan, query: SearchQuery, page: SearchPage): Promise<Comparison> {
  const resolve: Resolve = async (filter) => mingoFind(docs, filter);
  const after = query.cursor !== undefined ? decodeKeys(query.cursor) : undefined;
  const compiled = await compileSearch(plan, resolve, after, query.count + 1);
  const rows = mingoAggregate(docs, compiled.pipeline);
  const mongo: Comparison['mongo'] = { ids: rows.slice(0, query.count).map((r) => `${r.type as string}/${r.id as string}`) };
  if (rows.length > query.count && query.count > 0) mongo.next = encodeKeys(compiled.cursorOf(rows[query.count - 1]));
  if (query.total) {
    const n = mingoFind(docs, compiled.filter).length;
    // SearchQuery.totalAtMost: no total when more match.
    if (query.totalAtMost === undefined || n <= query.totalAtMost) mongo.total = n;
  }
  const sqlite: Comparison['sqlite'] = { ids: page.matches.map((m) => `${m.type}/${m.id}`) };
  if (page.next !== undefined) sqlite.next = page.next;
  if (page.total !== undefined) sqlite.total = page.total;
  return { sqlite, mongo };
}

export function same(c: Comparison): boolean {
  return JSON.stringify(c.sqlite) === JSON.stringify(c.mongo);
}

/** How many searches the shadows of this process checked (printed at exit). */
export const tally = { checked: 0, mismatches: 0 };
let reporting = false;

export class MingoShadow implements Store {
  readonly name: string;
  readonly clients: Store['clients'];
  readonly blobs: Store['blobs'];
  readonly queue: Store['queue'];
  /** The current documents of the MongoDB engine, by "Type/id". */
  readonly docs = new Map<string, CurrentDoc>();
  /** The inner store's journal, if it has one; its records are mirrored as the creates they are. */
  readonly journal?: (entries: JournalEntry[], at: string) => Promise<void>;

  constructor(readonly inner: Store) {
    this.name = inner.name;
    this.clients = inner.clients;
    this.blobs = inner.blobs;
    this.queue = inner.queue;
    if (inner.journal) {
      const journal = inner.journal.bind(inner);
      this.journal = async (entries, at) => {
        await journal(entries, at);
        for (const { resource, index, creator } of entries) {
          const version = { type: resource.resourceType, id: resource.id, versionId: 1, lastUpdated: at, deleted: false, resource: stamped(resource, 1, at) };
          this.mirror({ kind: 'create', resource, index, ...(creator ? { creator } : {}) }, { kind: 'created', version });
        }
      };
    }
    if (!reporting) {
      reporting = true;
      process.on('exit', () => process.stdout.write(`# mingo shadow: ${tally.checked} searches compiled for MongoDB and checked against the embedded engine, ${tally.mismatches} mismatches\n`));
    }
  }

  read(type: string, id: string): Promise<ReadResult> {
    return this.inner.read(type, id);
  }

  readVersion(type: string, id: string, versionId: number): Promise<ReadResult> {
    return this.inner.readVersion(type, id, versionId);
  }

  history(scope: HistoryScope, query: HistoryQuery): Promise<HistoryPage> {
    return this.inner.history(scope, query);
  }

  stamps(keys: readonly string[]): Promise<number[]> {
    return this.inner.stamps(keys);
  }

  changes(after: number, limit: number): Promise<Change[]> {
    return this.inner.changes(after, limit);
  }

  cursor(name: string): Promise<number> {
    return this.inner.cursor(name);
  }

  lease(name: string, owner: string, now: string, ms: number): Promise<boolean> {
    return this.inner.lease(name, owner, now, ms);
  }

  async transact(ops: WriteOp[], at: string): Promise<WriteResult[]> {
    const results = await this.inner.transact(ops, at);
    results.forEach((result, i) => this.mirror(ops[i], result));
    return results;
  }

  /** Applies a committed write to the documents, as the MongoDB engine writes them. */
  private mirror(op: WriteOp, result: WriteResult): void {
    if (result.kind === 'created' || result.kind === 'updated') {
      if (op.kind !== 'create' && op.kind !== 'update') throw new Error(`a ${op.kind} cannot create`);
      const key = `${result.version.type}/${result.version.id}`;
      const creator = this.docs.get(key)?.creator ?? op.creator;
      this.docs.set(key, currentDocument(result.version, op.index, creator, patientKey(result.version.type, result.version.id, op.index)));
    } else if (result.kind === 'deleted') {
      const key = `${result.version.type}/${result.version.id}`;
      const before = this.docs.get(key);
      this.docs.set(key, currentDocument(result.version, [], before?.creator, before?.patient ?? key));
    }
  }

  async search(plan: SearchPlan, query: SearchQuery): Promise<SearchPage> {
    const page = await this.inner.search(plan, query);
    const comparison = await compareSearch([...this.docs.values()], plan, query, page);
    tally.checked++;
    if (!same(comparison)) {
      tally.mismatches++;
      const message = `MongoDB compiler mismatch for ${JSON.stringify(plan)} ${JSON.stringify(query)}: ${JSON.stringify(comparison)}`;
      process.stderr.write(`${message}\n`);
      throw new Error(message);
    }
    return page;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
