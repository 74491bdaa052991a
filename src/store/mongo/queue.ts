// store/mongo/queue: the MongoDB engine's delivery state: named cursors (`cursors`, one document
// per cursor), durable queues (`queue`, one document per item, unique on {queue, number}, numbered
// from a counter document of `counters` incremented in the enqueuing transaction) and leases
// (`leases`, one document per lease). The cursor and enqueue ops run inside transact()'s
// transaction (MongoStore.apply); claim, settle, resume and lease are single-document atomic
// updates conditioned on the lease, so two processes never both hold an item or a lease.

import type { ClientSession, Collection, Db, Filter } from 'mongodb';
import { WriteConflict, type DurableQueue, type QueuedItem, type Settlement } from '../port.js';
import { instantMs } from '../content.js';
import { guarded, isDuplicateKey } from './errors.js';
import { Retry } from './transaction.js';

export interface CounterDoc {
  /** 'versions' (the change feed's seq: MongoStore), or 'queue <name>' (the last number given in a queue). */
  _id: string;
  n: number;
}

interface CursorDoc {
  _id: string;
  value: number;
}

interface ItemDoc {
  _id: string;
  queue: string;
  number: number;
  data: unknown;
  enqueued: string;
  state: QueuedItem['state'];
  attempts: number;
  /** Dates, so that instants compare as instants. */
  due: Date;
  error?: string;
  owner?: string;
  leaseUntil?: Date;
}

interface LeaseDoc {
  _id: string;
  owner: string;
  until: Date;
}

const itemId = (queue: string, number: number) => `${queue} ${number}`;
const at = (instant: string) => new Date(instantMs(instant, 'now'));

function toItem(doc: ItemDoc): QueuedItem {
  const item: QueuedItem = { queue: doc.queue, number: doc.number, data: doc.data, enqueued: doc.enqueued, state: doc.state, attempts: doc.attempts, due: doc.due.toISOString() };
  if (doc.error !== undefined) item.error = doc.error;
  return item;
}

/**
 * Adds `by` to a counter in the session's transaction and answers its new value. Two transactions
 * incrementing the same counter conflict, so the second runs again after the first committed:
 * numbers are given in commit order, without gaps.
 */
export async function increment(counters: Collection<CounterDoc>, id: string, by: number, session: ClientSession): Promise<number> {
  try {
    const doc = await counters.findOneAndUpdate({ _id: id }, { $inc: { n: by } }, { upsert: true, returnDocument: 'after', session });
    return doc?.n ?? by;
  } catch (error) {
    // The counter was created by a transaction that committed meanwhile.
    if (isDuplicateKey(error)) throw new Retry();
    throw error;
  }
}

/** Cursors, queues and leases in one database. */
export class MongoDelivery implements DurableQueue {
  private readonly cursors: Collection<CursorDoc>;
  private readonly items: Collection<ItemDoc>;
  private readonly leases: Collection<LeaseDoc>;

  constructor(
    db: Db,
    private readonly counters: Collection<CounterDoc>,
  ) {
    this.cursors = db.collection<CursorDoc>('cursors');
    this.items = db.collection<ItemDoc>('queue');
    this.leases = db.collection<LeaseDoc>('leases');
  }

  cursor(name: string): Promise<number> {
    return guarded(async () => (await this.cursors.findOne({ _id: name }))?.value ?? 0);
  }

  /**
   * In the transaction: moves the cursor from `from` to `to`, or throws the WriteConflict that
   * aborts it. A concurrent transaction that moved it since this one's snapshot makes the write a
   * write conflict: this one runs again, re-reads, and then fails the check.
   */
  async moveCursor(name: string, from: number, to: number, session: ClientSession): Promise<void> {
    const current = (await this.cursors.findOne({ _id: name }, { session }))?.value ?? 0;
    if (current !== from) throw new WriteConflict('version-mismatch', `cursor:${name}`, `cursor ${name} is at ${current}, not ${from}`);
    try {
      await this.cursors.updateOne({ _id: name }, { $set: { value: to } }, { upsert: true, session });
    } catch (error) {
      if (isDuplicateKey(error)) throw new Retry();
      throw error;
    }
  }

  /** In the transaction: appends an item to `queue` and answers its number. */
  async enqueue(queue: string, data: unknown, due: string | undefined, enqueued: string, session: ClientSession): Promise<number> {
    const dueAt = new Date(instantMs(due ?? enqueued, 'the due instant of an enqueued item'));
    const number = await increment(this.counters, `queue ${queue}`, 1, session);
    await this.items.insertOne({ _id: itemId(queue, number), queue, number, data: data ?? null, enqueued, state: 'pending', attempts: 0, due: dueAt }, { session });
    return number;
  }

