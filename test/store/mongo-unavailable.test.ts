// An unreachable MongoDB: the server refuses to start with one clear line and exit code 69, and a
// store that loses its database answers 503 with an OperationOutcome. These run without a MongoDB
// server: the engine points at a local port where nothing listens.
import net from 'node:net';
import t from 'tap';
import { MongoClient } from 'mongodb';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { MongoStore, openMongoStore } from '../../src/store/mongo/index.js';
import { StoreUnavailable } from '../../src/store/port.js';
import { spawnChild } from '../child-server.js';
import { fhir, json, testServer } from '../helpers.js';

/** A local port nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const port = await closedPort();
const uri = `mongodb://carnet:s3cret-password@127.0.0.1:${port}/carnet`;

t.test('the server does not start on an unreachable MongoDB: one line on stderr, exit code 69, no credentials', async (t) => {
  const { proc, exited } = spawnChild({ CARNET_STORE: uri, CARNET_MONGODB_TIMEOUT_MS: '300', CARNET_DATA_DIR: t.testdir() });
  let stderr = '';
  let stdout = '';
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const { code } = await exited;
  t.equal(code, 69);
  t.equal(stdout, '', 'it never announces itself');
  const lines = stderr.trim().split('\n');
  t.equal(lines.length, 1, stderr);
  t.match(lines[0], new RegExp(`^Carnet could not start: MongoDB at mongodb://127\\.0\\.0\\.1:${port}/carnet is unreachable \\(no server answered within 300 ms\\)`));
  t.notMatch(stderr, /s3cret/, 'the password is not printed');
});

t.test('a bad CARNET_MONGODB_TIMEOUT_MS stops the server naming the variable', async (t) => {
  const { proc, exited } = spawnChild({ CARNET_STORE: uri, CARNET_MONGODB_TIMEOUT_MS: 'soon', CARNET_DATA_DIR: t.testdir() });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const { code } = await exited;
  t.equal(code, 1);
  t.match(stderr, /CARNET_MONGODB_TIMEOUT_MS must be an integer/);
});

t.test('openMongoStore rejects with StoreUnavailable when no server answers', async (t) => {
  await t.rejects(openMongoStore({ uri, serverSelectionTimeoutMS: 200 }), StoreUnavailable);
});

t.test('a store whose database is gone answers 503 transient with an OperationOutcome, for reads, searches and writes', async (t) => {
  // A real engine instance whose server cannot be reached: every operation times out selecting one.
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 200 });
  const store = new MongoStore(client, client.db('carnet'));
  const server = await testServer({ store });
  t.teardown(async () => {
    await server.close();
    await store.close();
  });
  const requests: [string, string, unknown?][] = [
    ['GET', 'Patient/p1'],
    ['GET', 'Patient?name=dupont'],
    ['POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Dupont' }] }],
    ['GET', 'Patient/p1/_history'],
  ];
  for (const [method, url, body] of requests) {
    const res = await fhir(server.app, method as 'GET', url, body);
    t.equal(res.statusCode, 503, `${method} ${url}`);
    t.equal(res.headers['retry-after'], '5');
    const outcome = json<OperationOutcome>(res);
    t.equal(outcome.resourceType, 'OperationOutcome');
    t.equal(outcome.issue?.[0].code, 'transient');
    t.notMatch(res.body, /127\.0\.0\.1|s3cret/, 'no internals in the answer');
  }
});
