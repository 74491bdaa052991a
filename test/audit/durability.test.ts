// Durability of the access log: a read's AuditEvent is on disk before the read is answered. Runs
// the real server as a child process (src/main.ts through tsx) on a temporary data directory; a
// practitioner (the patient's general practitioner) reads the patient's documents from concurrent
// loops; the server is SIGKILLed mid-stream; after a restart on the same directory, the patient's
// access log must hold a read record from that practitioner for every read that was answered 200,
// document by document. Two crash rounds: the second one reads on top of a recovered database,
// through three server processes sharing the data directory (docs/deployment.md, "Several
// processes"), all three killed at once.
// On SQLite, a read's record is appended to the audit journal (store/sqlite/journal.ts) before the
// answer and taken into the database by the writer thread a few milliseconds later: the records
// still in the journal files at the kill are counted, and the restarted server must have taken them
// in at open, or the patient's search would miss them. So are the records whose index rows were
// still pending (store/sqlite/deferred.ts: the records of writes).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import type { AuditEvent, Bundle } from '@medplum/fhirtypes';
import { developmentTokenFor, type TestActor } from '../helpers.js';
import { startServer, type Child } from '../child-server.js';

// The runner's timeout (package.json, 120 s) is too short for this file on a busy 2-core machine: it starts six server processes and reads until they are killed.
t.setTimeout(480_000);

const FHIR_JSON = 'application/fhir+json';
/** One base URL for every process (as behind a load balancer): one token serves them all. */
const BASE = 'http://carnet.durability.test/fhir';

/** Concurrent read loops; each stops at its first failure (the kill) or after MAX_PER_LOOP reads. */
const LOOPS = 16;
/** Acknowledged reads (per round) after which the server is killed. */
const KILL_AFTER = 400;
const MAX_PER_LOOP = 1000;
/** The server processes of each round, on the one data directory. */
const PROCESSES = [1, 3];

const PATIENT = 'dur-patient';
const GP = 'dur-gp';
const DOCS = ['dur-doc-0', 'dur-doc-1', 'dur-doc-2', 'dur-doc-3', 'dur-doc-4'];
const gp: TestActor = { kind: 'practitioner', practitioner: GP, profession: '10', purpose: 'TREAT' };
const patient: TestActor = { kind: 'patient', patient: PATIENT };

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-audit-durability-'));
t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));

async function authorization(actor: TestActor): Promise<string> {
  return `Bearer ${await developmentTokenFor(dataDir, BASE, actor)}`;
}

async function put(child: Child, auth: string, resource: { resourceType: string; id: string }): Promise<void> {
  const res = await fetch(`${child.base}/${resource.resourceType}/${resource.id}`, {
    method: 'PUT',
    headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON, authorization: auth },
    body: JSON.stringify(resource),
  });
  if (res.status >= 300) throw new Error(`PUT ${resource.resourceType}/${resource.id}: ${res.status} ${await res.text()}`);
}

