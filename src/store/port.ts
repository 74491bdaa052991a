// store/port: the storage port every engine implements. It speaks FHIR-shaped values
// (types, ids, versions, index entries, search plans), never SQL or MongoDB, nor HTTP.

import type { Readable } from 'node:stream';
import type { Resource } from '@medplum/fhirtypes';
import type { IndexEntry, SearchPlan } from '../search/types.js';

/** One stored version of a resource: its envelope and, unless it is a tombstone, its content. */
export interface Version {
  type: string;
  id: string;
  versionId: number;
  lastUpdated: string;
  deleted: boolean;
  /** The resource with meta.versionId and meta.lastUpdated set; absent for a delete tombstone. */
  resource?: Resource;
  /** Who created the resource (an actor key such as `client:<id>`), kept across updates. */
  creator?: string;
}

/** Facts about a read: the interaction decides between 200, 404 and 410. */
export type ReadResult = { kind: 'found'; version: Version } | { kind: 'deleted'; version: Version } | { kind: 'missing' };

export type HistoryScope = { level: 'system' } | { level: 'type'; type: string } | { level: 'instance'; type: string; id: string };

export interface HistoryQuery {
  count: number;
  /** Opaque cursor from a previous page's `next`; one the engine did not give is refused with a RangeError. */
  cursor?: string;
  /** Only versions updated at or after this instant (ISO 8601). */
  since?: string;
  /** Only versions of resources whose current version this plan matches (the policy's restriction). */
  restriction?: SearchPlan;
}

export interface HistoryPage {
  versions: Version[];
  /** Cursor of the next (older) page, absent on the last page. */
  next?: string;
  /** Number of versions in scope, when the engine can count them cheaply (instance history). */
  total?: number;
}

/** A write of one resource. Ids are assigned above the port; versions by the engine. */
export type ResourceOp =
  | {
      kind: 'create';
      resource: Resource & { id: string };
      index: IndexEntry[];
      /** Conditional create: re-checked inside the engine's transaction. */
      ifNoneExist?: SearchPlan;
      /**
       * With ifNoneExist: a match fails the whole transaction (WriteConflict 'already-exists',
       * nothing written) instead of answering `existing`, so that the ops written with the create
       * (its audit record, resources referring to it) are written only with it. The caller
       * re-checks and retries (fhir/enrol.ts).
       */
      failIfExists?: true;
      /** Who creates it (kept with the resource for the policy's "read back what you wrote"). */
      creator?: string;
      /**
       * A capability an engine may use or ignore: it may write these index entries later (in a
       * batch, off the commit that answers the caller) instead of in this transaction. The resource
       * is committed as usual, and an engine that defers must guarantee that:
       * - every search, restricted history and conditional create that could read the entries
       *   waits for them, so none can tell that they came later;
       * - the entries it writes are exactly `index`, kept with the commit (after a crash too): it
       *   never computes entries of its own from the resource;
       * - a rolled-back transaction leaves nothing to write, and an update or delete committed
       *   before the entries are written wins over them.
       * An engine that ignores it writes them at once. Set for AuditEvents (fhir/audited, and the
       * journal's fallback below: journalOps); docs/performance.md. test/store/contract.ts.
       */
      deferIndex?: true;
    }
  | {
      kind: 'update';
      resource: Resource & { id: string };
      index: IndexEntry[];
      /** Optimistic lock: the version the caller read (If-Match, or a resolved conditional update). */
      expectedVersion?: number;
      /** The update was resolved from a conditional match that found nothing: fail if the id exists now. */
      mustBeNew?: boolean;
      /** Who writes it; recorded as the creator only when the update creates the resource. */
      creator?: string;
    }
  | { kind: 'delete'; type: string; id: string; expectedVersion?: number };

