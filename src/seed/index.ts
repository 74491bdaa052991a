// seed: the dataset generator (issue 18): a deterministic, seeded world (seed/world) written
// through the storage port in bulk, exactly as the server writes each interaction: the resource
// with its index entries and creator, the policy's stamps, the AuditEvent with its index entries
// (a write's in its transaction, a read's as the audit journal writes it), then the patients'
// notifications derived by the server's own Notifier. Knows the port, search indexing, the audit
// record, the policy and the notifier; knows nothing of HTTP.

import type { AuditEvent, Resource } from '@medplum/fhirtypes';
import { journalOps, type JournalEntry, type Store, type WriteOp } from '../store/port.js';
import { indexEntries } from '../search/extract.js';
import { AUDIT_CREATOR, auditEvent, type AuditFacts } from '../audit/event.js';
import { iheTransaction } from '../audit/ihe.js';
import { auditEventIds } from '../audit/id.js';
import { Policy, stampsOf } from '../policy/index.js';
import { creatorKey } from '../policy/decide.js';
import { patientOf } from '../policy/compartment.js';
import { DEFAULT_NOTIFIER, Notifier } from '../notify/notifier.js';
import { parseAllowList } from '../notify/rest-hook.js';
import { loadTopics } from '../notify/topics.js';
import { shapeOf, world, type Interaction, type WorldOptions, type WorldShape } from './world.js';

export { shapeOf, type WorldOptions, type WorldShape } from './world.js';

export interface SeedOptions extends WorldOptions {
  /** The FHIR base the records name as their source (the server's CARNET_BASE_URL). */
  baseUrl: string;
  /** Interactions per store transaction (default 500). */
  batch?: number;
  /**
   * The patients' notifications of the seeded history: 'derive' them with the server's notifier
   * (as the server would have; slow: a few hundred changes a second), or 'skip' them (the default:
   * the notifier's cursor moves past the history, so the server does not derive them at start).
   */
  notifications?: 'derive' | 'skip';
  /** Called after each transaction: how many interactions are written so far, and the phase. */
  progress?: (done: number, phase: 'data' | 'notifications') => void;
}

export interface SeedResult extends WorldShape {
  /** Interactions actually written (pilot worlds skip documents of closed accounts). */
  written: number;
  /** Notification changes derived (changes the notifier went through). */
  derived: number;
}

/** Writes the world of `options` into `store`, which should be empty. */
export async function seedStore(store: Store, options: SeedOptions): Promise<SeedResult> {
  const batchSize = options.batch ?? 500;
  // The seed in place of the process's random part: the same records on every run.
  const auditId = auditEventIds(`5eed${(options.seed >>> 0).toString(16).padStart(8, '0')}`);
  let ops: WriteOp[] = [];
  let journal: JournalEntry[] = [];
  let last = '';
  let written = 0;
  // Two transactions in flight: the next batch's index entries are computed while the engine
  // commits the last one (the SQLite engine commits on its writer thread).
  let inFlight: Promise<unknown> = Promise.resolve();
  const flush = async () => {
    if (ops.length === 0 && journal.length === 0) return;
    // A read's record is journaled (its own commit) in the server: here, after the batch's writes.
    const batch = [...ops, ...journalOps(journal)];
    const done = written;
    ops = [];
    journal = [];
    const previous = inFlight;
    inFlight = store.transact(batch, last).then(() => options.progress?.(done, 'data'));
    inFlight.catch(() => undefined); // awaited below (as `previous`, or at the end): not unhandled meanwhile
    await previous;
  };
  let pending = 0;
  for (const step of world(options)) {
    last = step.at;
    const record = { ...auditEvent(factsOf(step, options.baseUrl)), id: auditId(Date.parse(step.at)) } as AuditEvent & { id: string };
    if (step.kind === 'write') {
      const resource = step.resource;
      ops.push({ kind: 'create', resource, index: indexEntries(resource), creator: creatorKey(step.actor) });
      for (const key of stampsOf([resource])) ops.push({ kind: 'stamp', key });
      ops.push({ kind: 'create', resource: record, index: indexEntries(record), creator: AUDIT_CREATOR, deferIndex: true });
    } else {
      journal.push({ resource: record, index: indexEntries(record), creator: AUDIT_CREATOR });
    }
    written++;
    if (++pending >= batchSize) {
      pending = 0;
      await flush();
    }
  }
  await flush();
  await inFlight;
  const derived = await notifications(store, options, last);
  return { ...shapeOf(options), written, derived };
}

/** What the server records of an interaction (fhir/audited: a write's touched resource and patient; a search's query). */
function factsOf(step: Interaction, server: string): AuditFacts {
  if (step.kind === 'write') {
    const resource: Resource = step.resource;
    const patient = patientOf(resource);
    return { actor: step.actor, interaction: 'create', outcome: 'success', patients: patient ? [patient] : [], resources: [`${resource.resourceType}/${resource.id}`], type: resource.resourceType, recorded: step.at, server, ...transaction('create', resource.resourceType) };
  }
  const search = step.interaction === 'search-type';
  return {
    actor: step.actor,
    interaction: step.interaction,
    outcome: step.outcome,
    patients: [step.patient],
    // A search's record names the patients and the query, not the resources of its page; a refused read what it tried.
    resources: !search && step.resource ? [step.resource] : [],
    ...(step.query ? { query: step.query } : {}),
    ...(step.outcome === 'denied' ? { reason: '404 not-found' } : {}),
    type: step.type,
    recorded: step.at,
    server,
    ...transaction(step.interaction, step.type),
  };
}

function transaction(interaction: AuditFacts['interaction'], type: string) {
  const coding = iheTransaction(interaction, type, undefined);
  return coding ? { transaction: coding } : {};
}

/**
 * The server's notifier over everything written: the patients' inbox (one notification per
 * professional, record, kind and window) is what it would have derived while the world happened;
 * or its cursor moved past it all.
 */
async function notifications(store: Store, options: SeedOptions, at: string): Promise<number> {
  const now = () => at;
  const notifier = new Notifier({ store, policy: new Policy(store, now), topics: loadTopics(), settings: { ...DEFAULT_NOTIFIER, batch: 1000, allow: parseAllowList([]) }, baseUrl: () => options.baseUrl, now });
  if (options.notifications !== 'derive') return notifier.skipCommitted().then(() => 0);
  let derived = 0;
  for (let n = await notifier.fanOut(); n > 0; n = await notifier.fanOut()) {
    derived += n;
    options.progress?.(derived, 'notifications');
  }
  return derived;
}
