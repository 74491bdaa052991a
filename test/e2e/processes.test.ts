// Many processes, one truth: three real server processes on one data directory (one MongoDB
// database when MONGODB_URI is set), with writes and reads interleaved across them. The same
// script of requests runs twice: once all through one process, once spread over the three (each
// step through the process the script names, so a process reads right after another wrote). Every
// answer of the second run must equal the first run's, and the key answers are also checked
// against what docs/consent.md promises. What it covers: a mask, a block and their removal; the
// account closed and reopened; a document pushed through one process and found through another;
// a professional's read answered by one process, in the patient's access log through another at
// once; and a start of CARNET_WORKERS=3 (the supervisor and its workers on one port).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { AuditEvent, Bundle, Resource } from '@medplum/fhirtypes';
import { developmentTokenFor, type TestActor } from '../helpers.js';
import { startServer, type Child } from '../child-server.js';
import { block, doc, LAB, mask, PRESCRIPTION } from '../policy/fixture.js';

// The runner's timeout (package.json, 120 s) is too short for this file on a busy 2-core machine: it starts seven server processes.
t.setTimeout(480_000);

const FHIR_JSON = 'application/fhir+json';
/** The base URL every process answers as (behind one load balancer): one token serves all three. */
const BASE = 'http://carnet.processes.test/fhir';

const gp: TestActor = { kind: 'practitioner', practitioner: 'mp-gp', profession: '10', purpose: 'TREAT' };
const patient: TestActor = { kind: 'patient', patient: 'mp-p1' };
const loader: TestActor = { kind: 'system', client: 'mp-loader' };
const lab: TestActor = { kind: 'system', client: 'mp-lab' };

interface Step {
  /** Which process answers (0, 1 or 2); the single-process run sends everything to process 0. */
  via: number;
  actor: TestActor;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** May name ids saved by earlier steps: `{mask}`. */
  url: string;
  body?: (saved: Map<string, string>) => Resource;
  /** Keep the created resource's id under this name. */
  save?: string;
  /** What docs/consent.md promises for this step (checked in both runs). */
  expect?: { status?: number; ids?: string[]; gpReadOf?: string };
}

/** An answer reduced to what must not depend on the process: status, ids found (named), the GP's recorded reads. */
interface Answer {
  status: number;
  ids?: string[];
  gpReadOf?: string[];
}

const patientResource = (active: boolean) => () =>
  ({ resourceType: 'Patient', id: 'mp-p1', active, name: [{ family: 'Multiple' }], generalPractitioner: [{ reference: 'Practitioner/mp-gp' }] }) as Resource;

