// store/sqlite/writer: the entry of the writer thread (writer-thread.ts): a store on the same
// database whose transactions run here, one at a time, in the order they were sent. A third
// thread checkpoints the WAL into the database file: a checkpoint (which copies pages and, unless
// sync is off, fsyncs twice) otherwise runs inside the commit that crosses 1000 WAL pages and
// delays every request waiting on that commit. Checkpoints decide nothing about durability: a
// commit is safe from a process crash once it is in the WAL (docs/performance.md).

import { createRequire } from 'node:module';
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from './index.js';
import { serialize, type Reply, type Request, type WriterData } from './writer-thread.js';

// The checkpointer: its own connection; PASSIVE checkpoints never block the writer or readers.
const CHECKPOINTER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
}, workerData.everyMs);
parentPort.on('message', () => { clearInterval(timer); db.close(); parentPort.close(); });
`;

const data = workerData as WriterData | undefined;
if (parentPort && data?.carnetWriter === true) {
  const port = parentPort;
  const store = new SqliteStore({ dataDir: data.dataDir, ...(data.sync ? { sync: data.sync } : {}), writer: 'inline', checkpoints: 'elsewhere' });
  const checkpointer = new Worker(CHECKPOINTER, { eval: true, workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), file: store.file, everyMs: 50 } });
  checkpointer.on('error', () => {
    // Without it the writer's own safety-net checkpoints (every 10,000 pages) keep the WAL bounded.
  });
  port.on('message', (request: Request | 'close') => {
    if (request === 'close') {
      void (async () => {
        await new Promise<void>((resolve) => {
          checkpointer.once('exit', () => resolve());
          checkpointer.postMessage('close');
        });
        await store.close();
        port.close();
      })();
      return;
    }
    let reply: Reply;
    try {
      reply = { id: request.id, results: store.transactNow(request.ops, request.at) };
    } catch (error) {
      reply = { id: request.id, error: serialize(error) };
    }
    port.postMessage(reply);
  });
}
