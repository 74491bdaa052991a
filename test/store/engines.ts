// The storage engines the tests run on, one line each: the contract suite (contract.test.ts) runs
// on every one, and testStore() (test/helpers.ts) opens the scenario suites' stores with them.
// Each opens a fresh, empty store and can remove everything it made; a durable one can also close
// its store and open the same data again.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Store } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { openMongoStore } from '../../src/store/mongo/index.js';

export interface StoreUnderTest {
  /** The open store (a new one after reopen()). */
  readonly store: Store;
  /** Closes the store unless it is closed, and removes every file or database it made (once). */
  dispose(): Promise<void>;
  /** A durable engine: closes the store, opens the same data again, and answers the new store. */
  reopen?(): Promise<Store>;
}

export interface TestEngine {
  name: string;
  /** Why this engine cannot run here (said in the test output); undefined when it can. */
  skip?: string;
  open(): Promise<StoreUnderTest>;
}

/** `run` the first time, the same promise after. */
function once(run: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= run());
}

/** A store reopened by `open` on the same data, and `remove` run after its close. */
function durable(open: () => Promise<Store>, remove: () => Promise<void>): () => Promise<StoreUnderTest> {
  return async () => {
    let store = await open();
    let closed = false;
    return {
      get store() {
        return store;
      },
      async reopen() {
        closed = true;
        await store.close();
        store = await open();
        closed = false;
        return store;
      },
      dispose: once(async () => {
        if (!closed) await store.close();
        closed = true;
        await remove();
      }),
    };
  };
}

/**
 * The embedded engine as production opens it (src/main.ts: a data folder, CARNET_SQLITE_SYNC's
 * default 'normal'): its writer thread, its audit journal and deferred index rows, in a fresh
 * temporary folder that dispose() removes.
 */
export function sqliteFile(): Promise<StoreUnderTest> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-store-'));
  return durable(
    async () => new SqliteStore({ dataDir: dir, sync: 'normal' }),
    async () => fs.rmSync(dir, { recursive: true, force: true }),
  )();
}

/** The embedded engine in memory: no writer thread, no journal, gone at close. */
export async function sqliteMemory(): Promise<StoreUnderTest> {
  const store = new SqliteStore({ dataDir: ':memory:' });
  return { store, dispose: once(() => store.close()) };
}

let databases = 0;

/** The MongoDB engine on a fresh database of MONGODB_URI's server, dropped by dispose(). */
export function mongo(uri: string): Promise<StoreUnderTest> {
  const database = `carnet_test_${process.pid}_${++databases}`;
  return durable(
    () => openMongoStore({ uri, database, serverSelectionTimeoutMS: 5000 }),
    async () => {
      // Dropped through a connection of its own, the store's being closed.
      const again = await openMongoStore({ uri, database, serverSelectionTimeoutMS: 5000 });
      await again.db.dropDatabase();
      await again.close();
    },
  )();
}

export const MONGODB_SKIPPED =
  'MONGODB_URI not set: the MongoDB engine was SKIPPED (no MongoDB server here; set MONGODB_URI to a replica set, e.g. mongodb://127.0.0.1:27017/?replicaSet=rs0, to run it)';

const uri = process.env.MONGODB_URI;

export const ENGINES: TestEngine[] = [
  { name: 'sqlite on a file (writer thread, journal: the production configuration)', open: sqliteFile },
  { name: 'sqlite in memory', open: sqliteMemory },
  { name: 'mongodb', ...(uri ? {} : { skip: MONGODB_SKIPPED }), open: () => mongo(uri as string) },
];
