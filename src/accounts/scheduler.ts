// accounts: the account lifecycle's scheduled work (docs/accounts.md). Knows the store port, the
// account state machine (policy/account) and the audit records; knows nothing of HTTP or tokens.
//
// Every process runs an AccountScheduler; a round runs only in the process holding the store lease
// ACCOUNTS_LEASE, so one runs at a time in a deployment. A round finds the accounts due for a
// transition by the account SearchParameters (profiles/SearchParameter-Carnet-Patient-account-*),
// and writes each one as the operations do: the Patient (expected version: a person who activated,
// objected or closed meanwhile wins, and the account is looked at again next round), the patient's
// consent stamp and the AuditEvent, in one transaction. Nothing is kept in memory between rounds,
// so a restart or a process dying mid-round loses nothing: the next round finds what is still due.

import os from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Patient } from '@medplum/fhirtypes';
import type { Actor } from '../auth/actor.js';
import { AUDIT_CREATOR, auditEvent } from '../audit/event.js';
import { auditEventId } from '../audit/id.js';
import { accountOf, ARCHIVE_GRACE_MS, ARCHIVE_KEPT_MS, transition, withAccount, type AccountEvent, type AccountState } from '../policy/account.js';
import { eraseBlobs, purgePerson, type Purged } from './purge.js';
import { consentStamp } from '../policy/index.js';
import { indexEntries } from '../search/extract.js';
import type { Condition, SearchPlan } from '../search/types.js';
import { WriteConflict, type Store, type WriteOp } from '../store/port.js';

/** The lease that keeps rounds to one process at a time. */
export const ACCOUNTS_LEASE = 'accounts:scheduler';

/** Who the scheduler's writes are by, in the access log: the server itself. */
export const SCHEDULER_CLIENT = 'carnet:account-scheduler';

export interface AccountSchedulerSettings {
  pollMs: number;
  /** Accounts moved per search (and per lease renewal). */
  batch: number;
  leaseMs: number;
}

export const DEFAULT_ACCOUNT_SCHEDULER: AccountSchedulerSettings = { pollMs: 60_000, batch: 200, leaseMs: 120_000 };

export interface AccountSchedulerDeps {
  store: Store;
  /** The server's clock (the app's injectable `now`). */
  now: () => string;
  /** The public FHIR base (the audit records' observer). */
  baseUrl: () => string;
  settings?: Partial<AccountSchedulerSettings>;
  log?: (message: string) => void;
}

/** A scheduled transition: the accounts it applies to (state, and the date parameter that says when), and its event. */
interface Due {
  from: readonly AccountState[];
  param: string;
  /** The latest date value that is due at `now`. */
  dueBy: (now: number) => number;
  event: AccountEvent;
}

const DUE: readonly Due[] = [
  { from: ['notified'], param: 'account-objection-ends', dueBy: (now) => now, event: { kind: 'window-ended' } },
  { from: ['closed'], param: 'account-closed-at', dueBy: (now) => now - ARCHIVE_GRACE_MS, event: { kind: 'archive' } },
  { from: ['archived'], param: 'account-archived-at', dueBy: (now) => now - ARCHIVE_KEPT_MS, event: { kind: 'purge' } },
  // A minor comes of age: their representatives' access has ended (decide.ts), the young adult is told.
  { from: ['notified', 'open', 'objected', 'closed', 'archived'], param: 'account-majority', dueBy: (now) => now, event: { kind: 'majority' } },
];

const SERVER: Actor = { kind: 'system', clientId: SCHEDULER_CLIENT, grants: [], issuer: 'carnet', subject: SCHEDULER_CLIENT };

function duePlan(due: Due, now: number): SearchPlan {
  const by = due.dueBy(now);
  const where: Condition[] = [
    { kind: 'token', param: 'account-state', values: due.from.map((code) => ({ code })) },
    { kind: 'date', param: due.param, values: [{ prefix: 'le', value: by, low: by, high: by + 1 }] },
  ];
  return { types: ['Patient'], where, sort: [] };
}

export class AccountScheduler {
  /** Who this process is, in leases. */
  readonly owner = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly settings: AccountSchedulerSettings;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  /** A purge ran in this round: the store's files are reclaimed at its end. */
  private purged = false;

  constructor(private readonly deps: AccountSchedulerDeps) {
    this.settings = { ...DEFAULT_ACCOUNT_SCHEDULER, ...deps.settings };
  }