  /** In the transaction: erases every item of `queue` and its numbering (the purge of an account). */
  async drop(queue: string, session: ClientSession): Promise<boolean> {
    const items = await this.items.deleteMany({ queue }, { session });
    const counter = await this.counters.deleteOne({ _id: `queue ${queue}` }, { session });
    return items.deletedCount + counter.deletedCount > 0;
  }

  list(queue: string, after: number, limit: number): Promise<QueuedItem[]> {
    return guarded(async () => {
      if (limit <= 0) return [];
      return (await this.items.find({ queue, number: { $gt: after } }).sort({ number: 1 }).limit(limit).toArray()).map(toItem);
    });
  }

  status(queue: string): Promise<{ last: number; pending: number; done: number; failed: number }> {
    return guarded(async () => {
      const status = { last: (await this.counters.findOne({ _id: `queue ${queue}` }))?.n ?? 0, pending: 0, done: 0, failed: 0 };
      const counts = await this.items.aggregate<{ _id: QueuedItem['state']; n: number }>([{ $match: { queue } }, { $group: { _id: '$state', n: { $sum: 1 } } }]).toArray();
      for (const { _id, n } of counts) status[_id] = n;
      return status;
    });
  }

  /**
   * The heads are found by an aggregation, then leased one by one, each by an update conditioned
   * on it being pending, due and free: a head another owner leased meanwhile is skipped. A pending
   * head stays the head until it is done (the items before it are done, which is final).
   */
  claim(owner: string, now: string, leaseMs: number, limit: number, prefix?: string): Promise<QueuedItem[]> {
    return guarded(async () => {
      if (limit <= 0) return [];
      const nowAt = at(now);
      const open: Record<string, unknown> = { state: { $in: ['pending', 'failed'] } };
      if (prefix) open.queue = { $regex: `^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}` };
      const claimable: Filter<ItemDoc> = { state: 'pending', due: { $lte: nowAt }, $or: [{ leaseUntil: { $exists: false } }, { leaseUntil: { $lte: nowAt } }, { owner }] };
      const heads = await this.items
        .aggregate<ItemDoc>([
          { $match: open },
          { $sort: { queue: 1, number: 1 } },
          { $group: { _id: '$queue', head: { $first: '$$ROOT' } } },
          { $replaceWith: '$head' },
          { $match: claimable },
          { $sort: { due: 1, queue: 1 } },
          // Some may be leased by another owner before this one gets them.
          { $limit: limit * 2 },
        ])
        .toArray();
      const claimed: QueuedItem[] = [];
      for (const head of heads) {
        if (claimed.length >= limit) break;
        const doc = await this.items.findOneAndUpdate(
          { _id: head._id, ...claimable },
          { $set: { owner, leaseUntil: new Date(nowAt.getTime() + leaseMs) } },
          { returnDocument: 'after' },
        );
        if (doc) claimed.push(toItem(doc));
      }
      return claimed;
    });
  }

  settle(queue: string, number: number, owner: string, now: string, outcome: Settlement): Promise<boolean> {
    return guarded(async () => {
      const held = { _id: itemId(queue, number), state: 'pending' as const, owner, leaseUntil: { $gt: at(now) } };
      const released = { $unset: { owner: '', leaseUntil: '' } } as const;
      let result;
      switch (outcome.kind) {
        case 'done':
          result = await this.items.updateOne(held, { $set: { state: 'done' }, ...released });
          break;
        case 'retry':
          result = await this.items.updateOne(held, { $set: { due: new Date(instantMs(outcome.due, 'the due instant of a retry')), error: outcome.error }, $inc: { attempts: 1 }, ...released });
          break;
        case 'failed':
          result = await this.items.updateOne(held, { $set: { state: 'failed', error: outcome.error }, $inc: { attempts: 1 }, ...released });
          break;
        default: {
          const unreachable: never = outcome;
          throw new Error(`unknown settlement ${JSON.stringify(unreachable)}`);
        }
      }
      return result.modifiedCount === 1;
    });
  }

  resume(queue: string, now: string): Promise<number> {
    return guarded(async () => (await this.items.updateMany({ queue, state: 'failed' }, { $set: { state: 'pending', due: at(now) } })).modifiedCount);
  }

  /**
   * Taken by an upsert conditioned on the lease being the owner's or expired: when another owner
   * holds it, the filter matches nothing and the insert of the same _id fails as a duplicate.
   */
  lease(name: string, owner: string, now: string, ms: number): Promise<boolean> {
    return guarded(async () => {
      const nowAt = at(now);
      try {
        await this.leases.updateOne({ _id: name, $or: [{ owner }, { until: { $lte: nowAt } }] }, { $set: { owner, until: new Date(nowAt.getTime() + ms) } }, { upsert: true });
        return true;
      } catch (error) {
        if (isDuplicateKey(error)) return false;
        throw error;
      }
    });
  }
}