const SCRIPT: Step[] = [
  // The GP reads and searches: processes 0 and 1 now hold the patient's consent state.
  { via: 0, actor: gp, method: 'GET', url: 'DocumentReference/mp-doc-a', expect: { status: 200 } },
  { via: 1, actor: gp, method: 'GET', url: 'DocumentReference?patient=mp-p1&_count=50', expect: { ids: ['mp-doc-a', 'mp-doc-b'] } },
  { via: 2, actor: gp, method: 'GET', url: 'DocumentReference?_count=50', expect: { ids: ['mp-doc-a', 'mp-doc-b'] } },
  // A mask written through process 2 governs the next decision of 0 and 1.
  { via: 2, actor: patient, method: 'POST', url: 'Consent', body: () => mask('ignored', 'mp-p1', 'mp-doc-a'), save: 'mask', expect: { status: 201 } },
  { via: 0, actor: gp, method: 'GET', url: 'DocumentReference/mp-doc-a', expect: { status: 404 } },
  { via: 1, actor: gp, method: 'GET', url: 'DocumentReference?patient=mp-p1&_count=50', expect: { ids: ['mp-doc-b'] } },
  { via: 2, actor: gp, method: 'GET', url: 'DocumentReference?_count=50', expect: { ids: ['mp-doc-b'] } },
  { via: 1, actor: patient, method: 'DELETE', url: 'Consent/{mask}' },
  { via: 0, actor: gp, method: 'GET', url: 'DocumentReference/mp-doc-a', expect: { status: 200 } },
  { via: 2, actor: gp, method: 'GET', url: 'DocumentReference?patient=mp-p1&_count=50', expect: { ids: ['mp-doc-a', 'mp-doc-b'] } },
  // A block of the GP, through process 1.
  { via: 1, actor: patient, method: 'POST', url: 'Consent', body: () => block('ignored', 'mp-p1', 'Practitioner/mp-gp'), save: 'block', expect: { status: 201 } },
  { via: 0, actor: gp, method: 'GET', url: 'DocumentReference/mp-doc-b' },
  { via: 2, actor: gp, method: 'GET', url: 'DocumentReference?patient=mp-p1&_count=50', expect: { ids: [] } },
  { via: 0, actor: gp, method: 'GET', url: 'DocumentReference?_count=50', expect: { ids: [] } },
  { via: 2, actor: patient, method: 'DELETE', url: 'Consent/{block}' },
  { via: 1, actor: gp, method: 'GET', url: 'DocumentReference/mp-doc-b', expect: { status: 200 } },
  // A document pushed through process 1 is found through 0 and read through 2.
  { via: 1, actor: lab, method: 'POST', url: 'DocumentReference', body: () => doc('ignored', 'mp-p1', LAB, 'Organization/mp-lab-org'), save: 'pushed', expect: { status: 201 } },
  { via: 0, actor: gp, method: 'GET', url: 'DocumentReference?patient=mp-p1&_count=50', expect: { ids: ['mp-doc-a', 'mp-doc-b', '{pushed}'] } },
  { via: 2, actor: gp, method: 'GET', url: 'DocumentReference/{pushed}', expect: { status: 200 } },
  // A read answered by process 2 is in the access log the patient reads through process 0 at once.
  { via: 2, actor: gp, method: 'GET', url: 'DocumentReference/mp-doc-b', expect: { status: 200 } },
  { via: 0, actor: patient, method: 'GET', url: 'AuditEvent?patient=mp-p1&subtype=read&_count=200', expect: { gpReadOf: 'DocumentReference/mp-doc-b' } },
  // The account closed through process 0 (by the person, $close: docs/accounts.md): no professional
  // reads anything, and nothing more is pushed into it, through any process.
  { via: 0, actor: patient, method: 'POST', url: 'Patient/mp-p1/$close', body: () => ({ resourceType: 'Parameters' }) as Resource, expect: { status: 200 } },
  { via: 1, actor: gp, method: 'GET', url: 'DocumentReference/mp-doc-b' },
  { via: 2, actor: gp, method: 'GET', url: 'DocumentReference?patient=mp-p1&_count=50', expect: { ids: [] } },
  { via: 2, actor: lab, method: 'POST', url: 'DocumentReference', body: () => doc('ignored', 'mp-p1', LAB, 'Organization/mp-lab-org'), expect: { status: 403 } },
  { via: 1, actor: patient, method: 'GET', url: 'DocumentReference?_count=50', expect: { ids: ['mp-doc-a', 'mp-doc-b', '{pushed}'] } },
];

async function authorization(dataDir: string, actor: TestActor): Promise<string> {
  return `Bearer ${await developmentTokenFor(dataDir, BASE, actor)}`;
}

