// store/sqlite/writer-thread: every write transaction of a file database, run on a worker thread
// with its own connection to the same WAL database. The thread that answers HTTP only reads: a commit (the
// B-tree updates of a resource and its index rows, the WAL writes, a checkpoint's fsync) no longer
// stops it, and the second core does that work. One writer for all writes: SQLite's single write
// lock is never contended between threads. transact() resolves only after the worker's COMMIT has
// returned, so what a caller was told is written is in the WAL exactly as before (kill -9 loses
// nothing: test/audit/durability.test.ts), and a read on the main connection afterwards sees it
// (a WAL reader starts from the newest commit).

import { Worker } from 'node:worker_threads';
import { WriteConflict, type WriteOp, type WriteResult } from '../port.js';

export interface Request {
  id: number;
  ops: WriteOp[];
  at: string;
}

export type Reply = { id: number; results: WriteResult[] } | { id: number; error: SerializedError };

interface SerializedError {
  message: string;
  conflict?: { reason: WriteConflict['reason']; target: string };
  code?: string;
}

export interface WriterData {
  carnetWriter: true;
  dataDir: string;
  sync?: 'normal' | 'full';
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
  private readonly pending = new Map<number, { resolve: (results: WriteResult[]) => void; reject: (error: unknown) => void }>();
  private nextId = 1;
  private failed: Error | undefined;
  private closed: Promise<void> | undefined;
  private exited = false;
  private idle: (() => void)[] = [];

  constructor(data: WriterData) {
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
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.drained();
      if ('error' in reply) waiting.reject(revive(reply.error));
      else waiting.resolve(reply.results);
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
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ id, ops, at } satisfies Request);
    });
  }

  /** Waits for the transactions sent so far, then has the worker close its connection and stop. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      if (this.pending.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
      this.failed ??= new Error('the store is closed');
      if (this.exited) return;
      const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
      this.worker.ref();
      this.worker.postMessage('close');
      await exited;
    })();
    return this.closed;
  }
}