/** Writes applied together by transact(). */
export type WriteOp =
  | ResourceOp
  /**
   * Adds one to the stamp named `key` (a counter that starts at 0), in the same transaction as the
   * other ops: whoever reads the stamp (Store.stamps) afterwards, through any process, sees the
   * writes it describes. The policy keys its cached consent states on them (docs/deployment.md).
   */
  | { kind: 'stamp'; key: string }
  /**
   * Compare-and-set of the named cursor (a number that starts at 0: Store.cursor): when its value
   * is not `from`, the whole transaction fails with WriteConflict('version-mismatch',
   * 'cursor:<name>') and writes nothing; else it becomes `to`. A consumer of Store.changes derives
   * what the changes (from, to] mean and moves its cursor in one transaction, so that several
   * processes racing do it once.
   */
  | { kind: 'cursor'; name: string; from: number; to: number }
  /**
   * Appends an item to a durable queue (Store.queue), numbered in that queue 1, 2, 3… without
   * gaps, in commit order, and in the same transaction as the other ops (a failed transact()
   * enqueues nothing). `data` is JSON; `due` (an ISO instant) is when it may first be claimed,
   * by default the transaction's `at`.
   */
  | { kind: 'enqueue'; queue: string; data: unknown; due?: string }
  /**
   * Erasure (a purged account, docs/accounts.md): removes every version of Type/id, its current
   * row and its index entries (written or pending), leaving no tombstone and nothing in the change
   * feed. Only the account purge writes it; no client interaction reaches it.
   */
  | { kind: 'expunge'; type: string; id: string }
  /**
   * Erasure inside a record that stays: replaces the content and the index entries of the current
   * version of `resource` in place (same version, lastUpdated and place in the change feed) and
   * removes its older versions. The purge takes a purged person out of an access record that is
   * also about other people this way. Absent resource: `absent`.
   */
  | { kind: 'redact'; resource: Resource & { id: string }; index: IndexEntry[] }
  /** Erasure: the stamp `key` is forgotten (read as 0 again), with the data it described. */
  | { kind: 'unstamp'; key: string }
  /** Erasure: every item of the durable queue `queue`, and its numbering, are forgotten. */
  | { kind: 'drop-queue'; queue: string };

export type WriteResult =
  | { kind: 'created'; version: Version }
  | { kind: 'updated'; version: Version; previous: Version }
  /** An update whose content equals the current version: no new version is written. */
  | { kind: 'unchanged'; version: Version }
  /** A conditional create that matched one existing resource. */
  | { kind: 'existing'; version: Version }
  | { kind: 'deleted'; version: Version }
  /** A delete of a resource that does not exist or is already deleted. */
  | { kind: 'absent' }
  /** A stamp op: the stamp's new value. */
  | { kind: 'stamped'; key: string; stamp: number }
  /** A cursor op: the cursor's new value (its `to`). */
  | { kind: 'cursor'; name: string; value: number }
  /** An enqueue op: the item's number in its queue. */
  | { kind: 'enqueued'; queue: string; number: number }
  /** An expunge, redact, unstamp or drop-queue op: whether there was something to erase. */
  | { kind: 'erased'; found: boolean };

/** Why transact() refused: the fhir layer turns these into 409/412. Nothing was written. */
export class WriteConflict extends Error {
  constructor(
    readonly reason: 'version-mismatch' | 'multiple-matches' | 'already-exists',
    readonly target: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The database cannot be reached (network lost, no primary, server selection timed out). The
 * fhir layer answers 503 with an OperationOutcome; the request may be retried. Nothing of the
 * failed call was acknowledged as written.
 */
export class StoreUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailable';
  }
}

export interface SearchQuery {
  count: number;
  /** Opaque cursor from a previous page's `next`; one the engine did not give is refused with a RangeError. */
  cursor?: string;
  /** Count every match, not only this page's. */
  total?: boolean;
  /**
   * With `total`: count at most this many matches, and leave `total` out when more match (the
   * `_total=estimate` of fhir/search: the count stops early instead of walking every match).
   */
  totalAtMost?: number;
}

export interface SearchPage {
  matches: Version[];
  /** Cursor of the next page, absent on the last page. */
  next?: string;
  /** Number of matches in all pages, when requested (and, with totalAtMost, when no more than that many). */
  total?: number;
}

/** A registered OAuth client: an entry of the app catalogue (auth/clients). */
export interface ClientRecord {
  id: string;
  name: string;
  kind: 'system' | 'patient-app' | 'practitioner-app';
  /** Public keys its client assertions are signed with. */
  jwks: { keys: Record<string, unknown>[] };
  /** The scopes it may be granted, space-separated. */
  scopes: string;
  /** Only certified clients get tokens and appear in the public catalogue. */
  certified: boolean;
  /** The organisation operating it (a vendor system's hospital, lab or pharmacy). */
  organizationId?: string;
  /** What users see in the catalogue: who makes the app... */
  editor?: string;
  /** ...what it is for, in the editor's words... */
  description?: string;
  /** ...and the date (YYYY-MM-DD) it passed certification. */
  certifiedOn?: string;
  created: string;
}

