// The MongoDB engine against a stand-in server (test/store/fake-mongod.ts) that answers the wire
// protocol without holding data: what the driver and the engine do with a server's answers, run
// without a MongoDB server. A standalone server is refused at start-up; a server that goes away
// answers 503 and is used again once it is back; writes are transactions committed with a
// majority, journaled write concern.
import t, { type Test } from 'tap';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { openMongoStore } from '../../src/store/mongo/index.js';
import { spawnChild } from '../child-server.js';
import { fhir, json, testServer } from '../helpers.js';
import { fakeMongod } from './fake-mongod.js';

/** A test server on the MongoDB engine, on a stand-in one-member replica set; all closed at teardown. */
async function onFakeReplicaSet(t: Test) {
  const rs = await fakeMongod('rs0');
  const store = await openMongoStore({ uri: `mongodb://127.0.0.1:${rs.port}/carnet?replicaSet=rs0`, serverSelectionTimeoutMS: 1000 });
  const server = await testServer({ store });
  t.teardown(async () => {
    await server.close();
    await store.close();
    await rs.stop();
  });
  return { rs, server };
}

t.test('the server refuses a standalone MongoDB at start-up with one clear line', async (t) => {
  const standalone = await fakeMongod();
  t.teardown(() => standalone.stop());
  const { proc, exited } = spawnChild({ CARNET_STORE: `mongodb://127.0.0.1:${standalone.port}/carnet`, CARNET_MONGODB_TIMEOUT_MS: '2000', CARNET_DATA_DIR: t.testdir() });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const { code } = await exited;
  t.equal(code, 1);
  t.equal(stderr.trim().split('\n').length, 1, stderr);
  t.match(stderr, /^Carnet could not start: MongoDB at mongodb:\/\/127\.0\.0\.1:\d+\/carnet is a standalone server; Carnet needs a replica set/);
  t.notOk(standalone.commands.includes('createIndexes'), 'nothing is created on a refused server');
});

t.test('on a replica set, indexes are created at start-up and writes are majority-journaled transactions', async (t) => {
  const { rs, server } = await onFakeReplicaSet(t);
  t.ok(rs.received.some((c) => c.createIndexes === 'resources' && Array.isArray(c.indexes) && c.indexes.length > 10), 'the resources indexes');
  const before = rs.received.length;
  const res = await fhir(server.app, 'POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Dupont' }] });
  t.equal(res.statusCode, 201);
  const sent = rs.received.slice(before);
  const inserts = sent.filter((c) => c.insert === 'resources' || c.insert === 'versions');
  t.ok(inserts.length >= 2, 'the resource, its version and its AuditEvent are inserted');
  const txn = String(inserts[0].txnNumber);
  t.ok(inserts.every((c) => String(c.txnNumber) === txn && c.autocommit === false), 'in one transaction');
  const commit = sent.find((c) => c.commitTransaction === 1 && String(c.txnNumber) === txn);
  t.match(commit?.writeConcern, { w: 'majority', j: true }, 'committed with w: majority, j: true');
});

t.test('a server that goes away answers 503, and is used again once it is back', async (t) => {
  const { rs, server } = await onFakeReplicaSet(t);
  t.equal((await fhir(server.app, 'GET', 'Patient/p1')).statusCode, 404, 'up: the stand-in holds no data');
  await rs.stop();
  const down = await fhir(server.app, 'GET', 'Patient/p1');
  t.equal(down.statusCode, 503);
  t.equal(json<OperationOutcome>(down).issue?.[0].code, 'transient');
  await rs.start();
  // The driver finds the server again on its own; a few requests may still be answered 503 meanwhile.
  let status = 503;
  for (let attempt = 0; attempt < 20 && status === 503; attempt++) status = (await fhir(server.app, 'GET', 'Patient/p1')).statusCode;
  t.equal(status, 404, 'back: answered from the database again, with no restart');
});

t.test('If-Match is checked by the database: the replacement names the version it read', async (t) => {
  const { rs, server } = await onFakeReplicaSet(t);
  const created = await fhir(server.app, 'PUT', 'Patient/lock', { resourceType: 'Patient', id: 'lock', gender: 'male' });
  t.equal(created.statusCode, 201);
  const before = rs.received.length;
  const updated = await fhir(server.app, 'PUT', 'Patient/lock', { resourceType: 'Patient', id: 'lock', gender: 'female' }, { 'if-match': 'W/"1"' });
  t.equal(updated.statusCode, 200);
  const replace = rs.received.slice(before).find((c) => c.update === 'resources') as { updates: { q: Record<string, unknown> }[] } | undefined;
  t.same(replace?.updates[0].q, { _id: 'Patient/lock', version: 1, patient: 'Patient/lock' }, 'replaced only where the version is still 1');
  const stale = await fhir(server.app, 'PUT', 'Patient/lock', { resourceType: 'Patient', id: 'lock', gender: 'other' }, { 'if-match': 'W/"1"' });
  t.equal(stale.statusCode, 412);
  t.equal(json<OperationOutcome>(stale).resourceType, 'OperationOutcome');
});
