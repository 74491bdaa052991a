// store/mongo/indexes: the indexes every supported search needs, created idempotently at start-up
// (createIndexes with an existing identical spec is a no-op). docs/deployment.md explains them.

import type { Db, IndexDescription } from 'mongodb';

export const INDEXES: Record<string, IndexDescription[]> = {
  resources: [
    // _id is "Type/id" (read, update); searches by _id and the default sort on id.
    { key: { type: 1, id: 1 }, name: 'type_id' },
    { key: { type: 1, lastUpdated: 1 }, name: 'type_lastUpdated' },
    // The patient compartment (and the shard key's prefix): everything of one patient, per type.
    { key: { patient: 1, type: 1, lastUpdated: -1 }, name: 'patient_type_lastUpdated' },
    { key: { type: 1, creator: 1 }, name: 'type_creator', partialFilterExpression: { creator: { $exists: true } } },
    // Multikey indexes on the index entries, one per lookup the compiler makes ($elemMatch on p and a value).
    { key: { type: 1, 'tok.p': 1, 'tok.c': 1, 'tok.s': 1 }, name: 'token_code' },
    { key: { type: 1, 'tok.p': 1, 'tok.s': 1 }, name: 'token_system' },
    { key: { type: 1, 'str.p': 1, 'str.v': 1 }, name: 'string_value' },
    { key: { type: 1, 'str.p': 1, 'str.x': 1 }, name: 'string_exact' },
    { key: { type: 1, 'dt.p': 1, 'dt.lo': 1 }, name: 'date_low' },
    { key: { type: 1, 'dt.p': 1, 'dt.hi': 1 }, name: 'date_high' },
    { key: { type: 1, 'num.p': 1, 'num.v': 1 }, name: 'number_value' },
    { key: { type: 1, 'qty.p': 1, 'qty.v': 1 }, name: 'quantity_value' },
    { key: { type: 1, 'ref.p': 1, 'ref.ti': 1, 'ref.tt': 1 }, name: 'reference_target' },
    { key: { type: 1, 'ref.p': 1, 'ref.u': 1 }, name: 'reference_url' },
    { key: { type: 1, 'uri.p': 1, 'uri.v': 1 }, name: 'uri_value' },
    { key: { type: 1, 'cmp.p': 1 }, name: 'composite' },
  ],
  versions: [
    // vread; history of one resource, newest first.
    { key: { type: 1, id: 1, version: -1 }, name: 'type_id_version' },
    // History of a type and of the system, newest first, and _since.
    { key: { type: 1, lastUpdated: -1, _id: -1 }, name: 'type_history' },
    { key: { lastUpdated: -1, _id: -1 }, name: 'system_history' },
    { key: { patient: 1 }, name: 'patient' },
    // The change feed (Store.changes); versions from before it have no seq.
    { key: { seq: 1 }, name: 'seq', unique: true, partialFilterExpression: { seq: { $exists: true } } },
  ],
  // Durable queues: an item by its number (list), and the items not done by queue (claim's heads).
  queue: [
    { key: { queue: 1, number: 1 }, name: 'queue_number', unique: true },
    { key: { state: 1, queue: 1, number: 1 }, name: 'state_queue_number' },
  ],
  // Expired assertion records go by themselves.
  client_assertions: [{ key: { expires: 1 }, name: 'expires_ttl', expireAfterSeconds: 0 }],
  clients: [{ key: { name: 1, _id: 1 }, name: 'name' }],
};

export async function ensureIndexes(db: Db): Promise<void> {
  for (const [collection, indexes] of Object.entries(INDEXES)) await db.collection(collection).createIndexes(indexes);
}
