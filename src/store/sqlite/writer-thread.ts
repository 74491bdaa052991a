// store/sqlite/writer-thread: every write transaction of a file database, run on a worker thread
// with its own connection to the same WAL database. The thread that answers HTTP only reads: a commit (the
// B-tree updates of a resource and its index rows, the WAL writes, a checkpoint's fsync) no longer
// stops it, and the second core does that work. One writer for all writes: SQLite's single write
// lock is never contended between threads. transact() resolves only after the worker's COMMIT has
// returned, so what a caller was told is written is in the WAL exactly as before (kill -9 loses
// nothing: test/audit/durability.test.ts), and a read on the main connection afterwards sees it
// (a WAL reader starts from the newest commit). Index rows a create op defers (deferred.ts) are
// written by the worker later, and before any search that could read them: materialised() asks
// the worker to write them and waits, unless the worker has reported them written since. Records
// journaled here (journal.ts: appended to a file by this thread) are taken into the database by
// the worker likewise, every JOURNAL_POLL_MS, and before any read, history or search that could
// find them (journaled(), materialised()) or a transaction that could meet them. The writes of
// durable queues and leases made outside transactions (claim, settle, resume, lease: queue.ts) are
// sent here too, each run in a transaction of its own.

import { Worker } from 'node:worker_threads';
import { WriteConflict, type WriteOp, type WriteResult } from '../port.js';
import type { SearchPlan } from '../../search/types.js';
import { readsIndexOf } from './deferred.js';
import { JournalFile, journalDir, type JournalLimits, type JournalRecord } from './journal.js';
import type { QueueAnswers, QueueCall } from './queue.js';

/**
 * A transaction (journalFirst: after taking in the journal), or (materialise) the taking in of the
 * journal and the writing of every pending index row, answered with no results; or a queue or
 * lease write (queue.ts), answered with its value; or, unanswered, the name of the journal file
 * this thread appends to from now on.
 */
export type Request =
  | { id: number; ops: WriteOp[]; at: string; journalFirst?: true }
  | { id: number; call: QueueCall }
  /** everywhere: also the journal files of the other processes and every row of index_pending. */
  | { id: number; materialise: true; everywhere?: true }
  | { journalFile: string };

export type Reply =
  | { id: number; results: WriteResult[] }
  | { id: number; value: unknown }
  | { id: number; error: SerializedError }
  /** Unasked: the index rows deferred by every request up to this id are written. */
  | { materialisedThrough: number }
  /** Unasked: the journal is in the database up to this byte of this file (and all earlier files). */
  | { journalApplied: { file: string; end: number } };

interface SerializedError {
  message: string;
  conflict?: { reason: WriteConflict['reason']; target: string };
  code?: string;
}

export interface WriterData {
  carnetWriter: true;
  dataDir: string;
  sync?: 'normal' | 'full';
  journalLimits: JournalLimits;
}

export function serialize(error: unknown): SerializedError {
  if (error instanceof WriteConflict) return { message: error.message, conflict: { reason: error.reason, target: error.target } };
  const e = error as { message?: unknown; code?: unknown };
  return { message: typeof e?.message === 'string' ? e.message : String(error), ...(typeof e?.code === 'string' ? { code: e.code } : {}) };
}

function revive(error: SerializedError): Error {
  if (error.conflict) return new WriteConflict(error.conflict.reason, error.conflict.target, error.message);
  return Object.assign(new Error(error.message), error.code ? { code: error.code } : {});
}