async function request(dataDir: string, child: Child, actor: TestActor, method: string, url: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; location: string | null }> {
  const res = await fetch(`${child.base}/${url}`, {
    method,
    headers: { accept: FHIR_JSON, authorization: await authorization(dataDir, actor), ...(body ? { 'content-type': FHIR_JSON } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {}, location: res.headers.get('location') };
}

/** The record, written by its rightful authors: the directory and patient by a vendor system, documents by the lab. */
async function load(dataDir: string, child: Child): Promise<void> {
  const resources: [TestActor, Resource][] = [
    [loader, { resourceType: 'Practitioner', id: 'mp-gp', name: [{ family: 'Généraliste' }] } as Resource],
    [loader, { resourceType: 'Organization', id: 'mp-lab-org', name: 'Laboratoire' } as Resource],
    [loader, patientResource(true)()],
    [lab, doc('mp-doc-a', 'mp-p1', PRESCRIPTION, 'Organization/mp-lab-org')],
    [lab, doc('mp-doc-b', 'mp-p1', LAB, 'Organization/mp-lab-org')],
  ];
  for (const [actor, resource] of resources) {
    const res = await request(dataDir, child, actor, 'PUT', `${resource.resourceType}/${resource.id}`, resource);
    if (res.status >= 300) throw new Error(`PUT ${resource.resourceType}/${resource.id}: ${res.status} ${JSON.stringify(res.json)}`);
  }
}

/** Runs the script on `children` (step.via modulo their number), answers in script order. */
async function run(dataDir: string, children: Child[]): Promise<Answer[]> {
  const saved = new Map<string, string>();
  /** An id (or a `Type/id` reference) with each saved id replaced by its name. */
  const name = (text: string) => {
    const [type, id] = text.includes('/') ? text.split('/') : [undefined, text];
    const named = [...saved].find(([, v]) => v === id)?.[0] ?? id;
    return type === undefined ? named : `${type}/${named}`;
  };
  const fill = (text: string) => text.replace(/\{(\w+)\}/g, (_m, key: string) => saved.get(key) ?? `{${key}}`);
  const answers: Answer[] = [];
  for (const step of SCRIPT) {
    const child = children[step.via % children.length];
    const res = await request(dataDir, child, step.actor, step.method, fill(step.url), step.body?.(saved));
    if (step.save && res.status === 201) saved.set(step.save, String(res.json.id));
    const answer: Answer = { status: res.status };
    if (res.json.resourceType === 'Bundle') {
      const bundle = res.json as unknown as Bundle;
      const matches = (bundle.entry ?? []).filter((e) => e.search?.mode !== 'include').map((e) => e.resource as Resource);
      if (step.url.startsWith('AuditEvent')) {
        answer.gpReadOf = [
          ...new Set(
            matches.flatMap((event) => {
              const e = event as AuditEvent;
              if (e.outcome !== '0' || !e.agent.some((a) => a.requestor && a.who?.reference === 'Practitioner/mp-gp')) return [];
              return (e.entity ?? []).map((entity) => name(entity.what?.reference ?? ''));
            }),
          ),
        ].sort();
      } else answer.ids = matches.map((r) => `{${name(r.id as string)}}`.replace(/^\{(mp-[\w-]+)\}$/, '$1')).sort();
    }
    answers.push(answer);
  }
  return answers;
}

function describe(step: Step): string {
  return `${step.actor.kind}${'practitioner' in step.actor ? ` ${step.actor.practitioner}` : ''} ${step.method} ${step.url} through process ${step.via}`;
}

function checkPromises(t: Test, answers: Answer[], label: string): void {
  SCRIPT.forEach((step, i) => {
    const { expect } = step;
    if (!expect) return;
    const answer = answers[i];
    if (expect.status !== undefined) t.equal(answer.status, expect.status, `${label}: ${describe(step)} answers ${expect.status}`);
    if (expect.ids) t.same(answer.ids, [...expect.ids].sort(), `${label}: ${describe(step)} finds ${expect.ids.join(', ') || 'nothing'}`);
    if (expect.gpReadOf) t.ok(answer.gpReadOf?.includes(expect.gpReadOf), `${label}: the access log holds the GP's read of ${expect.gpReadOf}`);
  });
  // Reads while blocked or closed: refused, whatever the code (403 or 404), never 200.
  SCRIPT.forEach((step, i) => {
    if (step.actor !== gp || step.expect) return;
    t.not(answers[i].status, 200, `${label}: ${describe(step)} is refused`);
  });
}

const dirs: string[] = [];
t.teardown(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});
function dataDirectory(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'carnet-processes-'));
  dirs.push(dir);
  return dir;
}

async function stop(children: Child[]): Promise<void> {
  for (const child of children) child.proc.kill('SIGTERM');
  for (const child of children) await child.exited;
}

t.test('three processes on one store answer exactly as one process does', async (t) => {
  const single = dataDirectory();
  const one = await startServer(single, { CARNET_BASE_URL: BASE });
  await load(single, one);
  const expected = await run(single, [one]);
  await stop([one]);
  checkPromises(t, expected, 'one process');

  const shared = dataDirectory();
  // Started together: each opens the store while the others do.
  const three = await Promise.all([0, 1, 2].map(() => startServer(shared, { CARNET_BASE_URL: BASE })));
  await load(shared, three[0]);
  const answers = await run(shared, three);
  checkPromises(t, answers, 'three processes');
  SCRIPT.forEach((step, i) => t.same(answers[i], expected[i], `${describe(step)}: the same answer as one process`));
  await stop(three);
});

t.test('CARNET_WORKERS=3: one start-up line, one port, every worker answering from the one store', async (t) => {
  const dir = dataDirectory();
  const child = await startServer(dir, { CARNET_BASE_URL: BASE, CARNET_WORKERS: '3' });
  t.match(child.line, /workers: 3 processes/, 'the supervisor announces its workers');
  await load(dir, child);
  // Connections are handed to the workers in turn: consecutive requests meet different processes.
  const masked = await request(dir, child, patient, 'POST', 'Consent', mask('ignored', 'mp-p1', 'mp-doc-a'));
  t.equal(masked.status, 201);
  for (let i = 0; i < 6; i++) t.equal((await request(dir, child, gp, 'GET', 'DocumentReference/mp-doc-a')).status, 404, `read ${i + 1} after the mask is refused`);
  t.equal((await request(dir, child, patient, 'DELETE', `Consent/${String(masked.json.id)}`)).status < 300, true, 'the mask is removed');
  for (let i = 0; i < 6; i++) t.equal((await request(dir, child, gp, 'GET', 'DocumentReference/mp-doc-a')).status, 200, `read ${i + 1} after the mask is gone`);
  child.proc.kill('SIGTERM');
  const exit = await child.exited;
  t.equal(exit.code, 0, 'the supervisor stops its workers and exits cleanly');
});
