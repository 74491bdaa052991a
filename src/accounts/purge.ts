// accounts/purge: the erasure of a person's data when their archive has been kept ten years
// (docs/accounts.md, "Purge"). Knows the store port, the patient compartment and the shape of
// access records; knows nothing of HTTP or tokens. Run by the account scheduler under its lease.
//
// What goes, in batches of transactions (each one erases for good, leaves no tombstone and nothing
// in the change feed, and zeroes what it frees: store/port.ts `expunge`):
// - every resource in the person's compartment (R4 CompartmentDefinition "patient"), every version;
// - what the person created outside it (their Subscriptions, and those subscriptions' queues);
// - the Binaries of their documents (the attachments of their DocumentReferences, and every Binary
//   whose securityContext is one of the erased resources or the Patient), then their blobs, once
//   no remaining Binary points at the same bytes;
// - the access records about the person: a record about them alone is erased; a record that is also
//   about other people (a professional's search across several records) stays for those people,
//   redacted: the person, and every erased resource, taken out of it (`redact`);
// - the patient's consent stamp; last, the Patient itself.
// A purge interrupted part-way leaves the account archived and due: the next round finishes it.
// Its own access record names no one (it would keep the person's id): the count of what went.

import type { AuditEvent, AuditEventEntity, Binary, DocumentReference, Resource } from '@medplum/fhirtypes';
import { SERVED_TYPES } from '../base/registry.js';
import { compartmentCondition, OWNED_TYPES } from '../policy/compartment.js';
import { patientCreator, refersTo } from '../policy/decide.js';
import { consentStamp } from '../policy/index.js';
import { indexEntries, parseReference } from '../search/extract.js';
import type { Condition, SearchPlan } from '../search/types.js';
import { pointerOf } from '../store/content.js';
import type { Store, Version, WriteOp } from '../store/port.js';

/** Resources erased per transaction. */
const BATCH = 500;
/** Ids per search condition when looking for Binaries of erased resources. */
const IDS_PER_SEARCH = 200;

/** The durable queue of blobs to erase once no Binary points at them (a crash between the commit and the erasure loses none). */
export const PURGED_BLOBS_QUEUE = 'accounts/purged-blobs';

/** What a purge erased, for its own access record and the logs: counts only. */
export interface Purged {
  resources: number;
  redacted: number;
  blobs: string[];
}

async function* pages(store: Store, plan: SearchPlan): AsyncGenerator<Version[]> {
  let cursor: string | undefined;
  do {
    const page = await store.search(plan, { count: BATCH, ...(cursor ? { cursor } : {}) });
    yield page.matches;
    cursor = page.next;
  } while (cursor);
}

async function all(store: Store, plan: SearchPlan): Promise<Version[]> {
  const found: Version[] = [];
  for await (const page of pages(store, plan)) found.push(...page);
  return found;
}

const key = (type: string, id: string) => `${type}/${id}`;

/** Whether a reference (relative or absolute) names one of `keys` ("Type/id"). */
function namesOneOf(reference: string | undefined, keys: ReadonlySet<string>): boolean {
  const parsed = reference ? parseReference(reference) : null;
  return !!parsed && parsed[0] !== null && parsed[1] !== null && keys.has(key(parsed[0], parsed[1]));
}

/** The Binary ids a DocumentReference's attachments point at. */
function attachedBinaries(doc: DocumentReference): string[] {
  return (doc.content ?? []).flatMap((c) => {
    const parsed = c.attachment?.url ? parseReference(c.attachment.url) : null;
    return parsed && parsed[0] === 'Binary' && parsed[1] !== null ? [parsed[1]] : [];
  });
}

/**
 * The access record without the person and the erased resources, or undefined when nothing of it
 * would be left about anybody else (then it is erased whole).
 */
export function redactedRecord(event: AuditEvent, patientId: string, erased: ReadonlySet<string>): AuditEvent | undefined {
  const entities = (event.entity ?? []).filter((e: AuditEventEntity) => !refersTo(e.what?.reference, 'Patient', patientId) && !namesOneOf(e.what?.reference, erased));
  const aboutOthers = entities.some((e) => parseReference(e.what?.reference ?? '')?.[0] === 'Patient');
  const byPerson = (event.agent ?? []).some((a) => refersTo(a.who?.reference, 'Patient', patientId));
  if (!aboutOthers || byPerson) return undefined;
  return { ...event, entity: entities };
}