export interface ClientRegistry {
  register(client: ClientRecord): Promise<void>;
  get(id: string): Promise<ClientRecord | undefined>;
  list(): Promise<ClientRecord[]>;
  /**
   * Records a client assertion's jti until it expires; false if it was seen before (replay).
   * Kept in the store so that a replay is refused across restarts and processes.
   */
  consumeAssertion(clientId: string, jti: string, expiresAt: number): Promise<boolean>;
}

/** What is known of stored bytes: enough to check an attachment's size and hash without reading them. */
export interface BlobInfo {
  /** Content address: the SHA-256 of the bytes, lowercase hex. Equal bytes share one blob. */
  key: string;
  size: number;
  /** SHA-1 of the bytes, base64 (the form of FHIR Attachment.hash). */
  sha1: string;
}

/** An inclusive byte range, as HTTP Range gives it (`bytes=start-end`). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Attachment bytes (Binary content), kept outside the resource rows and streamed both ways, so a
 * 50 MiB imaging report never sits whole in memory. Content-addressed: put() of equal bytes is
 * idempotent, and a blob whose write transaction failed is an unreferenced orphan, never a
 * half-written document.
 */
export interface BlobStore {
  /** Stores the bytes durably (fsync'd, or majority-acknowledged) before resolving. */
  put(source: Uint8Array | AsyncIterable<Uint8Array>): Promise<BlobInfo>;
  stat(key: string): Promise<BlobInfo | undefined>;
  /** The bytes, or one range of them; undefined when no such blob exists. */
  get(key: string, range?: ByteRange): Promise<Readable | undefined>;
  /**
   * Erases the blob (the purge of an account, once no stored resource points at it any more);
   * false when there was none. Content-addressed: the caller checks that nothing else uses it.
   */
  remove(key: string): Promise<boolean>;
}

/** A resource created through Store.journal(): a fresh id, version 1 when the engine writes it. */
export interface JournalEntry {
  resource: Resource & { id: string };
  /** Its index entries, computed by the caller (search/extract) as for a create op. */
  index: IndexEntry[];
  /** Who creates it, as WriteOp's creator. */
  creator?: string;
}

/**
 * What a caller writes on an engine without journal(): the same creates, in one transact(), whose
 * index entries the engine may defer. `store.journal ? store.journal(entries, at) :
 * store.transact(journalOps(entries), at)` gives the same results on every engine.
 */
export function journalOps(entries: JournalEntry[]): WriteOp[] {
  return entries.map(({ resource, index, creator }) => ({ kind: 'create', resource, index, deferIndex: true, ...(creator ? { creator } : {}) }));
}

/** One committed version, in the store's commit order (Store.changes). */
export interface Change {
  seq: number;
  version: Version;
}

/**
 * An item of a durable queue. Instants (`due`) are answered as Date.toISOString() writes them,
 * whatever form they were given in; `enqueued` is the `at` of the transaction that enqueued it.
 */
export interface QueuedItem {
  queue: string;
  number: number;
  data: unknown;
  enqueued: string;
  /** 'done' and 'failed' are set by settle(); resume() sets failed items back to pending. */
  state: 'pending' | 'done' | 'failed';
  /** How many times it was settled with retry or failed. */
  attempts: number;
  due: string;
  /** The error of the last retry or failure. */
  error?: string;
}

/** How the holder of an item settles it (DurableQueue.settle). */
export type Settlement = { kind: 'done' } | { kind: 'retry'; due: string; error: string } | { kind: 'failed'; error: string };

/**
 * Queues of items delivered in order, one at a time per queue (a FHIR Subscription's
 * notifications): items are appended by transact()'s enqueue op, leased to a worker by claim(),
 * and settled by it. Every method is atomic, and safe across the processes of a deployment.
 */