/** The record: a patient whose general practitioner is GP, and documents GP wrote. Loaded by a vendor system. */
async function load(child: Child): Promise<void> {
  const loader = await authorization({ kind: 'system', client: 'dur-loader' });
  await put(child, loader, { resourceType: 'Practitioner', id: GP, name: [{ family: 'Généraliste' }] } as { resourceType: string; id: string });
  await put(child, loader, { resourceType: 'Patient', id: PATIENT, name: [{ family: 'Durable' }], generalPractitioner: [{ reference: `Practitioner/${GP}` }] } as { resourceType: string; id: string });
  for (const id of DOCS) {
    await put(child, loader, {
      resourceType: 'DocumentReference',
      id,
      status: 'current',
      type: { coding: [{ system: 'http://loinc.org', code: '57833-6' }] },
      subject: { reference: `Patient/${PATIENT}` },
      author: [{ reference: `Practitioner/${GP}` }],
      date: '2026-02-01T10:00:00Z',
      content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${id}` } }],
    } as { resourceType: string; id: string });
  }
}

interface RoundResult {
  /** Reads answered 200, by document id. */
  acknowledged: Map<string, number>;
  sent: number;
  inFlightAtKill: number;
  failedAfterKill: number;
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** SQLite: the versions committed without their index rows, read from the file of a stopped server. */
function pendingIndexRows(): number | undefined {
  if (process.env.MONGODB_URI) return undefined;
  const db = new Database(path.join(dataDir, 'carnet.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM index_pending').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** SQLite: the records in the journal files of a stopped server that are not in its database yet. */
function journalBacklog(): number | undefined {
  if (process.env.MONGODB_URI) return undefined;
  const dir = path.join(dataDir, 'journal');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  const db = new Database(path.join(dataDir, 'carnet.sqlite'), { readonly: true });
  try {
    let records = 0;
    for (const file of files) {
      const offset = (db.prepare('SELECT offset FROM journal_applied WHERE file = ?').get(file) as { offset: number } | undefined)?.offset ?? 0;
      const rest = fs.readFileSync(path.join(dir, file)).subarray(offset).toString('utf8');
      records += rest.split('\n').length - 1;
    }
    return records;
  } finally {
    db.close();
  }
}

/** Reads from LOOPS concurrent loops as GP, spread over the children; SIGKILLs them all once KILL_AFTER reads are answered. */
async function readUntilKilled(children: Child[]): Promise<RoundResult> {
  const auth = await authorization(gp);
  const acknowledged = new Map<string, number>(DOCS.map((d) => [d, 0]));
  let sent = 0;
  let inFlight = 0;
  let inFlightAtKill = -1;
  let failedAfterKill = 0;
  let killed = false;
  const loop = async (n: number) => {
    const child = children[n % children.length];
    for (let i = 0; i < MAX_PER_LOOP && !killed; i++) {
      const id = DOCS[(n + i) % DOCS.length];
      sent++;
      inFlight++;
      let status: number;
      try {
        const res = await fetch(`${child.base}/DocumentReference/${id}`, { headers: { accept: FHIR_JSON, authorization: auth } });
        status = res.status;
        // A 200 is an acknowledgement once its status line arrived: the record must already be on disk.
        if (status === 200) acknowledged.set(id, (acknowledged.get(id) ?? 0) + 1);
        const body = (await res.json()) as { id?: string };
        if (status !== 200 || body.id !== id) throw new Error(`read of ${id} answered ${status}: ${JSON.stringify(body)}`);
      } catch (error) {
        if (!killed) throw error;
        failedAfterKill++;
        return;
      } finally {
        inFlight--;
      }
      if (!killed && sum(acknowledged) >= KILL_AFTER) {
        killed = true;
        inFlightAtKill = inFlight;
        for (const each of children) each.proc.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: LOOPS }, (_, n) => loop(n)));
  return { acknowledged, sent, inFlightAtKill, failedAfterKill };
}

/** GP's successful read records in the patient's access log, by document id, read as the patient through every page. */
async function recordedReads(child: Child): Promise<{ byDocument: Map<string, number>; pages: number }> {
  const auth = await authorization(patient);
  const byDocument = new Map<string, number>(DOCS.map((d) => [d, 0]));
  let url: string | undefined = `${child.base}/AuditEvent?patient=${PATIENT}&subtype=read&_count=200`;
  let pages = 0;
  const seen = new Set<string>();
  while (url !== undefined) {
    if (++pages > 500) throw new Error('more than 500 pages of AuditEvents: the next links do not end');
    const res = await fetch(url, { headers: { accept: FHIR_JSON, authorization: auth } });
    const bundle = (await res.json()) as Bundle;
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${JSON.stringify(bundle)}`);
    for (const entry of bundle.entry ?? []) {
      const event = entry.resource as AuditEvent;
      if (entry.search?.mode !== 'match' || seen.has(event.id as string)) continue;
      seen.add(event.id as string);
      const byGp = event.agent.some((a) => a.requestor && a.who?.reference === `Practitioner/${GP}`);
      if (event.subtype?.[0]?.code !== 'read' || event.outcome !== '0' || !byGp) continue;
      for (const entity of event.entity ?? []) {
        const what = entity.what?.reference ?? '';
        const id = what.startsWith('DocumentReference/') ? what.slice('DocumentReference/'.length) : undefined;
        if (id !== undefined && byDocument.has(id)) byDocument.set(id, (byDocument.get(id) ?? 0) + 1);
      }
    }
    // Links name the base URL the processes share; the request goes to this process.
    url = bundle.link?.find((l) => l.relation === 'next')?.url?.replace(BASE, child.base);
  }
  return { byDocument, pages };
}

t.test('every answered read has its AuditEvent on disk, through kill -9, twice in a row, the second time of three processes', async (t) => {
  const acknowledged = new Map<string, number>(DOCS.map((d) => [d, 0]));
  let sentTotal = 0;
  let pendingAtKills = 0;
  let journaledAtKills = 0;
  for (const [i, processes] of PROCESSES.entries()) {
    const round = i + 1;
    // Started together: each opens the store while the others do.
    const children = await Promise.all(Array.from({ length: processes }, () => startServer(dataDir, { CARNET_BASE_URL: BASE })));
    if (round > 1) {
      t.equal(pendingIndexRows() ?? 0, 0, `round ${round}: the restarted servers wrote the pending index rows at open`);
      t.equal(journalBacklog() ?? 0, 0, `round ${round}: the restarted servers took the journal in at open`);
    }
    if (round === 1) await load(children[0]);
    const result = await readUntilKilled(children);
    for (const child of children) {
      const exit = await child.exited;
      t.equal(exit.signal, 'SIGKILL', `round ${round}: server ${child.proc.pid} died of SIGKILL`);
    }
    const pending = pendingIndexRows();
    if (pending !== undefined) t.comment(`round ${round}: ${pending} records without their index rows at the kill`);
    pendingAtKills += pending ?? 0;
    const journaled = journalBacklog();
    if (journaled !== undefined) t.comment(`round ${round}: ${journaled} records in the journal only at the kill`);
    journaledAtKills += journaled ?? 0;
    t.ok(sum(result.acknowledged) >= KILL_AFTER, `round ${round}: ${sum(result.acknowledged)} reads answered 200 before the kill, by ${processes} processes`);
    t.ok(result.inFlightAtKill > 0, `round ${round}: ${result.inFlightAtKill} reads in flight at the kill`);
    t.ok(result.sent < LOOPS * MAX_PER_LOOP, `round ${round}: the kill, not the loop bound, ended the stream`);
    t.comment(`round ${round}: sent ${result.sent}, answered 200 ${sum(result.acknowledged)}, failed by the kill ${result.failedAfterKill}`);
    for (const [id, n] of result.acknowledged) acknowledged.set(id, (acknowledged.get(id) ?? 0) + n);
    sentTotal += result.sent;
  }

  const child = await startServer(dataDir, { CARNET_BASE_URL: BASE });
  t.teardown(() => {
    child.proc.kill('SIGKILL');
  });
  // Before any request (each writes a record, pending again for a few ms).
  t.equal(pendingIndexRows() ?? 0, 0, 'the restarted server wrote the pending index rows at open');
  t.equal(journalBacklog() ?? 0, 0, 'the restarted server took the journal in at open');
  // Records wait up to 25 ms in the journal and reads never pause, so a kill almost always leaves
  // some: then the counts below hold only because the open took them in.
  t.comment(`${journaledAtKills} records were in the journal only, ${pendingAtKills} without their index rows, at the kills`);
  const { byDocument, pages } = await recordedReads(child);
  t.comment(`recorded reads by ${GP}: ${sum(byDocument)} over ${pages} pages, for ${sum(acknowledged)} answered and ${sentTotal} sent`);
  for (const id of DOCS) {
    t.ok(
      (byDocument.get(id) ?? 0) >= (acknowledged.get(id) ?? 0),
      `DocumentReference/${id}: ${byDocument.get(id)} read records for ${acknowledged.get(id)} reads answered 200`,
    );
  }
  t.ok(sum(byDocument) >= sum(acknowledged), `at least as many read records (${sum(byDocument)}) as reads answered (${sum(acknowledged)})`);
  t.ok(sum(byDocument) <= sentTotal, `no more read records (${sum(byDocument)}) than reads sent (${sentTotal})`);
  child.proc.kill('SIGTERM');
  t.equal((await child.exited).code, 0, 'the recovered server stops cleanly');
});
