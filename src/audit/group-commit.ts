// audit/group-commit: the durable writing of the records of interactions that write nothing
// themselves (reads, searches, refusals). Records of requests running at the same time are written
// together; each request is answered only after the write holding its record has returned, so an
// answered read always has its record on disk (test/audit/durability.test.ts kills the server to
// check), at a fraction of a write each. The write is the store's journal when it has one (the
// SQLite engine: one append to a file, taken into the database on its writer thread, and before
// anything could search for it: store/sqlite/journal.ts), else one store transaction. One write at
// a time: the records that arrive meanwhile go together in the next, so a slower write makes a
// larger batch rather than a queue of small ones.

import type { AuditEvent } from '@medplum/fhirtypes';
import { journalOps, type Store } from '../store/port.js';
import { indexEntries } from '../search/extract.js';
import { AUDIT_CREATOR } from './event.js';

type Record = AuditEvent & { id: string };

interface Waiting {
  record: Record;
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

  /** Resolves once `record` is durable. It is serialised before that and never kept. */
  write(record: Record): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
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
      const at = this.now();
      // Serialised by the journal at once; copied for a transaction, whose results the store may
      // keep: the records share constant parts (audit/event).
      const resourceOf = this.store.journal ? (w: Waiting) => w.record : (w: Waiting) => JSON.parse(JSON.stringify(w.record)) as Record;
      const entries = batch.map((w) => ({ resource: resourceOf(w), index: indexEntries(w.record), creator: AUDIT_CREATOR }));
      if (this.store.journal) await this.store.journal(entries, at);
      else await this.store.transact(journalOps(entries), at);
      for (const waiting of batch) waiting.resolve();
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    } finally {
      this.committing = false;
      this.schedule();
    }
  }
}
