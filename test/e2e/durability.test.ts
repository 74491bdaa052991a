// Durability: a create the server acknowledged (201) survives kill -9 of the server process.
// Runs the real server as a child process (src/main.ts through tsx) on a temporary data
// directory, SIGKILLs it while creates are in flight, restarts it on the same directory and
// reads every acknowledged resource back. Two crash rounds: the second one writes on top of a
// database recovered from the first crash.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { developmentTokenFor } from '../helpers.js';
import { startServer as startChild, type Child as ServerChild } from '../child-server.js';

const FHIR_JSON = 'application/fhir+json';
const IDENTIFIER_SYSTEM = 'urn:carnet:test:durability';

/** Loops writing concurrently; each stops at its first failure (the kill) or after MAX_PER_LOOP creates. */
const LOOPS = 16;
/** Acknowledged creates (per round) after which the server is killed. */
const KILL_AFTER = 300;
const MAX_PER_LOOP = 2000;

interface Child extends ServerChild {
  /** Authorization header value: a development token for this server. */
  auth: string;
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-durability-'));
t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));

/** The server on `dir`, with a development token for it. */
async function startServer(dir: string): Promise<Child> {
  const child = await startChild(dir);
  return { ...child, auth: `Bearer ${await developmentTokenFor(dir, child.base)}` };
}

interface Acknowledged {
  id: string;
  value: string;
  family: string;
}

function patient(value: string, family: string) {
  return {
    resourceType: 'Patient',
    identifier: [{ system: IDENTIFIER_SYSTEM, value }],
    name: [{ family, given: ['Élodie', 'Marie'] }],
    gender: 'female',
    birthDate: '1984-03-12',
    address: [{ line: ['12 rue des Lilas'], city: 'Lyon', postalCode: '69003', country: 'FR' }],
  };
}

interface RoundResult {
  acknowledged: Acknowledged[];
  sent: number;
  inFlightAtKill: number;
  failedAfterKill: number;
}

/** Creates from LOOPS concurrent loops; SIGKILLs the child as soon as KILL_AFTER creates are acknowledged. */
async function writeUntilKilled(child: Child, round: number): Promise<RoundResult> {
  const acknowledged: Acknowledged[] = [];
  let sent = 0;
  let inFlight = 0;
  let inFlightAtKill = -1;
  let failedAfterKill = 0;
  let killed = false;
  const loop = async (n: number) => {
    for (let i = 0; i < MAX_PER_LOOP && !killed; i++) {
      const value = `r${round}-l${n}-${i}`;
      const family = `Durable-${value}`;
      sent++;
      inFlight++;
      try {
        const res = await fetch(`${child.base}/Patient`, {
          method: 'POST',
          headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON, authorization: child.auth },
          body: JSON.stringify(patient(value, family)),
        });
        const body = (await res.json()) as { id?: string };
        if (res.status !== 201) throw new Error(`create answered ${res.status}: ${JSON.stringify(body)}`);
        const location = res.headers.get('location');
        if (typeof body.id !== 'string' || location !== `${child.base}/Patient/${body.id}/_history/1`) {
          throw new Error(`unexpected Location ${location} for id ${body.id}`);
        }
        acknowledged.push({ id: body.id, value, family });
      } catch (error) {
        if (!killed) throw error;
        failedAfterKill++;
        return;
      } finally {
        inFlight--;
      }
      if (!killed && acknowledged.length >= KILL_AFTER) {
        killed = true;
        inFlightAtKill = inFlight;
        child.proc.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: LOOPS }, (_, n) => loop(n)));
  return { acknowledged, sent, inFlightAtKill, failedAfterKill };
}

/** Reads every acknowledged resource back (LOOPS at a time); returns the ids not found intact. */
async function missing(child: Child, expected: Acknowledged[]): Promise<string[]> {
  const lost: string[] = [];
  let next = 0;
  const reader = async () => {
    while (next < expected.length) {
      const want = expected[next++];
      const res = await fetch(`${child.base}/Patient/${want.id}`, { headers: { accept: FHIR_JSON, authorization: child.auth } });
      const body = (await res.json()) as { id?: string; identifier?: { system?: string; value?: string }[]; name?: { family?: string }[] };
      const intact =
        res.status === 200 &&
        body.id === want.id &&
        body.identifier?.[0]?.system === IDENTIFIER_SYSTEM &&
        body.identifier?.[0]?.value === want.value &&
        body.name?.[0]?.family === want.family;
      if (!intact) lost.push(`${want.id} (${want.value}): ${res.status}`);
    }
  };
  await Promise.all(Array.from({ length: LOOPS }, reader));
  return lost;
}

async function patientTotal(child: Child): Promise<number> {
  const res = await fetch(`${child.base}/Patient?_count=1`, { headers: { accept: FHIR_JSON, authorization: child.auth } });
  const bundle = (await res.json()) as { total?: number };
  if (res.status !== 200 || typeof bundle.total !== 'number') throw new Error(`search answered ${res.status} without a total`);
  return bundle.total;
}

t.test('every acknowledged create survives kill -9, twice in a row', async (t) => {
  const all: Acknowledged[] = [];
  let sentTotal = 0;
  for (const round of [1, 2]) {
    const child = await startServer(dataDir);
    if (round > 1) {
      t.same(await missing(child, all), [], `round ${round}: after restart, the creates acknowledged before are all there`);
    }
    const result = await writeUntilKilled(child, round);
    const exit = await child.exited;
    t.equal(exit.signal, 'SIGKILL', `round ${round}: the server died of SIGKILL`);
    t.ok(result.acknowledged.length >= KILL_AFTER, `round ${round}: ${result.acknowledged.length} creates acknowledged before the kill`);
    t.ok(result.inFlightAtKill > 0, `round ${round}: ${result.inFlightAtKill} requests in flight at the kill`);
    t.ok(result.sent < LOOPS * MAX_PER_LOOP, `round ${round}: the kill, not the loop bound, ended the stream`);
    t.comment(`round ${round}: sent ${result.sent}, acknowledged ${result.acknowledged.length}, failed by the kill ${result.failedAfterKill}`);
    all.push(...result.acknowledged);
    sentTotal += result.sent;
  }

  const child = await startServer(dataDir);
  t.teardown(() => child.proc.kill('SIGKILL'));
  const lost = await missing(child, all);
  t.same(lost, [], `all ${all.length} acknowledged creates read back 200 with their content`);
  t.equal(new Set(all.map((a) => a.id)).size, all.length, 'every acknowledged create has its own id');
  const total = await patientTotal(child);
  t.ok(total >= all.length && total <= sentTotal, `the store holds ${total} Patients: no fewer than acknowledged (${all.length}), no more than sent (${sentTotal})`);
  child.proc.kill('SIGTERM');
  t.equal((await child.exited).code, 0, 'the recovered server stops cleanly');
});
