// store/sqlite/queue: the embedded engine's delivery state (tables in schema.ts): named cursors
// over the change feed, durable queues and leases (Store.cursor, Store.queue, Store.lease). The
// cursor and enqueue ops run inside the store's transactions (SqliteStore.apply); claim, settle,
// resume and lease each run in one IMMEDIATE transaction where the store's writes run (the writer
// thread of a file database: writer-thread.ts), so two processes on one data directory never both
// hold an item or a lease. Reads run on the connection that answers.

import type Database from 'better-sqlite3';
import { WriteConflict, type DurableQueue, type QueuedItem, type Settlement } from '../port.js';
import { instantMs } from '../content.js';

/** A write of the queue or of a lease made outside transact(): what the writer thread is sent. */
export type QueueCall =
  | { call: 'claim'; owner: string; now: string; leaseMs: number; limit: number; prefix?: string }
  | { call: 'settle'; queue: string; number: number; owner: string; now: string; outcome: Settlement }
  | { call: 'resume'; queue: string; now: string }
  | { call: 'lease'; name: string; owner: string; now: string; ms: number }
  /** Not a queue call: Store.reclaim (VACUUM), run where the store's writes run. */
  | { call: 'vacuum' };

/** The calls this file answers (the others are the store's: SqliteStore.callNow). */
export type DeliveryCall = Exclude<QueueCall, { call: 'vacuum' }>;

/** What each call answers. */
export interface QueueAnswers {
  claim: QueuedItem[];
  settle: boolean;
  resume: number;
  lease: boolean;
  vacuum: boolean;
}

interface ItemRow {
  queue: string;
  number: number;
  data: string;
  enqueued: string;
  state: QueuedItem['state'];
  attempts: number;
  due: number;
  error: string | null;
}

function toItem(row: ItemRow): QueuedItem {
  const item: QueuedItem = {
    queue: row.queue,
    number: row.number,
    data: JSON.parse(row.data) as unknown,
    enqueued: row.enqueued,
    state: row.state,
    attempts: row.attempts,
    due: new Date(row.due).toISOString(),
  };
  if (row.error !== null) item.error = row.error;
  return item;
}

const ITEM = 'q.queue, q.number, q.data, q.enqueued, q.state, q.attempts, q.due, q.error';

// An item is held by `owner` while its lease runs: settle() changes nothing otherwise.
const HELD = "queue = @queue AND number = @number AND state = 'pending' AND owner = @owner AND lease_until > @now";

/** The statements of the delivery tables on one connection. */
export class QueueTables {
  private readonly statements;

  constructor(private readonly db: Database.Database) {
    this.statements = {
      cursor: db.prepare<[string], { value: number }>('SELECT value FROM cursors WHERE name = ?'),
      setCursor: db.prepare<[string, number]>('INSERT INTO cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value'),
      nextNumber: db.prepare<[string], { last: number }>(
        'INSERT INTO queue_last (queue, last) VALUES (?, 1) ON CONFLICT (queue) DO UPDATE SET last = last + 1 RETURNING last',
      ),
      insertItem: db.prepare<[string, number, string, string, number]>(
        "INSERT INTO queue_item (queue, number, data, enqueued, state, attempts, due) VALUES (?, ?, ?, ?, 'pending', 0, ?)",
      ),
      list: db.prepare<[string, number, number], ItemRow>(`SELECT ${ITEM} FROM queue_item q WHERE q.queue = ? AND q.number > ? ORDER BY q.number LIMIT ?`),
      last: db.prepare<[string], { last: number }>('SELECT last FROM queue_last WHERE queue = ?'),
      counts: db.prepare<[string], { state: QueuedItem['state']; n: number }>('SELECT state, count(*) AS n FROM queue_item WHERE queue = ? GROUP BY state'),
      // Of each queue, its head (the first item not done), when it can be leased to @owner now.
      heads: db.prepare<{ prefix: string; now: number; owner: string; limit: number }, ItemRow>(
        `SELECT ${ITEM}
         FROM (SELECT queue, min(number) AS number FROM queue_item
               WHERE state <> 'done' AND substr(queue, 1, length(@prefix)) = @prefix GROUP BY queue) h
         JOIN queue_item q ON q.queue = h.queue AND q.number = h.number
         WHERE q.state = 'pending' AND q.due <= @now AND (q.lease_until IS NULL OR q.lease_until <= @now OR q.owner = @owner)
         ORDER BY q.due, q.queue LIMIT @limit`,
      ),
      lend: db.prepare<[string, number, string, number]>('UPDATE queue_item SET owner = ?, lease_until = ? WHERE queue = ? AND number = ?'),
      done: db.prepare(`UPDATE queue_item SET state = 'done', owner = NULL, lease_until = NULL WHERE ${HELD}`),
      retry: db.prepare(`UPDATE queue_item SET attempts = attempts + 1, due = @due, error = @error, owner = NULL, lease_until = NULL WHERE ${HELD}`),
      failed: db.prepare(`UPDATE queue_item SET state = 'failed', attempts = attempts + 1, error = @error, owner = NULL, lease_until = NULL WHERE ${HELD}`),
      resume: db.prepare<[number, string]>("UPDATE queue_item SET state = 'pending', due = ? WHERE queue = ? AND state = 'failed'"),
      // Taken when free (no row), expired, or already the owner's: else the upsert changes nothing.
      lease: db.prepare<{ name: string; owner: string; until: number; now: number }>(
        `INSERT INTO leases (name, owner, until) VALUES (@name, @owner, @until)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until WHERE leases.owner = excluded.owner OR leases.until <= @now`,
      ),
    };
  }

