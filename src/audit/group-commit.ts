// audit/group-commit: the durable writing of read records. Records of requests running at the
// same time are committed in one store transaction; each request is answered only after the
// transaction holding its record has committed, so an answered read is always on disk
// (test/audit/durability.test.ts kills the server to check), at a fraction of a commit each.
// One transaction at a time: the records that arrive while one commits (on the store's writer
// thread) wait for it and go together in the next, so a slower commit makes a larger batch
// rather than a queue of small ones.

import type { Store, WriteOp } from '../store/port.js';

interface Waiting {
  op: WriteOp;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class GroupCommit {
  private queue: Waiting[] = [];
  private scheduled = false;
  private committing = false;

  constructor(
    private readonly store: Store,
    private readonly now: () => string,
  ) {}

  /** Resolves once `op` is committed. */
  write(op: WriteOp): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.committing || this.queue.length === 0) return;
    this.scheduled = true;
    // After the I/O callbacks of this turn: the records of concurrent requests join the batch.
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    this.committing = true;
    try {
      await this.store.transact(
        batch.map((w) => w.op),
        this.now(),
      );
      for (const waiting of batch) waiting.resolve();
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    } finally {
      this.committing = false;
      this.schedule();
    }
  }
}