/** The main thread's side: sends transactions to the worker and resolves them with its results. */
export class WriterThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  private nextId = 1;
  private failed: Error | undefined;
  private closed: Promise<void> | undefined;
  private exited = false;
  private idle: (() => void)[] = [];
  /** The last request that deferred index rows, and the last one all of whose rows are written. */
  private deferredThrough = 0;
  private materialisedThrough = 0;
  /** The types of the resources whose index rows were ever deferred (searches of others never wait). */
  private readonly deferredTypes = new Set<string>();
  private materialising: { through: number; appended: number; done: Promise<unknown> } | undefined;
  /** This process's journal (opened at the first record), what it holds and what is applied. */
  private journalFile: JournalFile | undefined;
  private readonly journaledTypes = new Set<string>();
  /**
   * Bytes this process appended, and of those the ones known to be in the database; a position
   * in a file is turned into such a count by how many bytes were appended before the file opened.
   */
  private appendedBytes = 0;
  private appliedBytes = 0;
  private readonly fileBase = new Map<string, number>();

  constructor(private readonly data: WriterData) {
    if (import.meta.url.endsWith('.ts')) {
      // Run from TypeScript (tests, development): the worker registers tsx itself before loading
      // writer.ts (a loader inherited through --import is not reliably in place in a worker).
      const entry = new URL('./writer.ts', import.meta.url).href;
      // Resolved here: an eval'd worker would resolve packages from the working directory.
      const tsx = import.meta.resolve('tsx/esm/api');
      const boot = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
      this.worker = new Worker(boot, { eval: true, workerData: data, execArgv: [] });
    } else this.worker = new Worker(new URL('./writer.js', import.meta.url), { workerData: data });
    // Idle, the worker does not keep the process alive (a CLI that opened the store can exit).
    this.worker.unref();
    this.worker.on('message', (reply: Reply) => {
      if ('materialisedThrough' in reply) {
        this.materialisedThrough = Math.max(this.materialisedThrough, reply.materialisedThrough);
        return;
      }
      if ('journalApplied' in reply) {
        const { file, end } = reply.journalApplied;
        this.appliedBytes = Math.max(this.appliedBytes, (this.fileBase.get(file) ?? 0) + end);
        return;
      }
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.drained();
      if ('error' in reply) waiting.reject(revive(reply.error));
      else waiting.resolve('results' in reply ? reply.results : reply.value);
    });
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => {
      this.exited = true;
      this.fail(new Error(`the SQLite writer thread stopped (exit code ${code})`));
    });
    this.worker.on('messageerror', (error) => this.fail(error));
  }

  private fail(error: Error): void {
    this.failed ??= error;
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
    this.drained();
  }

  private drained(): void {
    this.worker.unref();
    for (const resolve of this.idle.splice(0)) resolve();
  }

  transact(ops: WriteOp[], at: string): Promise<WriteResult[]> {
    // A conditional create could search journaled records; an update or delete could meet one.
    const journalFirst = this.journalBehind() && ops.some((op) => this.couldMeetJournaled(op));
    return this.send<WriteResult[]>((id) => {
      for (const op of ops) {
        if (op.kind === 'create' && op.deferIndex) {
          this.deferredThrough = id;
          this.deferredTypes.add(op.resource.resourceType);
        }
      }
      return journalFirst ? { id, ops, at, journalFirst } : { id, ops, at };
    });
  }

  private couldMeetJournaled(op: WriteOp): boolean {
    switch (op.kind) {
      case 'create':
        return op.ifNoneExist !== undefined;
      case 'update':
        return this.journaledTypes.has(op.resource.resourceType);
      case 'delete':
      case 'expunge':
        return this.journaledTypes.has(op.type);
      case 'redact':
        return this.journaledTypes.has(op.resource.resourceType);
      default:
        return false;
    }
  }

  /** A queue or lease write (queue.ts), run by the worker in a transaction of its own. */
  call<C extends QueueCall>(call: C): Promise<QueueAnswers[C['call']]> {
    return this.send((id) => ({ id, call }));
  }

  /** Appends records to this process's journal; durable (journal.ts) on return, or once the promise returned resolves. */
  journal(records: JournalRecord[]): Promise<void> | undefined {
    if (this.failed) throw this.failed;
    this.journalFile ??= new JournalFile(journalDir(this.data.dataDir), {
      sync: this.data.sync === 'full',
      maxBytes: this.data.journalLimits.fileBytes,
      opened: (file) => {
        this.fileBase.set(file, this.appendedBytes);
        this.worker.postMessage({ journalFile: file } satisfies Request);
      },
    });
    const { name, end } = this.journalFile;
    const synced = this.journalFile.append(records);
    this.appendedBytes += this.journalFile.name === name ? this.journalFile.end - end : this.journalFile.end;
    for (const record of records) this.journaledTypes.add(record.resource.resourceType);
    // Too far ahead of the writer: this append waits for it (JournalLimits.maxLagBytes).
    if (this.appendedBytes - this.appliedBytes <= this.data.journalLimits.maxLagBytes) return synced;
    const caughtUp = this.catchUp();
    return synced ? Promise.all([synced, caughtUp]).then(() => undefined) : caughtUp;
  }

  private journalBehind(): boolean {
    return this.appliedBytes < this.appendedBytes;
  }

  /**
   * Undefined when no journaled record of `type` (of any type, when undefined) is still to be taken
   * into the database; else resolves once they all are.
   */
  journaled(type: string | undefined): Promise<void> | undefined {
    if (!this.journalBehind() || (type !== undefined && !this.journaledTypes.has(type))) return undefined;
    return this.catchUp();
  }

  private send<T>(request: (id: number) => Request): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve: (value) => resolve(value as T), reject });
      this.worker.ref();
      this.worker.postMessage(request(id));
    });
  }

  /** Resolves once every index row `plan` could read is written, deferred and journaled ones included. */
  async materialised(plan: SearchPlan): Promise<void> {
    const deferred = this.deferredThrough > this.materialisedThrough && readsIndexOf(plan, this.deferredTypes);
    const journaled = this.journalBehind() && readsIndexOf(plan, this.journaledTypes);
    if (deferred || journaled) await this.catchUp();
  }

  /** The journal files this process appended to. */
  ownJournalFiles(): ReadonlySet<string> {
    return new Set(this.fileBase.keys());
  }

  /**
   * Has the worker take in every journal file of the folder (other processes' too) and write
   * every pending index row, whoever deferred it; resolves once it has. Not shared between reads:
   * the worker may already be reading the files for an earlier one, and miss what came since.
   */
  catchUpEverywhere(): Promise<void> {
    return this.send((id) => ({ id, materialise: true, everywhere: true })).then(() => undefined);
  }

  /** Has the worker take in the journal and write every pending index row, and waits for it. */
  private catchUp(): Promise<void> {
    // Reads arriving together share one request: the worker answers in order, so a request sent
    // after the last deferring transaction and the last append covers them.
    if (!this.materialising || this.materialising.through < this.deferredThrough || this.materialising.appended < this.appendedBytes) {
      const through = this.nextId;
      const appended = this.appendedBytes;
      const done = this.send((id) => ({ id, materialise: true })).then(() => {
        this.materialisedThrough = Math.max(this.materialisedThrough, through);
        this.appliedBytes = Math.max(this.appliedBytes, appended);
      });
      this.materialising = { through, appended, done };
      void done.catch(() => {}).finally(() => {
        if (this.materialising?.done === done) this.materialising = undefined;
      });
    }
    return this.materialising.done as Promise<void>;
  }

  /** Waits for the transactions sent so far, then has the worker close its connection and stop. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      if (this.pending.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
      this.failed ??= new Error('the store is closed');
      // Appends are synchronous: none is half done. The worker takes the rest in before it stops.
      this.journalFile?.close();
      if (this.exited) return;
      const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
      this.worker.ref();
      this.worker.postMessage('close');
      await exited;
    })();
    return this.closed;
  }
}
