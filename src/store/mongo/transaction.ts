// store/mongo/transaction: runs the writes of one transact() as one multi-document transaction:
// snapshot reads, a majority and journaled commit, and a bounded re-run when a concurrent
// transaction won a write conflict (the re-run re-reads, so a stale If-Match then fails its check).

import { MongoServerError, type ClientSession, type MongoClient, type TransactionOptions } from 'mongodb';
import { StoreUnavailable } from '../port.js';
import { isUnavailable } from './errors.js';

const TRANSACTION: TransactionOptions = {
  readConcern: { level: 'snapshot' },
  // An acknowledged write is on a majority of the replica set, in their journals: it survives
  // the loss of the primary.
  writeConcern: { w: 'majority', journal: true },
  readPreference: 'primary',
};
const ATTEMPTS = 5;

/** A transaction lost a write conflict to a concurrent one: run it again from the start. */
export class Retry extends Error {}

/** A write conflict with a concurrent transaction (not an unreachable server): worth running again. */
function lostRace(error: unknown): boolean {
  if (error instanceof Retry) return true;
  return error instanceof MongoServerError && error.hasErrorLabel('TransientTransactionError') && !isUnavailable(error);
}

// The commit's outcome may be unknown after a network error: committing again is safe.
async function commit(session: ClientSession): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await session.commitTransaction();
      return;
    } catch (error) {
      if (attempt < 3 && error instanceof MongoServerError && error.hasErrorLabel('UnknownTransactionCommitResult')) continue;
      throw error;
    }
  }
}

export async function inTransaction<T>(client: MongoClient, work: (session: ClientSession) => Promise<T>): Promise<T> {
  const session = client.startSession();
  const again = (attempt: number, error: unknown): boolean => {
    if (!lostRace(error)) return false;
    if (attempt < ATTEMPTS) return true;
    throw new StoreUnavailable(`a write lost ${ATTEMPTS} races with concurrent writes to the same resources`, { cause: error });
  };
  try {
    for (let attempt = 1; ; attempt++) {
      session.startTransaction(TRANSACTION);
      let result: T;
      try {
        result = await work(session);
      } catch (error) {
        await session.abortTransaction().catch(() => undefined);
        if (again(attempt, error)) continue;
        throw error;
      }
      try {
        await commit(session);
        return result;
      } catch (error) {
        if (again(attempt, error)) continue;
        throw error;
      }
    }
  } finally {
    await session.endSession();
  }
}
