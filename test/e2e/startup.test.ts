// Start-up, shutdown and logging of the real server process (src/main.ts through tsx):
// the listening line, SIGTERM, configuration errors, and logs free of health data.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { developmentTokenFor } from '../helpers.js';
import { LISTENING, spawnChild, type Exit } from '../child-server.js';

const FHIR_JSON = 'application/fhir+json';

const tempDirs: string[] = [];
t.teardown(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-startup-'));
  tempDirs.push(dir);
  return dir;
}

interface Child {
  proc: ChildProcess;
  dataDir: string;
  /** Everything written to stdout so far. */
  stdout: () => string;
  stderr: () => string;
  exited: Promise<Exit>;
}


function spawnServer(env: Record<string, string>): Child {
  const dataDir = tempDir();
  const { proc, exited } = spawnChild({ CARNET_DATA_DIR: dataDir, ...env });
  let stdout = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return { proc, dataDir, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Waits for the listening line (wherever it is in stdout); resolves with the port. */
function listening(child: Child): Promise<number> {
  return new Promise((resolve, reject) => {
    const check = () => {
      for (const line of child.stdout().split('\n')) {
        const match = LISTENING.exec(line);
        if (match) {
          child.proc.stdout!.off('data', check);
          resolve(Number(match[1]));
          return;
        }
      }
    };
    child.proc.stdout!.on('data', check);
    check();
    void child.exited.then((exit) => reject(new Error(`server exited (${JSON.stringify(exit)}) before listening\nstderr: ${child.stderr()}`)));
  });
}

const lines = (text: string) => text.split('\n').filter((line) => line !== '');

t.test('the listening line, metadata, and a clean exit on SIGTERM', async (t) => {
  const child = spawnServer({ LOG_LEVEL: 'warn' });
  const port = await listening(child);
  const before = lines(child.stdout());
  t.equal(before.length, 1, 'exactly one line is printed before the first request');
  t.match(before[0], LISTENING, 'it is the listening line');
  t.match(before[0], /store: sqlite\b/, 'it names the store');
  t.ok(before[0].includes(`base URL http://127.0.0.1:${port}/fhir`), 'with PORT=0, the base URL it names carries the port listened on');

  const res = await fetch(`http://127.0.0.1:${port}/fhir/metadata`, { headers: { accept: FHIR_JSON } });
  t.equal(res.status, 200, 'GET /fhir/metadata answers 200');
  t.match(res.headers.get('content-type'), /^application\/fhir\+json/);
  const body = (await res.json()) as { resourceType?: string; fhirVersion?: string };
  t.equal(body.resourceType, 'CapabilityStatement');
  t.equal(body.fhirVersion, '4.0.1');

  child.proc.kill('SIGTERM');
  const exit = await child.exited;
  t.same(exit, { code: 0, signal: null }, 'SIGTERM ends the process with exit code 0');
  t.equal(lines(child.stdout()).length, 1, 'at LOG_LEVEL=warn, nothing else reaches stdout');
});

// A supervisor may stop the server as soon as it has announced itself: the signal handlers must
// already be installed then (else SIGTERM's default action kills the process, without a clean close).
t.test('SIGTERM sent as soon as the listening line is read also exits with code 0', async (t) => {
  const results = await Promise.all(
    [1, 2, 3].map(async () => {
      const child = spawnServer({ LOG_LEVEL: 'warn' });
      await listening(child);
      child.proc.kill('SIGTERM');
      return child.exited;
    }),
  );
  t.same(results, results.map(() => ({ code: 0, signal: null })), 'every start exits with code 0');
});

t.test('a bad configuration stops start-up with a message naming the variable', async (t) => {
  const cases: [string, Record<string, string>][] = [
    ['PORT', { PORT: 'abc' }],
    ['CARNET_STORE', { CARNET_STORE: 'postgres://x' }],
    ['CARNET_SQLITE_SYNC', { CARNET_SQLITE_SYNC: 'off' }],
  ];
  // Concurrently: each child pays the tsx start-up.
  const results = await Promise.all(
    cases.map(async ([name, env]) => {
      const child = spawnServer({ LOG_LEVEL: 'warn', ...env });
      return { name, env, exit: await child.exited, stdout: child.stdout(), stderr: child.stderr() };
    }),
  );
  for (const { name, env, exit, stdout, stderr } of results) {
    const setting = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');
    t.not(exit.code, 0, `${setting}: exits non-zero (${exit.code})`);
    t.equal(exit.signal, null, `${setting}: exits by itself`);
    t.match(stderr, new RegExp(`Carnet could not start: .*\\b${name}\\b`), `${setting}: stderr names ${name}`);
    t.notMatch(stdout, /listening/, `${setting}: never listens`);
  }
});

// A Patient with a name and a French national health identifier (INS, OID 1.2.250.1.213.1.4.8).
const INS_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
const INS = '1234567890123';
const GIVEN = 'Hélène';
const FAMILY = 'Dupont';
const SECRETS = [INS, '1.2.250.1.213.1.4.8', GIVEN, FAMILY, 'H\\u00e9l\\u00e8ne', 'Helene'];

t.test('request logs name the route and status, never the patient or the identifier', async (t) => {
  const child = spawnServer({ LOG_LEVEL: 'info' });
  const port = await listening(child);
  const base = `http://127.0.0.1:${port}/fhir`;
  const query = `identifier=${INS_SYSTEM}|${INS}`;
  const patient = { resourceType: 'Patient', identifier: [{ system: INS_SYSTEM, value: INS }], name: [{ family: FAMILY, given: [GIVEN], text: `${GIVEN} ${FAMILY}` }] };
  const token = await developmentTokenFor(child.dataDir, base);
  const json = { 'content-type': FHIR_JSON, accept: FHIR_JSON, authorization: `Bearer ${token}` };

  // [method, url, init, expected status, expected route pattern]
  const requests: [string, string, RequestInit, number, string][] = [
    ['POST', `${base}/Patient?${query}`, { body: JSON.stringify(patient) }, 201, '/fhir/:type'],
    ['POST', `${base}/Patient`, { body: JSON.stringify(patient), headers: { ...json, 'if-none-exist': query } }, 200, '/fhir/:type'],
    ['GET', `${base}/Patient?${query}`, {}, 200, '/fhir/:type'],
    ['POST', `${base}/Patient?${query}`, { body: `{"resourceType":"Patient","name":[{"text":"${GIVEN} ${FAMILY}"` }, 400, '/fhir/:type'],
    ['POST', `${base}/Patient?${query}`, { body: `${GIVEN} ${FAMILY} ${INS}`, headers: { ...json, 'content-type': 'text/plain' } }, 415, '/fhir/:type'],
    ['GET', `${base}/Patient/${INS}?${query}`, {}, 404, '/fhir/:type/:id'],
    ['GET', `http://127.0.0.1:${port}/${FAMILY}/${INS}?${query}`, {}, 404, 'unmatched'],
  ];
  for (const [method, url, init, status] of requests) {
    const res = await fetch(url, { method, headers: json, ...init });
    await res.arrayBuffer();
    t.equal(res.status, status, `${method} ${url.replace(/^http:\/\/[^/]+/, '')} answers ${status}`);
  }
  child.proc.kill('SIGTERM');
  t.equal((await child.exited).code, 0, 'the server stops cleanly');

  const out = lines(child.stdout());
  // The stated contract holds at LOG_LEVEL=info (the default) too: the plain listening line alone,
  // then one JSON line per request (Fastify's app.listen() would add a {"msg":"listening"} line).
  t.match(out[0], LISTENING, 'the first line is the listening line');
  t.match(out[1], /"msg":"request"/, 'the next line is the log line of the first request');
  const logged = out.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
  const requestLines = logged.filter((entry) => entry.msg === 'request');
  t.equal(requestLines.length, requests.length, 'one log line per request');
  t.same(
    requestLines.map(({ method, route, status }) => ({ method, route, status })),
    requests.map(([method, , , status, route]) => ({ method, route, status })),
    'each request line has its method, route pattern and status',
  );
  // The bearer token is a credential: it must not reach the logs either.
  const secrets: [string, string][] = [...SECRETS.map((secret): [string, string] => [secret, `"${secret}"`]), [token, 'the bearer token']];
  for (const [secret, label] of secrets) {
    t.notOk(out.some((line) => line.includes(secret)), `no stdout line contains ${label}`);
    t.notOk(child.stderr().includes(secret), `stderr does not contain ${label}`);
  }
});