/** Everything of Patient/`patientId` the purge erases, as the ops that erase it (the Patient's own last). */
async function collect(store: Store, patientId: string): Promise<{ erase: WriteOp[]; redact: WriteOp[]; blobs: Set<string>; queues: string[]; patient: boolean }> {
  const erased = new Set<string>();
  const versions: Version[] = [];
  const take = (found: Version[]) => {
    for (const version of found) {
      if (erased.has(key(version.type, version.id))) continue;
      erased.add(key(version.type, version.id));
      versions.push(version);
    }
  };
  const compartmentTypes = SERVED_TYPES.filter((type) => type !== 'AuditEvent' && compartmentCondition(type, [patientId]) !== undefined);
  for (const type of compartmentTypes) take(await all(store, { types: [type], where: [compartmentCondition(type, [patientId]) as Condition], sort: [] }));
  // What they created outside their compartment: their subscriptions (and, below, their queues).
  for (const type of OWNED_TYPES) take(await all(store, { types: [type], where: [{ kind: 'creator', creators: [patientCreator(patientId)] }], sort: [] }));
  // The Binaries of their documents: attachments, and securityContext naming an erased resource.
  const attached = versions.flatMap((v) => (v.type === 'DocumentReference' && v.resource ? attachedBinaries(v.resource as DocumentReference) : []));
  for (let i = 0; i < attached.length; i += IDS_PER_SEARCH) take(await all(store, { types: ['Binary'], where: [{ kind: 'id', ids: attached.slice(i, i + IDS_PER_SEARCH) }], sort: [] }));
  const contexts = [...erased].map((k) => k.split('/') as [string, string]);
  for (let i = 0; i < contexts.length; i += IDS_PER_SEARCH) {
    const values = contexts.slice(i, i + IDS_PER_SEARCH).map(([targetType, targetId]) => ({ targetType, targetId }));
    take(await all(store, { types: ['Binary'], where: [{ kind: 'reference', param: 'security-context', values }], sort: [] }));
  }
  const blobs = new Set<string>();
  for (const v of versions) {
    const blob = v.type === 'Binary' && v.resource ? pointerOf(v.resource as Binary) : undefined;
    if (blob) blobs.add(blob.key);
  }
  // The access records about the person (as agent or entity: the compartment's `patient`).
  const redact: WriteOp[] = [];
  const records: Version[] = [];
  for (const record of await all(store, { types: ['AuditEvent'], where: [compartmentCondition('AuditEvent', [patientId]) as Condition], sort: [] })) {
    const kept = record.resource ? redactedRecord(record.resource as AuditEvent, patientId, erased) : undefined;
    if (kept) redact.push({ kind: 'redact', resource: { ...kept, id: record.id } as AuditEvent & { id: string }, index: indexEntries(kept as Resource) });
    else records.push(record);
  }
  const queues = versions.filter((v) => v.type === 'Subscription').flatMap((v) => [`hook/${v.id}/events`, `hook/${v.id}/control`, `ws/${v.id}/events`]);
  const patient = versions.some((v) => v.type === 'Patient');
  const erase: WriteOp[] = [...versions.filter((v) => v.type !== 'Patient'), ...records].map((v) => ({ kind: 'expunge', type: v.type, id: v.id }));
  return { erase, redact, blobs, queues, patient };
}

/**
 * Erases Patient/`patientId` and everything of theirs (see the header). `finalOps` are committed
 * with the Patient's erasure (the purge's own access record). Answers what went.
 */
export async function purgePerson(store: Store, patientId: string, at: () => string, finalOps: (purged: Purged) => WriteOp[]): Promise<Purged> {
  const purged: Purged = { resources: 0, redacted: 0, blobs: [] };
  const blobs = new Set<string>();
  // Until nothing but the Patient is left: a write that raced the first pass is found by the next.
  for (let pass = 0; pass < 5; pass++) {
    const found = await collect(store, patientId);
    for (const blob of found.blobs) blobs.add(blob);
    const ops = [...found.erase, ...found.redact, ...found.queues.map((queue): WriteOp => ({ kind: 'drop-queue', queue }))];
    if (ops.length === 0) break;
    for (let i = 0; i < ops.length; i += BATCH) await store.transact(ops.slice(i, i + BATCH), at());
    purged.resources += found.erase.length;
    purged.redacted += found.redact.length;
  }
  purged.blobs = [...blobs];
  await store.transact(
    [
      { kind: 'expunge', type: 'Patient', id: patientId },
      { kind: 'unstamp', key: consentStamp(patientId) },
      ...(purged.blobs.length > 0 ? [{ kind: 'enqueue', queue: PURGED_BLOBS_QUEUE, data: { keys: purged.blobs } } as WriteOp] : []),
      ...finalOps(purged),
    ],
    at(),
  );
  purged.resources += 1;
  return purged;
}

/**
 * Erases the blobs of purged Binaries that no Binary points at any more (the same bytes may be
 * another person's document too: content-addressed). Takes the queue's items under `owner`.
 */
export async function eraseBlobs(store: Store, owner: string, now: () => string, leaseMs: number): Promise<number> {
  let erased = 0;
  for (;;) {
    const items = await store.queue.claim(owner, now(), leaseMs, 1, PURGED_BLOBS_QUEUE);
    if (items.length === 0) return erased;
    const item = items[0];
    const keys = ((item.data as { keys?: unknown })?.keys ?? []) as string[];
    for (const blob of keys) {
      const users = await store.search({ types: ['Binary'], where: [{ kind: 'token', param: 'content-key', values: [{ code: blob }] }], sort: [] }, { count: 1 });
      if (users.matches.length === 0 && (await store.blobs.remove(blob))) erased++;
    }
    await store.queue.settle(item.queue, item.number, owner, now(), { kind: 'done' });
  }
}