  cursor(name: string): number {
    return this.statements.cursor.get(name)?.value ?? 0;
  }

  /** In a transaction: moves the cursor from `from` to `to`, or throws the WriteConflict that rolls it back. */
  moveCursor(name: string, from: number, to: number): void {
    const current = this.cursor(name);
    if (current !== from) throw new WriteConflict('version-mismatch', `cursor:${name}`, `cursor ${name} is at ${current}, not ${from}`);
    this.statements.setCursor.run(name, to);
  }

  /** In a transaction: appends an item to `queue` and answers its number. */
  enqueue(queue: string, data: unknown, due: string | undefined, at: string): number {
    const dueMs = instantMs(due ?? at, 'the due instant of an enqueued item');
    const { last } = this.statements.nextNumber.get(queue) as { last: number };
    this.statements.insertItem.run(queue, last, JSON.stringify(data ?? null), at, dueMs);
    return last;
  }

  list(queue: string, after: number, limit: number): QueuedItem[] {
    return this.statements.list.all(queue, after, Math.max(0, limit)).map(toItem);
  }

  status(queue: string): { last: number; pending: number; done: number; failed: number } {
    const status = { last: this.statements.last.get(queue)?.last ?? 0, pending: 0, done: 0, failed: 0 };
    for (const { state, n } of this.statements.counts.all(queue)) status[state] = n;
    return status;
  }

  /** Runs a call in its own IMMEDIATE transaction on this connection. */
  run<C extends DeliveryCall>(call: C): QueueAnswers[C['call']];
  run(call: DeliveryCall): QueueAnswers[QueueCall['call']] {
    const transaction = this.db.transaction(() => this.apply(call));
    return transaction.immediate();
  }

  private apply(call: DeliveryCall): QueueAnswers[QueueCall['call']] {
    switch (call.call) {
      case 'claim': {
        const now = instantMs(call.now, 'now');
        if (call.limit <= 0) return [];
        const heads = this.statements.heads.all({ prefix: call.prefix ?? '', now, owner: call.owner, limit: call.limit });
        for (const head of heads) this.statements.lend.run(call.owner, now + call.leaseMs, head.queue, head.number);
        return heads.map(toItem);
      }
      case 'settle': {
        const held = { queue: call.queue, number: call.number, owner: call.owner, now: instantMs(call.now, 'now') };
        const { outcome } = call;
        switch (outcome.kind) {
          case 'done':
            return this.statements.done.run(held).changes === 1;
          case 'retry':
            return this.statements.retry.run({ ...held, due: instantMs(outcome.due, 'the due instant of a retry'), error: outcome.error }).changes === 1;
          case 'failed':
            return this.statements.failed.run({ ...held, error: outcome.error }).changes === 1;
          default: {
            const unreachable: never = outcome;
            throw new Error(`unknown settlement ${JSON.stringify(unreachable)}`);
          }
        }
      }
      case 'resume':
        return this.statements.resume.run(instantMs(call.now, 'now'), call.queue).changes;
      case 'lease': {
        const now = instantMs(call.now, 'now');
        return this.statements.lease.run({ name: call.name, owner: call.owner, until: now + call.ms, now }).changes === 1;
      }
      default: {
        const unreachable: never = call;
        throw new Error(`unknown queue call ${JSON.stringify(unreachable)}`);
      }
    }
  }
}

/** Store.queue of the embedded engine: reads on the tables' connection, writes through `write`. */
export class SqliteQueue implements DurableQueue {
  constructor(
    private readonly tables: QueueTables,
    private readonly write: <C extends QueueCall>(call: C) => Promise<QueueAnswers[C['call']]>,
  ) {}

  async list(queue: string, after: number, limit: number): Promise<QueuedItem[]> {
    return this.tables.list(queue, after, limit);
  }

  async status(queue: string): Promise<{ last: number; pending: number; done: number; failed: number }> {
    return this.tables.status(queue);
  }

  claim(owner: string, now: string, leaseMs: number, limit: number, prefix?: string): Promise<QueuedItem[]> {
    return this.write({ call: 'claim', owner, now, leaseMs, limit, ...(prefix !== undefined ? { prefix } : {}) });
  }

  settle(queue: string, number: number, owner: string, now: string, outcome: Settlement): Promise<boolean> {
    return this.write({ call: 'settle', queue, number, owner, now, outcome });
  }

  resume(queue: string, now: string): Promise<number> {
    return this.write({ call: 'resume', queue, now });
  }
}
