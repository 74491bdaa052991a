// The MongoDB engine on a real server (a replica set: MONGODB_URI, e.g.
// mongodb://127.0.0.1:27017/?replicaSet=rs0). With MONGODB_URI set, every HTTP scenario test runs on
// MongoDB too (test/helpers.ts testServer), the port's contract runs on it (contract.test.ts:
// locking and conditional creates between concurrent transactions, atomicity, history, GridFS
// ranges, the client registry...), and this file checks what only this engine has: the patient
// shard key, the indexes, one GridFS file per content. Without MONGODB_URI, it says loudly that all
// of that was skipped.
import t from 'tap';
import { Readable } from 'node:stream';
import type { Observation, Patient, Resource } from '@medplum/fhirtypes';
import { indexEntries } from '../../src/search/extract.js';
import { openMongoStore, type MongoStore } from '../../src/store/mongo/index.js';
import { INDEXES } from '../../src/store/mongo/indexes.js';
import type { WriteOp } from '../../src/store/port.js';

const uri = process.env.MONGODB_URI;
const REASON = 'MONGODB_URI not set: the MongoDB engine scenario suite was SKIPPED (no MongoDB server here; set MONGODB_URI to a replica set to run every HTTP scenario test and this file on MongoDB)';

if (!uri) {
  process.stdout.write(`# ${REASON}\n`);
  process.stderr.write(`${REASON}\n`);
  t.test('MongoDB engine scenario suite', { skip: REASON }, () => undefined);
} else {
  await engineSuite(uri);
}

async function engineSuite(uri: string): Promise<void> {
  const open = () => openMongoStore({ uri, database: `carnet_engine_${process.pid}`, serverSelectionTimeoutMS: 5000 });
  const store: MongoStore = await open();
  t.teardown(async () => {
    await store.db.dropDatabase();
    await store.close();
  });
  const AT = '2026-01-01T00:00:00.000Z';
  const create = (resource: Resource & { id: string }, extra: Partial<Extract<WriteOp, { kind: 'create' }>> = {}): WriteOp => ({ kind: 'create', resource, index: indexEntries(resource), ...extra });

  t.test('opening again keeps the indexes (created idempotently)', async (t) => {
    const again = await open();
    await again.close();
    const names = (await store.db.collection('resources').listIndexes().toArray()).map((i) => i.name as string);
    for (const index of INDEXES.resources) t.ok(names.includes(index.name!), index.name!);
  });

  t.test('every document of a patient compartment carries the patient key', async (t) => {
    const patient: Patient & { id: string } = { resourceType: 'Patient', id: 'pk-1' };
    const obs: Observation & { id: string } = { resourceType: 'Observation', id: 'pk-obs', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/pk-1' } };
    await store.transact([create(patient), create(obs)], AT);
    t.equal((await store.db.collection('resources').findOne({ _id: 'Observation/pk-obs' as never }))?.patient, 'Patient/pk-1');
    t.equal((await store.db.collection('resources').findOne({ _id: 'Patient/pk-1' as never }))?.patient, 'Patient/pk-1');
    t.equal((await store.db.collection('versions').findOne({ type: 'Observation', id: 'pk-obs' }))?.patient, 'Patient/pk-1');
  });

  t.test('equal bytes put twice are one GridFS file', async (t) => {
    const bytes = Buffer.from('0123456789'.repeat(100_000));
    const info = await store.blobs.put(Readable.from([bytes.subarray(0, 300_000), bytes.subarray(300_000)]));
    t.same(await store.blobs.put(bytes), info);
    t.equal(await store.db.collection('blobs.files').countDocuments({ filename: info.key }), 1);
  });

}
