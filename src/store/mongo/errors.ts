// store/mongo/errors: which driver errors mean "the database cannot be reached now" (answered 503
// above the port, and retried by the client), as opposed to a bug or a refused write.

import { MongoError, MongoNetworkError, MongoNotConnectedError, MongoServerError, MongoServerSelectionError, MongoTopologyClosedError } from 'mongodb';
import { StoreUnavailable } from '../port.js';

// Server answers of a replica set in an election or shutting down (no primary to write to).
const NO_PRIMARY = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

export function isUnavailable(error: unknown): boolean {
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  if (error instanceof MongoNotConnectedError || error instanceof MongoTopologyClosedError) return true;
  if (!(error instanceof MongoError)) return false;
  if (error.hasErrorLabel('UnknownTransactionCommitResult') || error.hasErrorLabel('RetryableWriteError')) return true;
  return typeof error.code === 'number' && NO_PRIMARY.has(error.code);
}

/** An insert (or upsert) of a key that another write took first. */
export const isDuplicateKey = (error: unknown) => error instanceof MongoServerError && error.code === 11000;

/** The URI without credentials, for messages. */
export function redacted(uri: string): string {
  return uri.replace(/^(mongodb(?:\+srv)?:\/\/)[^@/]*@/, '$1').replace(/\?.*$/, '');
}

/** Runs a store operation; an unreachable database becomes StoreUnavailable. */
export async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isUnavailable(error)) throw new StoreUnavailable(`the MongoDB database is unavailable: ${(error as Error).message}`, { cause: error });
    throw error;
  }
}