  /** Starts the rounds (every process runs one; the lease keeps them to one at a time). */
  start(): void {
    this.timer ??= setInterval(() => void this.run().catch((error: unknown) => this.deps.log?.(`accounts: ${error instanceof Error ? error.message : String(error)}`)), this.settings.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /**
   * One round, if this process holds the lease: every account due now moves. Answers how many
   * moved (0 when another process holds the lease). One round at a time in this process too.
   */
  run(): Promise<number> {
    this.running ??= this.round().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async round(): Promise<number> {
    let moved = 0;
    for (const due of DUE) {
      for (;;) {
        // Taken (or renewed) before each batch: a round longer than the lease stops rather than run twice.
        if (!(await this.deps.store.lease(ACCOUNTS_LEASE, this.owner, this.deps.now(), this.settings.leaseMs))) return moved;
        const page = await this.deps.store.search(duePlan(due, Date.parse(this.deps.now())), { count: this.settings.batch });
        let batch = 0;
        for (const match of page.matches) if (await this.move(match.id, due.event)) batch++;
        moved += batch;
        // Accounts that did not move (changed meanwhile) would be found again: stop at a short page.
        if (page.matches.length < this.settings.batch || batch === 0) break;
      }
    }
    // Once per round that purged: nothing erased stays readable in the store's files.
    if (this.purged) {
      this.purged = false;
      await this.deps.store.reclaim?.();
    }
    // The blobs of purged Binaries that nothing points at any more (queued by purges, this round's or an interrupted one's).
    if (await this.deps.store.lease(ACCOUNTS_LEASE, this.owner, this.deps.now(), this.settings.leaseMs)) await eraseBlobs(this.deps.store, this.owner, this.deps.now, this.settings.leaseMs);
    return moved;
  }

  /** The access record of a scheduled transition (by the server), about `patients`. */
  private record(event: AccountEvent, patients: string[], reason?: string) {
    const id = patients[0];
    return {
      ...auditEvent({
        actor: SERVER,
        interaction: event.kind === 'purge' ? 'delete' : 'update',
        outcome: 'success',
        patients,
        resources: id !== undefined ? [`Patient/${id}`] : [],
        type: 'Patient',
        transaction: { system: 'urn:carnet:interaction', code: `account-${event.kind}`, display: `account ${event.kind} (scheduled)` },
        ...(reason ? { reason } : {}),
        recorded: this.deps.now(),
        server: this.deps.baseUrl(),
      }),
      id: auditEventId(),
    };
  }

  /** The purge: everything of the person erased (accounts/purge.ts); its access record names no one. */
  private async purge(id: string): Promise<boolean> {
    const write = (purged: Purged): WriteOp[] => {
      // Counts only: the record of a purge keeps nothing of the person, not even their id.
      const record = this.record({ kind: 'purge' }, []);
      record.entity = [{ what: { display: 'a purged account' }, detail: [{ type: 'erased', valueString: `${purged.resources} resources, ${purged.redacted} access records redacted, ${purged.blobs.length} blobs` }] }];
      return [{ kind: 'create', resource: record, index: indexEntries(record), creator: AUDIT_CREATOR }];
    };
    const purged = await purgePerson(this.deps.store, id, this.deps.now, write);
    this.purged = true;
    this.deps.log?.(`accounts: purged an account (${purged.resources} resources, ${purged.redacted} redacted, ${purged.blobs.length} blobs)`);
    return true;
  }

  /** Applies `event` to Patient/`id` if it is still due; false when it is not (or changed meanwhile). */
  private async move(id: string, event: AccountEvent): Promise<boolean> {
    const read = await this.deps.store.read('Patient', id);
    if (read.kind !== 'found' || !read.version.resource) return false;
    const patient = read.version.resource as Patient & { id: string };
    const now = this.deps.now();
    const next = transition(accountOf(patient), event, Date.parse(now));
    if (!next.ok) return false;
    if (event.kind === 'purge') return this.purge(id);
    const { meta: _meta, ...content } = patient;
    const after = { ...withAccount(content, next.account), id } as Patient & { id: string };
    const record = this.record(event, [id]);
    const ops: WriteOp[] = [
      { kind: 'update', resource: after, index: indexEntries(after), expectedVersion: read.version.versionId },
      { kind: 'stamp', key: consentStamp(id) },
      { kind: 'create', resource: record, index: indexEntries(record), creator: AUDIT_CREATOR, deferIndex: true },
    ];
    try {
      await this.deps.store.transact(ops, now);
      return true;
    } catch (error) {
      if (error instanceof WriteConflict) return false;
      throw error;
    }
  }
}