export interface DurableQueue {
  /** Items of `queue` numbered after `after`, ascending, at most `limit`, in any state. */
  list(queue: string, after: number, limit: number): Promise<QueuedItem[]>;
  /** The last number given in `queue` (0 if none) and how many items are in each state. */
  status(queue: string): Promise<{ last: number; pending: number; done: number; failed: number }>;
  /**
   * Leases at most `limit` items to `owner` until now+leaseMs: of each queue (whose name starts
   * with `prefix`, when given), only its head, the oldest item not done, and only when the head
   * is pending, due at or before `now`, and not leased to someone else until after `now`. A queue
   * whose head failed is stalled until resume(). Two owners never hold the same item at once.
   */
  claim(owner: string, now: string, leaseMs: number, limit: number, prefix?: string): Promise<QueuedItem[]>;
  /**
   * Settles an item `owner` still holds (false, and nothing changes, when its lease was lost or
   * expired): done; retry (attempts+1, due, error kept, lease dropped); failed (attempts+1, error).
   */
  settle(queue: string, number: number, owner: string, now: string, outcome: Settlement): Promise<boolean>;
  /** Sets the failed items of `queue` back to pending, due `now`; answers how many. */
  resume(queue: string, now: string): Promise<number>;
}

export interface Store {
  /** Engine name for logs and the start-up line. */
  readonly name: string;
  readonly clients: ClientRegistry;
  readonly blobs: BlobStore;
  read(type: string, id: string): Promise<ReadResult>;
  readVersion(type: string, id: string, versionId: number): Promise<ReadResult>;
  history(scope: HistoryScope, query: HistoryQuery): Promise<HistoryPage>;
  search(plan: SearchPlan, query: SearchQuery): Promise<SearchPage>;
  /**
   * The current value of each stamp (0 for one never stamped), read from the database itself, so
   * that every process of a deployment sees every committed stamp op: a cache keyed on a stamp
   * read before the data it caches is coherent across processes.
   */
  stamps(keys: readonly string[]): Promise<number[]>;
  /** Applies every op or none; `at` is the lastUpdated of every version written. */
  transact(ops: WriteOp[], at: string): Promise<WriteResult[]>;
  /**
   * Every version committed after `after` (creates, updates, delete tombstones, and journaled
   * records of every process once taken in), in commit order, at most `limit`, with `seq`
   * strictly increasing in commit order: a consumer that remembers the last seq it handled
   * never misses nor repeats one. Versions carry resource and creator as read() does.
   */
  changes(after: number, limit: number): Promise<Change[]>;
  /** The value of a cursor (moved by transact()'s cursor op); 0 for one never moved. */
  cursor(name: string): Promise<number>;
  /** The durable queues whose items transact()'s enqueue op appends. */
  readonly queue: DurableQueue;
  /**
   * Takes or renews the lease `name` for `owner` until now+ms when it is free, expired, or
   * already owner's; true when owner holds it afterwards. For jobs that must run in one process
   * at a time.
   */
  lease(name: string, owner: string, now: string, ms: number): Promise<boolean>;
  /**
   * Optional capability: creates resources with fresh ids where the engine may write them into
   * its collections later, off the caller's path. The audit records of reads go this way
   * (audit/group-commit); without it, the caller creates them with transact(journalOps(entries)).
   * An engine that offers it guarantees, once the promise resolves:
   * - durability: the entries survive a process crash (the next open writes them), as an
   *   acknowledged transact() would;
   * - each entry is then version 1 of its resource, lastUpdated `at`, its creator kept, its index
   *   entries exactly `index` (never recomputed by the engine);
   * - visibility: every read, vread, history (any level, restricted too), search (chains and _has
   *   included) and conditional create that could return an entry or read its index entries
   *   sees it, and an update or delete of it finds it;
   * - close() writes every entry journaled before it.
   * The ids are fresh (the caller's, as for create ops).
   * test/store/contract.ts checks all of it on every engine that has it.
   */
  journal?(entries: JournalEntry[], at: string): Promise<void>;
  /**
   * Optional capability, after erasures (the purge of accounts): rewrites the engine's files so
   * that nothing erased stays readable in them, e.g. as a copy of an index key left in an interior
   * page (SQLite: VACUUM, O(database), so the scheduler runs it once per round that purged).
   */
  reclaim?(): Promise<void>;
  close(): Promise<void>;
}
