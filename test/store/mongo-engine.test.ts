// The MongoDB engine on a real server (a replica set: MONGODB_URI, e.g.
// mongodb://127.0.0.1:27017/?replicaSet=rs0). With MONGODB_URI set, every HTTP scenario test runs on
// MongoDB too (test/helpers.ts testServer), and this file checks what only the engine can: the
// database enforcing optimistic locking and conditional creates between concurrent transactions,
// atomic transactions, the patient shard key, the indexes, GridFS ranges, the client registry.
// Without MONGODB_URI, it says loudly that all of that was skipped.
import t from 'tap';
import { Readable } from 'node:stream';
import type { Observation, Patient, Resource } from '@medplum/fhirtypes';
import { indexEntries } from '../../src/search/extract.js';
import { openMongoStore, type MongoStore } from '../../src/store/mongo/index.js';
import { INDEXES } from '../../src/store/mongo/indexes.js';
import { WriteConflict, type WriteOp } from '../../src/store/port.js';

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
  const update = (resource: Resource & { id: string }, expectedVersion?: number): WriteOp => ({ kind: 'update', resource, index: indexEntries(resource), ...(expectedVersion !== undefined ? { expectedVersion } : {}) });

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

  t.test('of two concurrent updates of the same version, the database lets exactly one win', async (t) => {
    await store.transact([create({ resourceType: 'Patient', id: 'race', active: true })], AT);
    const results = await Promise.allSettled([
      store.transact([update({ resourceType: 'Patient', id: 'race', gender: 'female' }, 1)], AT),
      store.transact([update({ resourceType: 'Patient', id: 'race', gender: 'male' }, 1)], AT),
    ]);
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    t.ok(refused.reason instanceof WriteConflict && refused.reason.reason === 'version-mismatch', String(refused.reason));
    const read = await store.read('Patient', 'race');
    t.equal(read.kind === 'found' && read.version.versionId, 2);
  });

  t.test('concurrent conditional creates with the same criteria create one resource', async (t) => {
    const ifNoneExist = { types: ['Patient'], where: [{ kind: 'token' as const, param: 'identifier', values: [{ system: 'urn:t', code: 'once' }] }], sort: [] };
    const candidate = (id: string) => create({ resourceType: 'Patient', id, identifier: [{ system: 'urn:t', value: 'once' }] }, { ifNoneExist });
    const results = await Promise.all([store.transact([candidate('c1')], AT), store.transact([candidate('c2')], AT)]);
    t.same(results.map((r) => r[0].kind).sort(), ['created', 'existing']);
    const page = await store.search(ifNoneExist, { count: 10, total: true });
    t.equal(page.total, 1);
  });

  t.test('a transaction that fails writes nothing', async (t) => {
    await store.transact([create({ resourceType: 'Patient', id: 'taken' })], AT);
    await t.rejects(store.transact([create({ resourceType: 'Patient', id: 'fresh' }), create({ resourceType: 'Patient', id: 'taken' })], AT), WriteConflict);
    t.equal((await store.read('Patient', 'fresh')).kind, 'missing');
  });

  t.test('history pages newest first and vread reads old versions', async (t) => {
    await store.transact([create({ resourceType: 'Patient', id: 'h', gender: 'male' })], '2026-01-01T00:00:01.000Z');
    await store.transact([update({ resourceType: 'Patient', id: 'h', gender: 'female' })], '2026-01-01T00:00:02.000Z');
    await store.transact([{ kind: 'delete', type: 'Patient', id: 'h' }], '2026-01-01T00:00:03.000Z');
    const first = await store.history({ level: 'instance', type: 'Patient', id: 'h' }, { count: 2 });
    t.same(first.versions.map((v) => v.versionId), [3, 2]);
    t.equal(first.total, 3);
    const second = await store.history({ level: 'instance', type: 'Patient', id: 'h' }, { count: 2, cursor: first.next! });
    t.same(second.versions.map((v) => v.versionId), [1]);
    t.equal((await store.read('Patient', 'h')).kind, 'deleted');
    const v1 = await store.readVersion('Patient', 'h', 1);
    t.equal(v1.kind === 'found' && (v1.version.resource as Patient).gender, 'male');
  });

  t.test('GridFS blobs are content-addressed and read by byte range', async (t) => {
    const bytes = Buffer.from('0123456789'.repeat(100_000));
    const info = await store.blobs.put(Readable.from([bytes.subarray(0, 300_000), bytes.subarray(300_000)]));
    const again = await store.blobs.put(bytes);
    t.same(again, info);
    t.equal(await store.db.collection('blobs.files').countDocuments({ filename: info.key }), 1);
    t.same(await store.blobs.stat(info.key), info);
    const stream = await store.blobs.get(info.key, { start: 5, end: 14 });
    const chunks: Buffer[] = [];
    for await (const chunk of stream!) chunks.push(chunk as Buffer);
    t.equal(Buffer.concat(chunks).toString(), '5678901234');
    t.equal(await store.blobs.get('0'.repeat(64)), undefined);
  });

  t.test('the client registry refuses a replayed assertion', async (t) => {
    await store.clients.register({ id: 'app', name: 'App', kind: 'system', jwks: { keys: [] }, scopes: 'system/*.rs', certified: true, created: AT });
    t.equal((await store.clients.get('app'))?.name, 'App');
    t.equal(await store.clients.consumeAssertion('app', 'jti-1', Date.now() + 60_000), true);
    t.equal(await store.clients.consumeAssertion('app', 'jti-1', Date.now() + 60_000), false);
  });
}
