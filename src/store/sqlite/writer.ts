// store/sqlite/writer: the entry of the writer thread (writer-thread.ts): a store on the same
// database whose transactions run here, one at a time, in the order they were sent. A third
// thread checkpoints the WAL into the database file: a checkpoint (which copies pages and, unless
// sync is off, fsyncs twice) otherwise runs inside the commit that crosses 1000 WAL pages and
// delays every request waiting on that commit. Checkpoints decide nothing about durability: a
// commit is safe from a process crash once it is in the WAL (docs/performance.md).
// Deferred index rows (deferred.ts) are written here too: MATERIALISE_AFTER_MS after a transaction
// left some pending, many records in one transaction, or at once when a search asks. So are the
// records of the main thread's journal files (journal.ts): every JOURNAL_POLL_MS when the last file
// has grown, at once when a read asks (materialise) or a transaction needs them (journalFirst), and
// all of them at close. Queue and lease writes (queue.ts) run here like transactions.

import path from 'node:path';
import { createRequire } from 'node:module';
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from './index.js';
import { serialize, type Reply, type Request, type WriterData } from './writer-thread.js';
import { journalDir, journalFiles, journalSize, ownerGone } from './journal.js';

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

/** How long pending index rows wait for more to join their batch (a search never waits for it). */
const MATERIALISE_AFTER_MS = 30;

/** How often the journal is looked at for new records (a read that needs them never waits for it). */
const JOURNAL_POLL_MS = 25;

const data = workerData as WriterData | undefined;
if (parentPort && data?.carnetWriter === true) {
  const port = parentPort;
  const store = new SqliteStore({ dataDir: data.dataDir, ...(data.sync ? { sync: data.sync } : {}), writer: 'inline', checkpoints: 'elsewhere', recoverPending: false });
  const checkpointer = new Worker(CHECKPOINTER, { eval: true, workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), file: store.file, everyMs: 50 } });
  checkpointer.on('error', () => {
    // Without it the writer's own safety-net checkpoints (every 10,000 pages) keep the WAL bounded.
  });
  let lastId = 0;
  let timer: NodeJS.Timeout | undefined;
  const materialise = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    store.materialisePending();
  };

  // The main thread's journal files, in the order it wrote them: all but the last are finished.
  let files: string[] = [];
  let appliedEnd = 0;
  const dir = journalDir(data.dataDir);
  const chunkBytes = data.journalLimits.chunkBytes;
  /** One transaction's worth (a poll), or (`until`) everything appended so far; `all` at close. */
  const takeJournal = (until = false, all = false) => {
    let done = false;
    while (files.length > 0 && !done) {
      const last = files[files.length - 1];
      const applied = store.applyJournal(files, (file) => all || file !== last, chunkBytes);
      done = applied.done || !until;
      files = files.filter((file) => !applied.deleted.has(file));
      const reached = applied.ends.get(last);
      if (reached === undefined) continue;
      appliedEnd = reached;
      port.postMessage({ journalApplied: { file: last, end: appliedEnd } } satisfies Reply);
    }
  };
  /** The other processes' files, read to their last complete line; those of a process gone are deleted once read. */
  const takeOthers = () => {
    const own = new Set(files);
    const others = journalFiles(dir).filter((file) => !own.has(file));
    while (others.length > 0 && !store.applyJournal(others, ownerGone, chunkBytes).done);
  };
  const poll = setInterval(() => {
    if (files.length === 0 || (files.length === 1 && journalSize(path.join(dir, files[0])) <= appliedEnd)) return;
    try {
      takeJournal();
    } catch {
      // Left in the file: taken at the next poll, by a read's request, or at the next open.
    }
  }, JOURNAL_POLL_MS);
  poll.unref();

  port.on('message', (request: Request | 'close') => {
    if (request === 'close') {
      if (timer) clearTimeout(timer);
      clearInterval(poll);
      try {
        takeJournal(true, true);
      } catch {
        // Left in the files: the next open takes them in.
      }
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
    if ('journalFile' in request) {
      if (files.length === 0) appliedEnd = 0;
      files.push(request.journalFile);
      return;
    }
    lastId = request.id;
    let reply: Reply;
    try {
      if ('materialise' in request) {
        takeJournal(true);
        materialise();
        if (request.everywhere) {
          takeOthers();
          store.recoverPending();
        }
        reply = { id: request.id, results: [] };
      } else if ('call' in request) {
        reply = { id: request.id, value: store.callNow(request.call) };
      } else {
        if (request.journalFirst) takeJournal(true);
        reply = { id: request.id, results: store.transactNow(request.ops, request.at) };
      }
    } catch (error) {
      reply = { id: request.id, error: serialize(error) };
    }
    port.postMessage(reply);
    if (store.pendingCount > 0 && !timer) {
      timer = setTimeout(() => {
        const through = lastId;
        try {
          materialise();
          port.postMessage({ materialisedThrough: through } satisfies Reply);
        } catch {
          // Left pending: retried after the next transaction, or by the next search's request.
        }
      }, MATERIALISE_AFTER_MS);
    }
  });
}
