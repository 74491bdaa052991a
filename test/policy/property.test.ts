// Property test of the consent rules through the HTTP API: for each seed, a random world (patients,
// professionals, organisations, documents of random types, observations, messages, consents) is loaded by a
// vendor system, then every kind of actor reads it every way the API offers (read, vread,
// history, searches with and without criteria, _summary=count, _include, _revinclude, _has,
// chains, paging). What each actor may see is re-derived here from the rules as written (the
// issue and docs/), independently of src/policy/decide.ts and restrict.ts; only the access matrix
// (data) is asked through mayRead. Every search must return exactly the allowed set (entries,
// totals, pages), every read 200 exactly when allowed, 404 otherwise, 403 for organisations.
//
// A failure names its seed: rerun it alone with PROPERTY_SEEDS=<seed> (comma-separated list).
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Bundle, BundleEntry, Coding, Resource } from '@medplum/fhirtypes';
import { authorizationFor, BASE, fhir, json, PROJECT, testServer, type TestActor, type TestServer } from '../helpers.js';
import { block, emergencyOff, mask, permit } from './fixture.js';
import { authorOf, seed as seedWorld } from '../seed.js';
import { mayRead } from '../../src/policy/matrix.js';

// The largest test file (three worlds, about 20,000 checks through HTTP on the production store,
// each search also checked in its MongoDB form): it nears tap's 120 s per file on a loaded 2-core
// machine, so it has four times that.
t.setTimeout(480_000);

const WRITES = Number(process.env.PROPERTY_WRITES ?? 250);
const SEEDS = (process.env.PROPERTY_SEEDS ?? '11,20260101,7')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n));

// ------------------------------------------------------------------------------------------------
// A tiny seeded PRNG (mulberry32)

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}

// ------------------------------------------------------------------------------------------------
// Document type and class codes, from the access matrix file

const LOINC = 'http://loinc.org';
const LOINC_OID = 'urn:oid:2.16.840.1.113883.6.1';
const DISCHARGE = '11490-0';
const PRESCRIPTION = '57833-6';

interface MatrixFile {
  categories: Record<string, { types?: { system: string; code: string }[]; classes?: { system: string; code: string }[] }>;
}
const matrixFile = JSON.parse(fs.readFileSync(path.join(PROJECT, 'profiles/access-matrix.json'), 'utf8')) as MatrixFile;
const MATRIX_TYPES = Object.values(matrixFile.categories).flatMap((c) => c.types ?? []).map(({ system, code }) => ({ system, code }));
const MATRIX_CLASSES = Object.values(matrixFile.categories).flatMap((c) => c.classes ?? []).map(({ system, code }) => ({ system, code }));
const typeOf = (code: string) => {
  const found = MATRIX_TYPES.find((c) => c.code === code);
  if (!found) throw new Error(`${code} is not in profiles/access-matrix.json`);
  return found;
};
// Types no category lists: readable only by professions with "*".
const UNLISTED = [
  { system: LOINC, code: '51969-4' },
  { system: LOINC, code: '68599-0' },
];

function randomType(rng: Rng): Coding {
  const r = rng.float();
  // Discharge reports and prescriptions (the seeds' examples) come often.
  const base = r < 0.2 ? typeOf(DISCHARGE) : r < 0.4 ? typeOf(PRESCRIPTION) : r < 0.5 ? rng.pick(UNLISTED) : rng.pick(MATRIX_TYPES);
  // Producers sometimes leave the system out, or spell LOINC as its OID.
  const s = rng.float();
  if (s < 0.08) return { code: base.code };
  if (s < 0.16 && base.system === LOINC) return { system: LOINC_OID, code: base.code };
  return { ...base };
}

// ------------------------------------------------------------------------------------------------
// The world

const PROFESSIONS = ['10', '21', '28', '80', '60'] as const;
const FAMILIES = ['Durand', 'Petit', 'Bernard', 'Moreau', 'Laurent', 'Simon', 'Michel', 'Lefebvre'];
const CONFIDENTIAL = { system: 'urn:carnet:security', code: 'confidential-from-representatives' };

interface Professional {
  id: string;
  profession: string;
  specialty?: string;
  organization?: string;
}

type ConsentKind = 'permit' | 'block' | 'mask' | 'emergency-off';
interface ConsentFacts {
  id: string;
  patient: string;
  kind: ConsentKind;
  /** permit: a practitioner id; block: 'Practitioner/x' or 'Organization/x'; mask: the masked resource, 'DocumentReference/x' or 'Observation/x'. */
  target?: string;
  active: boolean;
}

interface World {
  organizations: string[];
  professionals: Professional[];
  /** Every resource, by Type/id: its versions in order (the last is current). */
  versions: Map<string, Resource[]>;
  consents: Map<string, ConsentFacts>;
  /** Writes, in order. */
  writes: Resource[];
  /** Who created each resource (the store envelope's creator key), by Type/id. */
  creators: Map<string, string>;
}

const keyOf = (r: { resourceType: string; id?: string }) => `${r.resourceType}/${r.id}`;
const idFrom = (ref: string | undefined, type: string): string | undefined => (ref?.startsWith(`${type}/`) ? ref.slice(type.length + 1) : undefined);

function generate(rng: Rng): World {
  const world: World = { organizations: [], professionals: [], versions: new Map(), consents: new Map(), writes: [], creators: new Map() };
  const write = (r: Resource) => {
    const list = world.versions.get(keyOf(r)) ?? [];
    list.push(r);
    world.versions.set(keyOf(r), list);
    world.writes.push(r);
    if (!world.creators.has(keyOf(r))) world.creators.set(keyOf(r), authorOf(r, LOADER));
  };
  for (let i = 0; i < 3; i++) {
    const id = `org-${i}`;
    world.organizations.push(id);
    write({ resourceType: 'Organization', id, name: `Organisation ${i}` });
  }
  const nPros = rng.int(4, 6);
  for (let i = 0; i < nPros; i++) {
    const profession = rng.pick(PROFESSIONS);
    const pro: Professional = {
      id: `pr-${i}`,
      profession,
      ...(profession === '60' && rng.chance(0.4) ? { specialty: 'SI01' } : {}),
      ...(rng.chance(0.75) ? { organization: rng.pick(world.organizations) } : {}),
    };
    world.professionals.push(pro);
    write({ resourceType: 'Practitioner', id: pro.id, name: [{ family: `Soignant${i}` }] } as Resource);
  }
  const nPatients = rng.int(4, 8);
  const patients: string[] = [];
  for (let i = 0; i < nPatients; i++) {
    const id = `pt-${i}`;
    patients.push(id);
    const r = rng.float();
    write({
      resourceType: 'Patient',
      id,
      name: [{ family: FAMILIES[i], given: ['Camille'] }],
      ...(r < 0.2 ? { active: false } : r < 0.6 ? { active: true } : {}),
      ...(rng.chance(0.5) ? { generalPractitioner: [{ reference: `Practitioner/${rng.pick(world.professionals).id}` }] } : {}),
    } as Resource);
  }
  const nDocs = rng.int(10, 30);
  const docs: { id: string; patient: string }[] = [];
  for (let i = 0; i < nDocs; i++) {
    const id = `doc-${i}`;
    const patient = rng.pick(patients);
    docs.push({ id, patient });
    const r = rng.float();
    const pro = () => `Practitioner/${rng.pick(world.professionals).id}`;
    const author =
      r < 0.45 ? [pro()] : r < 0.72 ? [`Patient/${patient}`] : r < 0.85 ? [`Organization/${rng.pick(world.organizations)}`] : [pro(), `Patient/${patient}`];
    const content = {
      resourceType: 'DocumentReference',
      id,
      status: 'current',
      type: { coding: [randomType(rng)] },
      ...(rng.chance(0.15) ? { category: [{ coding: [{ ...rng.pick(MATRIX_CLASSES) }] }] } : {}),
      subject: { reference: `Patient/${patient}` },
      author: author.map((reference) => ({ reference })),
      date: '2026-02-01T10:00:00Z',
      content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${id}` } }],
      ...(rng.chance(0.15) ? { meta: { security: [CONFIDENTIAL] } } : {}),
    } as Resource;
    write(content);
  }
  let obsCount = 0;
  const observations: { id: string; patient: string }[] = [];
  for (const patient of patients) {
    for (let j = rng.int(0, 2); j > 0; j--) {
      const id = `obs-${obsCount++}`;
      observations.push({ id, patient });
      write({
        resourceType: 'Observation',
        id,
        status: 'final',
        code: { coding: [{ system: LOINC, code: '29463-7' }], text: 'weight' },
        subject: { reference: `Patient/${patient}` },
        // A performer is no care relationship.
        ...(rng.chance(0.3) ? { performer: [{ reference: `Practitioner/${rng.pick(world.professionals).id}` }] } : {}),
        ...(rng.chance(0.15) ? { meta: { security: [CONFIDENTIAL] } } : {}),
        valueQuantity: { value: rng.int(3, 99), unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' },
      } as Resource);
    }
  }
  // Conversations (docs/messaging.md): opened by a professional, some with a second professional
  // as recipient, with the patient's replies; a professional reads the messages naming them.
  let messageCount = 0;
  for (const patient of patients) {
    for (let j = rng.int(0, 2); j > 0; j--) {
      const id = `msg-${messageCount++}`;
      const sender = `Practitioner/${rng.pick(world.professionals).id}`;
      const colleague = rng.chance(0.3) ? [`Practitioner/${rng.pick(world.professionals).id}`] : [];
      write({
        resourceType: 'Communication',
        id,
        status: 'completed',
        topic: { text: 'a question' },
        subject: { reference: `Patient/${patient}` },
        sender: { reference: sender },
        recipient: [`Patient/${patient}`, ...colleague].map((reference) => ({ reference })),
        sent: '2026-02-01T10:00:00Z',
        payload: [{ contentString: 'hello' }],
        ...(rng.chance(0.15) ? { meta: { security: [CONFIDENTIAL] } } : {}),
      } as Resource);
      if (!rng.chance(0.6)) continue;
      write({
        resourceType: 'Communication',
        id: `msg-${messageCount++}`,
        status: 'completed',
        partOf: [{ reference: `Communication/${id}` }],
        subject: { reference: `Patient/${patient}` },
        sender: { reference: `Patient/${patient}` },
        recipient: [{ reference: rng.chance(0.5) ? sender : rng.pick([sender, ...colleague]) }],
        sent: '2026-02-01T11:00:00Z',
        payload: [{ contentString: 'thanks' }],
      } as Resource);
    }
  }
  // Consents: some inactive; some written twice (status flipped) so the policy sees changes.
  let consentCount = 0;
  // Some choices name two targets (each counts), some have a period: ended, not started yet, or
  // current (docs/consent.md); those out of their period grant and deny nothing.
  const consent = (facts: Omit<ConsentFacts, 'id' | 'active'>, also?: string) => {
    const id = `c-${consentCount++}`;
    const p = rng.float();
    const period = p < 0.1 ? { end: '2020-12-31' } : p < 0.18 ? { start: '2099-01-01' } : p < 0.26 ? { start: '2020-01-01', end: '2099-12-31' } : undefined;
    const active = rng.chance(0.78);
    const f: ConsentFacts = { ...facts, id, active: active && !(p < 0.18) };
    const shape = (): Resource => {
      let c: Resource;
      switch (f.kind) {
        case 'permit':
          c = permit(id, f.patient, f.target as string);
          break;
        case 'block':
          c = block(id, f.patient, f.target as string);
          break;
        case 'mask':
          c = mask(id, f.patient, f.target as string);
          break;
        case 'emergency-off':
          c = emergencyOff(id, f.patient);
      }
      const provision = { ...(c as unknown as { provision: Record<string, unknown[]> }).provision };
      if (also !== undefined && f.kind === 'mask') provision.data = [...provision.data, { meaning: 'instance', reference: { reference: also } }];
      else if (also !== undefined) {
        const actor = provision.actor[0] as { role: unknown };
        provision.actor = [...provision.actor, { role: actor.role, reference: { reference: f.kind === 'permit' ? `Practitioner/${also}` : also } }];
      }
      return { ...c, provision: { ...provision, ...(period ? { period } : {}) } } as Resource;
    };
    if (rng.chance(0.2)) write({ ...shape(), status: active ? 'inactive' : 'active' } as Resource);
    write({ ...shape(), status: active ? 'active' : 'inactive' } as Resource);
    world.consents.set(id, f);
    if (also !== undefined) world.consents.set(`${id}#1`, { ...f, target: also });
  };
  const otherPro = () => (rng.chance(0.15) ? rng.pick(world.professionals).id : undefined);
  for (const patient of patients) {
    for (const pro of world.professionals) if (rng.chance(0.25)) consent({ patient, kind: 'permit', target: pro.id }, otherPro());
    if (rng.chance(0.3)) consent({ patient, kind: 'block', target: `Practitioner/${rng.pick(world.professionals).id}` }, rng.chance(0.15) ? `Organization/${rng.pick(world.organizations)}` : undefined);
    if (rng.chance(0.25)) consent({ patient, kind: 'block', target: `Organization/${rng.pick(world.organizations)}` });
    // Masks of documents and of entries of the medical profile (docs/profile.md).
    const own = [...docs.filter((d) => d.patient === patient).map((d) => `DocumentReference/${d.id}`), ...observations.filter((o) => o.patient === patient).map((o) => `Observation/${o.id}`)];
    for (const d of own) if (rng.chance(0.25)) consent({ patient, kind: 'mask', target: d }, rng.chance(0.2) ? rng.pick(own) : undefined);
    if (rng.chance(0.3)) consent({ patient, kind: 'emergency-off' });
  }
  // New versions of some documents, after the consents: a new description, sometimes a new type.
  for (const d of docs) {
    if (!rng.chance(0.3)) continue;
    const list = world.versions.get(`DocumentReference/${d.id}`) as Resource[];
    const previous = list[list.length - 1] as Resource & Record<string, unknown>;
    write({ ...previous, description: `version ${list.length + 1}`, ...(rng.chance(0.5) ? { type: { coding: [randomType(rng)] } } : {}), ...(rng.chance(0.2) ? { status: 'entered-in-error' } : {}) } as Resource);
  }
  return world;
}

// ------------------------------------------------------------------------------------------------
// Who reads, and what the rules let them see (re-derived from the rules, not from src/policy)

type Reader =
  | { kind: 'practitioner'; pro: Professional; purpose: 'TREAT' | 'ETREAT' }
  | { kind: 'patient'; patient: string }
  | { kind: 'representative'; id: string; patients: string[] }
  | { kind: 'system'; client: string }
  | { kind: 'organisation'; role: string; organization: string };

const LOADER = 'loader';

function label(reader: Reader): string {
  switch (reader.kind) {
    case 'practitioner':
      return `practitioner ${reader.pro.id} (profession ${reader.pro.profession}${reader.pro.specialty ? `/${reader.pro.specialty}` : ''}, ${reader.pro.organization ?? 'no organisation'}, ${reader.purpose})`;
    case 'patient':
      return `patient ${reader.patient}`;
    case 'representative':
      return `representative ${reader.id} of ${reader.patients.join(', ')}`;
    case 'system':
      return `vendor system ${reader.client}`;
    case 'organisation':
      return `${reader.role} ${reader.organization}`;
  }
}

function testActor(reader: Reader): TestActor {
  switch (reader.kind) {
    case 'practitioner':
      return {
        kind: 'practitioner',
        practitioner: reader.pro.id,
        profession: reader.pro.profession,
        purpose: reader.purpose,
        ...(reader.pro.specialty ? { specialty: reader.pro.specialty } : {}),
        ...(reader.pro.organization ? { organization: reader.pro.organization } : {}),
      };
    case 'patient':
      return { kind: 'patient', patient: reader.patient };
    case 'representative':
      return { kind: 'representative', relatedPerson: reader.id, patients: reader.patients };
    case 'system':
      return { kind: 'system', client: reader.client };
    case 'organisation':
      return { kind: 'organisation', role: reader.role, organization: reader.organization };
  }
}

const DIRECTORY = new Set(['Practitioner', 'Organization']);

class Rules {
  constructor(private readonly world: World) {}

  current(key: string): Resource | undefined {
    const list = this.world.versions.get(key);
    return list?.[list.length - 1];
  }

  all(type: string): Resource[] {
    return [...this.world.versions.keys()].filter((k) => k.startsWith(`${type}/`)).map((k) => this.current(k) as Resource);
  }

  /** The patient whose record a resource belongs to. */
  patientOf(r: Resource): string | undefined {
    const ref = (field: string) => (r as unknown as Record<string, { reference?: string } | undefined>)[field]?.reference;
    switch (r.resourceType) {
      case 'Patient':
        return r.id;
      case 'DocumentReference':
      case 'Observation':
      case 'Communication':
        return idFrom(ref('subject'), 'Patient');
      case 'Consent':
        return idFrom(ref('patient'), 'Patient');
      default:
        return undefined;
    }
  }

  authors(r: Resource): string[] {
    return r.resourceType === 'DocumentReference' ? ((r as Resource & { author?: { reference?: string }[] }).author ?? []).map((a) => a.reference ?? '') : [];
  }

  /** The people a message names: its sender and recipients. */
  participants(r: Resource): string[] {
    const m = r as Resource & { sender?: { reference?: string }; recipient?: { reference?: string }[] };
    return [m.sender?.reference ?? '', ...(m.recipient ?? []).map((x) => x.reference ?? '')];
  }

  /** The patient compartment (R4): Patient itself; DocumentReference subject or author; Observation subject or performer; Consent patient; Communication subject, sender or recipient. */
  inCompartment(r: Resource, patients: string[]): boolean {
    const refs: string[] = [];
    const any = r as Resource & Record<string, unknown>;
    const ref = (v: unknown) => (v as { reference?: string } | undefined)?.reference;
    switch (r.resourceType) {
      case 'Patient':
        return patients.includes(r.id as string);
      case 'DocumentReference':
        refs.push(ref(any.subject) ?? '', ...this.authors(r));
        break;
      case 'Observation':
        refs.push(ref(any.subject) ?? '', ...((any.performer as unknown[] | undefined) ?? []).map((p) => ref(p) ?? ''));
        break;
      case 'Consent':
        refs.push(ref(any.patient) ?? '');
        break;
      case 'Communication':
        refs.push(ref(any.subject) ?? '', ...this.participants(r));
        break;
      default:
        return false;
    }
    return refs.some((x) => patients.some((p) => x === `Patient/${p}`));
  }

  labelled(r: Resource): boolean {
    return (r.meta?.security ?? []).some((s) => s.system === CONFIDENTIAL.system && s.code === CONFIDENTIAL.code);
  }

  activeConsents(patient: string): ConsentFacts[] {
    return [...this.world.consents.values()].filter((c) => c.patient === patient && c.active);
  }

  /** May `reader` (never an organisation: those are refused outright) read this version of a resource? */
  allowed(reader: Reader, r: Resource): boolean {
    if (reader.kind === 'organisation') return false;
    // The directory of professionals and organisations is no patient's data.
    if (DIRECTORY.has(r.resourceType)) return true;
    switch (reader.kind) {
      case 'system':
        // Vendor systems read back only what they created (the loader: everything but the
        // Consents, which their patients wrote).
        return this.world.creators.get(keyOf(r)) === `client:${reader.client}`;
      case 'patient':
        return this.inCompartment(r, [reader.patient]);
      case 'representative':
        return this.inCompartment(r, reader.patients) && !this.labelled(r);
      case 'practitioner':
        return this.practitionerMayRead(reader, r);
    }
  }

  private practitionerMayRead(reader: Extract<Reader, { kind: 'practitioner' }>, r: Resource): boolean {
    const me = reader.pro.id;
    if (r.resourceType === 'AuditEvent') return false;
    if (r.resourceType === 'Consent') {
      // Only an active permit naming them.
      return [...this.world.consents.values()].some((f) => f.id === r.id && f.active && f.kind === 'permit' && f.target === me);
    }
    const patientId = this.patientOf(r);
    if (r.resourceType === 'Communication') {
      // Messages: the professionals they name as sender or recipient, who enter the record as a
      // document's author does (no relationship needed; never blocked, the account open).
      if (!this.participants(r).includes(`Practitioner/${me}`)) return false;
      return patientId === undefined || this.entersRecord(reader, patientId, true);
    }
    if (patientId === undefined) return true;
    const choices = this.activeConsents(patientId);
    const isDocument = r.resourceType === 'DocumentReference';
    const author = isDocument && this.authors(r).includes(`Practitioner/${me}`);
    if (!this.entersRecord(reader, patientId, author)) return false;
    // The medical profile (docs/profile.md): the matrix by resource type, and the patient's masks.
    if (r.resourceType === 'Observation') {
      if (!mayRead(reader.pro.profession, reader.pro.specialty, { resourceType: r.resourceType })) return false;
      if (choices.some((c) => c.kind === 'mask' && c.target === keyOf(r))) return false;
    }
    if (isDocument && !author) {
      const doc = r as Resource & { status?: string; type?: { coding?: Coding[] }; category?: { coding?: Coding[] }[] };
      // Retracted by its author (docs/mhd.md): gone from other professionals' view.
      if (doc.status === 'entered-in-error') return false;
      const authors = this.authors(r);
      const facts = {
        types: doc.type?.coding ?? [],
        classes: (doc.category ?? []).flatMap((c) => c.coding ?? []),
        authoredByPatient: authors.length > 0 && authors.every((a) => /^(Patient|RelatedPerson)\//.test(a)),
      };
      if (!mayRead(reader.pro.profession, reader.pro.specialty, facts)) return false;
      if (choices.some((c) => c.kind === 'mask' && c.target === keyOf(r))) return false;
    }
    return true;
  }

  /**
   * Whether a professional may enter a patient's record: general practitioner, an active permit,
   * emergency access the patient did not turn off (or, for reading, being the document's author);
   * never when blocked, nor when the account is closed.
   */
  entersRecord(reader: Extract<Reader, { kind: 'practitioner' }>, patientId: string, author = false): boolean {
    const me = reader.pro.id;
    const patient = this.current(`Patient/${patientId}`) as (Resource & { active?: boolean; generalPractitioner?: { reference?: string }[] }) | undefined;
    const choices = this.activeConsents(patientId);
    const gp = (patient?.generalPractitioner ?? []).some((g) => g.reference === `Practitioner/${me}`);
    const permitted = choices.some((c) => c.kind === 'permit' && c.target === me);
    const emergency = reader.purpose === 'ETREAT' && !choices.some((c) => c.kind === 'emergency-off');
    // A record whose Patient was deleted is no one's to enter.
    if (!patient) return false;
    if (!gp && !permitted && !author && !emergency) return false;
    const blocked = choices.some((c) => c.kind === 'block' && (c.target === `Practitioner/${me}` || (reader.pro.organization !== undefined && c.target === `Organization/${reader.pro.organization}`)));
    return !blocked && patient?.active !== false;
  }

  /** Current resources of `type` the reader may see. */
  visible(reader: Reader, type: string): Resource[] {
    return this.all(type).filter((r) => this.allowed(reader, r));
  }
}

// ------------------------------------------------------------------------------------------------
// HTTP

class Client {
  readonly headers: (actor: TestActor, scope?: string) => Promise<Record<string, string>>;
  readonly app: TestServer['app'];
  constructor(private readonly server: TestServer) {
    this.headers = authorizationFor(server);
    this.app = server.app;
  }

  /** Headers for writing: representatives get write scopes; only the loader feeds the directory. */
  async writer(reader: Reader): Promise<Record<string, string>> {
    const scope = reader.kind === 'representative' ? 'patient/*.cruds' : reader.kind === 'system' && reader.client !== LOADER ? 'system/*.cruds' : undefined;
    return this.headers(testActor(reader), scope);
  }

  async get(actor: TestActor, url: string) {
    return fhir(this.server.app, 'GET', url, undefined, await this.headers(actor));
  }

  async put(actor: TestActor, r: Resource) {
    const res = await fhir(this.server.app, 'PUT', `${r.resourceType}/${r.id}`, r, await this.headers(actor));
    if (res.statusCode >= 300) throw new Error(`PUT ${keyOf(r)}: ${res.statusCode} ${res.body}`);
  }
}

interface Page {
  status: number;
  matches: string[];
  includes: string[];
  total?: number;
  next?: string;
  body: string;
}

function entriesOf(bundle: Bundle, mode: 'match' | 'include'): string[] {
  return (bundle.entry ?? []).filter((e: BundleEntry) => e.search?.mode === mode).map((e) => keyOf(e.resource as Resource));
}

async function searchPage(client: Client, actor: TestActor, url: string): Promise<Page> {
  const res = await client.get(actor, url);
  if (res.statusCode !== 200) return { status: res.statusCode, matches: [], includes: [], body: res.body };
  const bundle = json<Bundle>(res);
  const next = bundle.link?.find((l) => l.relation === 'next')?.url;
  return {
    status: 200,
    matches: entriesOf(bundle, 'match'),
    includes: entriesOf(bundle, 'include'),
    ...(bundle.total !== undefined ? { total: bundle.total } : {}),
    ...(next ? { next: next.startsWith(BASE) ? `/fhir${next.slice(BASE.length)}` : next } : {}),
    body: res.body,
  };
}

const sorted = (xs: Iterable<string>) => [...xs].sort();

// ------------------------------------------------------------------------------------------------
// The property

interface Expectation {
  url: string;
  matches: string[];
  includes?: string[];
}

function searches(world: World, rules: Rules, reader: Reader): Expectation[] {
  const keys = (rs: Resource[]) => rs.map(keyOf);
  const visible = (type: string) => rules.visible(reader, type);
  const docs = visible('DocumentReference');
  const patients = rules.all('Patient');
  const visiblePatients = new Set(keys(visible('Patient')));
  const out: Expectation[] = [
    { url: 'DocumentReference?_count=100', matches: keys(docs) },
    { url: 'Observation?_count=100', matches: keys(visible('Observation')) },
    { url: 'Patient?_count=100', matches: [...visiblePatients] },
    { url: 'Consent?_count=100', matches: keys(visible('Consent')) },
    { url: 'Communication?_count=100', matches: keys(visible('Communication')) },
    { url: 'Practitioner?_count=100', matches: keys(visible('Practitioner')) },
    { url: 'Organization?_count=100', matches: keys(visible('Organization')) },
  ];
  // Includes: the targets of the matched documents' subject and author, that the reader may see.
  const includeTargets = (matched: Resource[]) => {
    const refs = new Set(matched.flatMap((d) => [(d as Resource & { subject?: { reference?: string } }).subject?.reference ?? '', ...rules.authors(d)]));
    const targets = [...refs].map((ref) => rules.current(ref)).filter((r): r is Resource => r !== undefined && rules.allowed(reader, r));
    const matchedKeys = new Set(keys(matched));
    return keys(targets).filter((k) => !matchedKeys.has(k));
  };
  for (const patient of patients) {
    const id = patient.id as string;
    const family = ((patient as Resource & { name?: { family?: string }[] }).name ?? [])[0]?.family as string;
    const ofPatient = docs.filter((d) => rules.patientOf(d) === id);
    out.push({ url: `DocumentReference?patient=${id}&_count=100`, matches: keys(ofPatient) });
    out.push({ url: `Observation?subject=Patient/${id}&_count=100`, matches: keys(visible('Observation').filter((o) => rules.patientOf(o) === id)) });
    out.push({ url: `Consent?patient=${id}&_count=100`, matches: keys(visible('Consent').filter((c) => rules.patientOf(c) === id)) });
    out.push({ url: `Communication?patient=${id}&_count=100`, matches: keys(visible('Communication').filter((c) => rules.patientOf(c) === id)) });
    out.push({ url: `Communication?recipient=Patient/${id}&_count=100`, matches: keys(visible('Communication').filter((c) => rules.participants(c).slice(1).includes(`Patient/${id}`))) });
    out.push({
      url: `DocumentReference?patient=${id}&_include=DocumentReference:subject&_include=DocumentReference:author&_count=100`,
      matches: keys(ofPatient),
      includes: includeTargets(ofPatient),
    });
    // Chains only go through what the reader may see: the patient must be visible too.
    const patientVisible = visiblePatients.has(`Patient/${id}`);
    if (family !== undefined) {
      out.push({ url: `Observation?patient.name=${family}&_count=100`, matches: patientVisible ? keys(visible('Observation').filter((o) => rules.patientOf(o) === id)) : [] });
      out.push({ url: `DocumentReference?subject:Patient.name=${family}&_count=100`, matches: patientVisible ? keys(ofPatient) : [] });
    }
    // _has on the directory: what it reveals of a patient must be visible to the reader.
    const gps = ((patient as Resource & { generalPractitioner?: { reference?: string }[] }).generalPractitioner ?? []).map((g) => g.reference as string);
    out.push({ url: `Practitioner?_has:Patient:general-practitioner:_id=${id}&_count=100`, matches: patientVisible ? gps : [] });
    out.push({
      url: `Practitioner?_has:DocumentReference:author:patient=${id}&_count=100`,
      matches: [...new Set(ofPatient.flatMap((d) => rules.authors(d)).filter((a) => a.startsWith('Practitioner/')))],
    });
  }
  out.push({
    url: 'Patient?_count=100&_revinclude=DocumentReference:subject&_revinclude=Consent:patient',
    matches: [...visiblePatients],
    includes: keys([...docs, ...visible('Consent')].filter((r) => visiblePatients.has(`Patient/${rules.patientOf(r)}`))),
  });
  // Token criteria with a system, and with the code alone (any system: none, LOINC's OID...).
  const typed = (code: string, system?: string) =>
    docs.filter((d) => ((d as Resource & { type?: { coding?: Coding[] } }).type?.coding ?? []).some((c) => c.code === code && (system === undefined || c.system === system)));
  for (const code of [PRESCRIPTION, DISCHARGE]) {
    for (const system of [LOINC, undefined]) {
      const token = system ? `${system}|${code}` : code;
      const withType = new Set(typed(code, system).map((d) => rules.patientOf(d)));
      out.push({ url: `DocumentReference?type=${token}&_count=100`, matches: keys(typed(code, system)) });
      out.push({ url: `Patient?_has:DocumentReference:subject:type=${token}&_count=100`, matches: [...visiblePatients].filter((k) => withType.has(k.slice('Patient/'.length))) });
    }
  }
  return out;
}

async function checkReader(t: Test, client: Client, world: World, rules: Rules, reader: Reader): Promise<void> {
  const actor = testActor(reader);
  const who = label(reader);

  if (reader.kind === 'organisation') {
    // Organisation roles read nothing: refused, visibly.
    const urls = ['DocumentReference?_count=100', 'DocumentReference?_summary=count', 'Patient?_count=100', 'Practitioner?_count=100', 'AuditEvent?_count=10'];
    for (const key of world.versions.keys()) urls.push(key);
    for (const url of urls) t.equal((await client.get(actor, url)).statusCode, 403, `${who}: GET ${url} is 403`);
    return;
  }

  // Reads: current versions, every version, every history.
  for (const [key, versions] of world.versions) {
    const current = versions[versions.length - 1];
    const allowed = rules.allowed(reader, current);
    const read = await client.get(actor, key);
    t.equal(read.statusCode, allowed ? 200 : 404, `${who}: GET ${key}`);
    if (read.statusCode === 200 && allowed) t.equal(json(read).id, current.id, `${who}: GET ${key} answers it`);
    if (current.resourceType !== 'DocumentReference') continue;
    for (let v = 1; v <= versions.length; v++) {
      const vAllowed = rules.allowed(reader, versions[v - 1]);
      t.equal((await client.get(actor, `${key}/_history/${v}`)).statusCode, vAllowed ? 200 : 404, `${who}: GET ${key}/_history/${v}`);
    }
    const history = await client.get(actor, `${key}/_history`);
    t.equal(history.statusCode, allowed ? 200 : 404, `${who}: GET ${key}/_history`);
    if (history.statusCode === 200) {
      const shown = (json<Bundle>(history).entry ?? []).map((e) => e.resource?.meta?.versionId);
      // Each version shown must be one the rules let this reader see, and each of those is shown.
      const expected = versions.map((r, i) => (rules.allowed(reader, r) ? String(i + 1) : undefined)).filter((v): v is string => v !== undefined);
      t.same(sorted(shown.map(String)), sorted(expected), `${who}: GET ${key}/_history shows exactly the versions the rules allow`);
    }
  }
  t.equal((await client.get(actor, 'DocumentReference/no-such-document')).statusCode, 404, `${who}: a missing document is 404 too`);

  // Searches: exactly the allowed set, with the right total.
  for (const expectation of searches(world, rules, reader)) {
    const page = await searchPage(client, actor, expectation.url);
    if (page.status !== 200) {
      t.fail(`${who}: GET ${expectation.url} answered ${page.status}: ${page.body}`);
      continue;
    }
    t.same(sorted(page.matches), sorted(expectation.matches), `${who}: GET ${expectation.url} matches exactly the allowed set`);
    t.equal(page.total, expectation.matches.length, `${who}: GET ${expectation.url} total counts the allowed matches only`);
    if (expectation.includes) t.same(sorted(page.includes), sorted(expectation.includes), `${who}: GET ${expectation.url} includes exactly the allowed targets`);
  }

  // _summary=count: the total alone.
  const docs = rules.visible(reader, 'DocumentReference').map(keyOf);
  const counted = await searchPage(client, actor, 'DocumentReference?_summary=count');
  t.equal(counted.total, docs.length, `${who}: DocumentReference?_summary=count`);
  t.same(counted.matches, [], `${who}: _summary=count carries no entries`);

  // Paging with small pages: each allowed match exactly once, whatever the page size.
  for (const [type, size] of [['DocumentReference', 3], ['Observation', 2], ['Patient', 2]] as const) {
    const expected: string[] = rules.visible(reader, type).map(keyOf);
    const seen: string[] = [];
    let url: string | undefined = `${type}?_count=${size}`;
    let pages = 0;
    let firstTotal: number | undefined;
    while (url !== undefined && pages < 100) {
      const page = await searchPage(client, actor, url);
      if (page.status !== 200) {
        t.fail(`${who}: paging ${type}: ${url} answered ${page.status}: ${page.body}`);
        break;
      }
      if (pages === 0) firstTotal = page.total;
      t.ok(page.matches.length <= size, `${who}: page ${pages + 1} of ${type} holds at most ${size}`);
      seen.push(...page.matches);
      url = page.next;
      pages++;
    }
    t.equal(seen.length, new Set(seen).size, `${who}: paging ${type} by ${size} never repeats a match`);
    t.same(sorted(seen), sorted(expected), `${who}: paging ${type} by ${size} yields each allowed match once`);
    t.equal(firstTotal, expected.length, `${who}: paging ${type}: the total`);
  }

  // AuditEvents: professionals and vendor systems read none; a patient's own log names them.
  if (reader.kind === 'practitioner' || reader.kind === 'system') {
    t.equal((await searchPage(client, actor, 'AuditEvent?_summary=count')).total, 0, `${who}: reads no AuditEvent`);
    const someone = rules.all('Patient')[0].id;
    t.equal((await searchPage(client, actor, `AuditEvent?patient=${someone}&_count=10`)).total, 0, `${who}: reads no AuditEvent of ${someone}`);
  }
  if (reader.kind === 'patient') {
    const page = await client.get(actor, 'AuditEvent?_count=20&_sort=-date');
    t.equal(page.statusCode, 200, `${who}: reads their access log`);
    type Event = Resource & { entity?: { what?: { reference?: string } }[]; agent?: { who?: { reference?: string } }[] };
    const events = (json<Bundle>(page).entry ?? []).map((e) => e.resource as Event);
    const me = `Patient/${reader.patient}`;
    t.ok(events.length > 0, `${who}: their access log is not empty`);
    // Their compartment: events about their record, and their own requests (they are the agent).
    t.ok(
      events.every((e) => (e.entity ?? []).some((x) => x.what?.reference === me) || (e.agent ?? []).some((a) => a.who?.reference === me)),
      `${who}: every AuditEvent they read is about them or by them`,
    );
  }
}

// ------------------------------------------------------------------------------------------------
// Writes: random actors make random writes; each is judged by the write table of docs/consent.md,
// re-derived here, and a write the model forbids must leave the store as it was. A write on a
// resource the actor cannot see must answer exactly as the same write on one that does not exist.

type Verdict = 'ok' | 403 | 404 | 422;
type WriteKind = 'create' | 'update' | 'patch' | 'delete';

interface Attempt {
  reader: Reader;
  kind: WriteKind;
  type: string;
  /** The target's Type/id (update, patch, delete). */
  key?: string;
  /** The new content (create, update, patch result). */
  after?: Resource;
  /** The JSON Patch of a patch. */
  patch?: { op: string; path: string; value?: unknown }[];
  what: string;
}

const INS = 'urn:oid:1.2.250.1.213.1.4.8';

function creatorOf(reader: Reader): string {
  switch (reader.kind) {
    case 'patient':
      return `patient:${reader.patient}`;
    case 'representative':
      return `related-person:${reader.id}`;
    case 'practitioner':
      return `practitioner:${reader.pro.id}`;
    case 'system':
      return `client:${reader.client}`;
    case 'organisation':
      return `organization:${reader.organization}`;
  }
}

const patientSide = (reader: Reader): reader is Extract<Reader, { kind: 'patient' | 'representative' }> => reader.kind === 'patient' || reader.kind === 'representative';
const patientsOf = (reader: Reader): string[] => (reader.kind === 'patient' ? [reader.patient] : reader.kind === 'representative' ? reader.patients : []);
const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** The write table of docs/consent.md, for one attempt. */
function writeVerdict(rules: Rules, world: World, a: Attempt): Verdict {
  const { reader } = a;
  if (reader.kind === 'organisation') return 403;
  const before = a.key ? rules.current(a.key) : undefined;
  const creator = a.key ? world.creators.get(a.key) : undefined;
  if (before && !rules.allowed(reader, before)) {
    // A system's PUT to an id it cannot see answers as its create would (404 when it could).
    if (reader.kind === 'system' && a.kind === 'update') {
      const create = writeVerdict(rules, world, { ...a, kind: 'create', key: undefined });
      return create === 'ok' ? 404 : create;
    }
    return 404;
  }
  if (a.type === 'AuditEvent') return 403;
  if (a.after && patientSide(reader) && a.type !== 'Practitioner' && a.type !== 'Organization' && !rules.inCompartment(a.after, patientsOf(reader))) return 403;
  const action = a.kind === 'create' ? 'create' : a.kind === 'delete' ? 'delete' : 'update';
  if (a.type === 'Practitioner' || a.type === 'Organization') return reader.kind === 'system' && reader.client === LOADER ? 'ok' : 403;
  if (a.type === 'Consent') {
    if (patientSide(reader)) return a.after && (!enforceable(a.after) || !ownMasks(rules, a.after)) ? 422 : 'ok';
    if (reader.kind !== 'practitioner' || action !== 'create') return 403;
    if (!enforceable(a.after as Resource)) return 422;
    const facts = consentFacts(a.after as Resource);
    if (!(facts.kind === 'permit' && facts.targets.length === 1 && facts.targets[0] === reader.pro.id)) return 403;
    const patientId = facts.patient;
    if (!rules.current(`Patient/${patientId}`)) return 404;
    const blocked = rules.activeConsents(patientId).some((c) => c.kind === 'block' && (c.target === `Practitioner/${reader.pro.id}` || (reader.pro.organization !== undefined && c.target === `Organization/${reader.pro.organization}`)));
    if (blocked || (rules.current(`Patient/${patientId}`) as { active?: boolean }).active === false) return 404;
    return 'ok';
  }
  if (a.type === 'Patient') {
    if (action === 'create') return reader.kind === 'system' ? 'ok' : 403;
    const mine = reader.kind === 'system' && creator === creatorOf(reader);
    if (action === 'delete') return mine ? 'ok' : 403;
    if (!mine && !patientSide(reader)) return 403;
    const b = before as unknown as Record<string, unknown>;
    const n = a.after as unknown as Record<string, unknown>;
    const fixed = mine ? ['generalPractitioner'] : ['identifier'];
    // The account (here `active`: these Patients predate the account extension) changes through its operations alone.
    const accountChanged = (b.active === false) !== (n.active === false);
    return accountChanged || fixed.some((e) => !same(b[e], n[e])) ? 403 : 'ok';
  }
  // The record's content: nothing is written into a closed account but by a professional, who learns nothing (below).
  if (a.after && reader.kind !== 'practitioner') {
    const patientId = rules.patientOf(a.after);
    if (patientId !== undefined && (rules.current(`Patient/${patientId}`) as { active?: boolean } | undefined)?.active === false) return 403;
  }
  if (action === 'create') {
    if (reader.kind === 'system') return 'ok';
    if (patientSide(reader)) return a.type === 'DocumentReference' && !authoredByPatientSide(rules.authors(a.after as Resource)) ? 403 : 'ok';
    if (reader.kind === 'practitioner') {
      const patientId = rules.patientOf(a.after as Resource);
      return patientId === undefined || rules.entersRecord(reader, patientId) ? 'ok' : 404;
    }
    return 403;
  }
  const b = before as Resource;
  const author =
    creator === creatorOf(reader) ||
    (reader.kind === 'practitioner' && b.resourceType === 'DocumentReference' && rules.authors(b).includes(`Practitioner/${reader.pro.id}`)) ||
    (patientSide(reader) && (b.resourceType === 'DocumentReference' ? authoredByPatientSide(rules.authors(b)) : creator?.startsWith('patient:') === true || creator?.startsWith('related-person:') === true));
  if (!author) return 403;
  if (a.after && rules.patientOf(a.after) !== rules.patientOf(b)) return 403;
  if (a.after && b.resourceType === 'DocumentReference' && !same(rules.authors(b), rules.authors(a.after))) return 403;
  if (reader.kind === 'practitioner') {
    const patientId = rules.patientOf(b);
    if (patientId !== undefined && !rules.entersRecord(reader, patientId, b.resourceType === 'DocumentReference' && rules.authors(b).includes(`Practitioner/${reader.pro.id}`))) return 404;
  }
  return 'ok';
}

/** A mask names documents of its own patient's record only (others: 422). */
function ownMasks(rules: Rules, consent: Resource): boolean {
  const facts = consentFacts(consent);
  if ((consent as { status?: string }).status !== 'active' || facts.kind !== 'mask') return true;
  return facts.targets.every((key) => {
    const target = rules.current(key);
    return target !== undefined && rules.patientOf(target) === facts.patient;
  });
}

function authoredByPatientSide(authors: string[]): boolean {
  return authors.length > 0 && authors.every((a) => /^(Patient|RelatedPerson)\//.test(a));
}

/** Whether now is within the Consent's provision.period (dates: the whole day counts). */
function periodNow(r: Resource): boolean {
  const period = (r as { provision?: { period?: { start?: string; end?: string } } }).provision?.period;
  const now = Date.now();
  return (period?.start === undefined || Date.parse(period.start) <= now) && (period?.end === undefined || Date.parse(period.end) + 86_400_000 > now);
}

/** A Consent of one of the four shapes, possibly naming several actors or documents, or not (nested). */
function enforceable(r: Resource): boolean {
  const c = r as Resource & { status?: string; provision?: { provision?: unknown[] } };
  return c.status !== 'active' || c.provision?.provision === undefined;
}

function consentFacts(r: Resource): { patient: string; kind: ConsentKind; targets: string[] } {
  const c = r as Resource & { patient?: { reference?: string }; provision?: { type?: string; actor?: { reference?: { reference?: string } }[]; data?: { reference?: { reference?: string } }[]; purpose?: unknown[] } };
  const patient = idFrom(c.patient?.reference, 'Patient') as string;
  const actors = (c.provision?.actor ?? []).map((x) => x.reference?.reference ?? '');
  if (c.provision?.type === 'permit') return { patient, kind: 'permit', targets: actors.map((x) => x.replace('Practitioner/', '')) };
  if ((c.provision?.data ?? []).length > 0) return { patient, kind: 'mask', targets: (c.provision?.data ?? []).map((d) => d.reference?.reference ?? '') };
  if (actors.length > 0) return { patient, kind: 'block', targets: actors };
  return { patient, kind: 'emergency-off', targets: [] };
}

/** Records an applied write in the model world. */
function apply(world: World, a: Attempt, id: string, stored?: Resource): void {
  if (stored?.meta?.versionId !== undefined && a.after) a = { ...a, after: { ...a.after, meta: { ...(a.after.meta ?? {}), versionId: stored.meta.versionId } } as Resource };
  const key = `${a.type}/${id}`;
  if (a.kind === 'delete') {
    world.versions.delete(key);
    // Every fact of a deleted Consent (one per actor or document it named).
    if (a.type === 'Consent') for (const [cid, facts] of world.consents) if (facts.id === id) world.consents.delete(cid);
    return;
  }
  const resource = { ...(a.after as Resource), id } as Resource;
  const list = world.versions.get(key) ?? [];
  // An update that changes nothing makes no version: the server's versionId says which it is.
  const versionId = Number(resource.meta?.versionId ?? list.length + 1);
  list[versionId - 1] = resource;
  world.versions.set(key, list);
  if (!world.creators.has(key)) world.creators.set(key, creatorOf(a.reader));
  if (a.type === 'Consent') {
    // Each actor or document of a Consent is its own fact (the model's one-target facts).
    for (const [cid] of world.consents) if (cid === id || cid.startsWith(`${id}#`)) world.consents.delete(cid);
    const facts = consentFacts(resource);
    const active = (resource as { status?: string }).status === 'active' && enforceable(resource) && periodNow(resource);
    const targets = facts.targets.length > 0 ? facts.targets : [undefined];
    targets.forEach((target, i) => world.consents.set(i === 0 ? id : `${id}#${i}`, { id, patient: facts.patient, kind: facts.kind, ...(target !== undefined ? { target } : {}), active }));
  }
}

function randomAttempt(rng: Rng, world: World, rules: Rules, readers: Reader[]): Attempt {
  const reader = rng.pick(readers);
  const patients = rules.all('Patient').map((p) => p.id as string);
  const patient = rng.pick(patients.length > 0 ? patients : ['pt-0']);
  const me = reader.kind === 'practitioner' ? reader.pro.id : rng.pick(world.professionals).id;
  const own = patientSide(reader) && rng.chance(0.7) ? rng.pick(patientsOf(reader)) : patient;
  const r = rng.float();
  if (r < 0.32) {
    const choice = rng.int(0, 6);
    const docAuthor = rng.pick([`Practitioner/${me}`, `Patient/${own}`, `Organization/${rng.pick(world.organizations)}`]);
    const after: Resource[] = [
      { resourceType: 'Observation', status: 'final', code: { text: 'probe' }, subject: { reference: `Patient/${own}` } } as Resource,
      { resourceType: 'DocumentReference', status: 'current', type: { coding: [randomType(rng)] }, subject: { reference: `Patient/${own}` }, author: [{ reference: docAuthor }], content: [{ attachment: { contentType: 'application/pdf', url: 'Binary/x' } }] } as Resource,
      rng.pick([permit('x', own, me), block('x', own, `Practitioner/${rng.pick(world.professionals).id}`), mask('x', own, keyOf(rng.pick([...rules.all('DocumentReference'), ...rules.all('Observation')]))), emergencyOff('x', own)]) as Resource,
      { ...permit('x', own, me), provision: { ...permit('x', own, me).provision, provision: [{ type: 'deny' }] } } as Resource,
      { resourceType: 'Patient', identifier: [{ system: INS, value: String(rng.int(1e14, 9e14)) }] } as Resource,
      { resourceType: 'Practitioner', name: [{ family: 'Nouveau' }] } as Resource,
      { resourceType: 'AuditEvent', type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' }, recorded: '2026-01-01T00:00:00Z', agent: [{ who: { reference: `Practitioner/${me}` }, requestor: true }], source: { observer: { display: 'x' } }, entity: [{ what: { reference: `Patient/${own}` } }] } as Resource,
    ];
    const body = { ...after[choice] } as Resource & { id?: string };
    delete body.id;
    return { reader, kind: 'create', type: body.resourceType, after: body, what: `POST ${body.resourceType}` };
  }
  // Messages have write rules of their own (test/policy/messaging.test.ts, test/messaging/).
  const keys = [...world.versions.keys()].filter((k) => !k.startsWith('AuditEvent/') && !k.startsWith('Communication/'));
  const key = rng.pick(keys);
  const current = rules.current(key) as Resource & Record<string, unknown>;
  const type = current.resourceType;
  const kind: WriteKind = rng.pick(['update', 'patch', 'patch', 'delete']);
  if (kind === 'delete') return { reader, kind, type, key, what: `DELETE ${key}` };
  // One element changed, among those the rules are about.
  const changes: [string, unknown][] = [];
  switch (type) {
    case 'Patient':
      changes.push(['generalPractitioner', [{ reference: `Practitioner/${me}` }]], ['active', !(current.active ?? true)], ['identifier', [{ system: INS, value: '999' }]], ['name', [{ family: 'Changé' }]]);
      break;
    case 'DocumentReference':
      changes.push(['status', 'entered-in-error'], ['author', [{ reference: `Patient/${rules.patientOf(current)}` }]], ['description', 'changed'], ['subject', { reference: `Patient/${patient}` }]);
      break;
    case 'Observation':
      changes.push(['valueQuantity', { value: 1, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' }], ['subject', { reference: `Patient/${patient}` }]);
      break;
    case 'Consent':
      changes.push(['status', current.status === 'active' ? 'inactive' : 'active']);
      break;
    case 'Organization':
      changes.push(['name', 'Changée']);
      break;
    default:
      changes.push(['name', [{ family: 'Changé' }]]);
  }
  const [element, value] = rng.pick(changes);
  const { meta: _meta, ...content } = current;
  const after = { ...content, [element]: value } as Resource;
  const patch = [{ op: element in current ? 'replace' : 'add', path: `/${element}`, value }];
  return { reader, kind, type, key, after, ...(kind === 'patch' ? { patch } : {}), what: `${kind.toUpperCase()} ${key} ${element}` };
}

async function send(client: Client, a: Attempt, id?: string) {
  const headers = await client.writer(a.reader);
  const target = id ?? (a.key ? a.key.split('/')[1] : undefined);
  switch (a.kind) {
    case 'create':
      return fhir(client.app, 'POST', a.type, a.after, headers);
    case 'update':
      return fhir(client.app, 'PUT', `${a.type}/${target}`, { ...(a.after as Resource), id: target }, headers);
    case 'patch':
      return fhir(client.app, 'PATCH', `${a.type}/${target}`, a.patch, { ...headers, 'content-type': 'application/json-patch+json' });
    case 'delete':
      return fhir(client.app, 'DELETE', `${a.type}/${target}`, undefined, headers);
  }
}

async function checkWrites(t: Test, server: TestServer, client: Client, world: World, rules: Rules, rng: Rng, readers: Reader[], count: number): Promise<void> {
  const stats = { ok: 0, refused: 0, hiddenAsMissing: 0 };
  for (let n = 0; n < count; n++) {
    const a = randomAttempt(rng, world, rules, readers);
    const who = `${label(a.reader)}: ${a.what}`;
    const verdict = writeVerdict(rules, world, a);
    const [type, id] = a.key ? a.key.split('/') : [a.type, undefined];
    const before = id !== undefined ? await server.store.read(type, id) : undefined;
    if (process.env.PROPERTY_TRACE && process.env.PROPERTY_TRACE.split(",").some((x) => (a.key ?? a.type) === x) && a.key) {
      const g = await client.get(testActor(a.reader), a.key);
      const c = await client.get({ kind: 'patient', patient: rules.patientOf(rules.current(a.key) as Resource) as string }, `Consent?patient=${rules.patientOf(rules.current(a.key) as Resource)}&_count=100`);
      t.comment(`before: GET ${a.key} -> ${g.statusCode}; consents ${(json<Bundle>(c).entry ?? []).map((e) => `${e.resource?.id}:${(e.resource as { status?: string }).status}:${JSON.stringify((e.resource as { provision?: unknown }).provision)}`).join(' | ')}`);
    }
    const res = await send(client, a);
    if (process.env.PROPERTY_TRACE && process.env.PROPERTY_TRACE.split(",").some((x) => (a.key ?? a.type) === x)) t.comment(`${who}: ${verdict} -> ${res.statusCode} ${res.body.slice(0, 400)} model: ${JSON.stringify(a.key ? rules.current(a.key) : a.after)} consents ${JSON.stringify([...world.consents.values()].filter((c) => a.key && c.patient === rules.patientOf(rules.current(a.key) as Resource)))}`);
    if (verdict === 'ok') {
      const expected = a.kind === 'create' ? 201 : 200;
      if (res.statusCode !== expected) {
        t.fail(`${who}: the rules allow it, the server answered ${res.statusCode} ${res.body.slice(0, 300)}`);
        continue;
      }
      stats.ok++;
      const newId = a.kind === 'create' ? (json(res).id as string) : (id as string);
      // A patch result is the server's: take it as the new version.
      apply(world, a.kind === 'patch' ? { ...a, after: json(res) as Resource } : a, newId, a.kind === 'delete' ? undefined : (json(res) as Resource));
      continue;
    }
    stats.refused++;
    // Forbidden: the status the rules give, and nothing written. A delete of what the caller
    // cannot see answers as a delete of nothing (R4: 200).
    const expected = a.kind === 'delete' && verdict === 404 ? 200 : verdict;
    const detail = res.statusCode === expected ? '' : ` (${res.body.slice(0, 300)}; the rules saw ${JSON.stringify(a.key ? rules.current(a.key) : a.after)?.slice(0, 600)}, created by ${a.key ? world.creators.get(a.key) : ''}; consents ${JSON.stringify([...world.consents.values()].filter((c) => a.key && c.patient === rules.patientOf(rules.current(a.key) as Resource)))})`;
    t.equal(res.statusCode, expected, `${who}: ${verdict}${detail}`);
    if (before) {
      const after = await server.store.read(type, id as string);
      t.equal(after.kind === 'missing' ? 0 : after.version.versionId, before.kind === 'missing' ? 0 : before.version.versionId, `${who}: nothing written`);
    }
    // A system choosing its own id (update-as-create) learns whether the id is in use when it
    // could create such a resource (docs/consent.md): that one case is not compared.
    const systemCreates = a.reader.kind === 'system' && a.kind === 'update' && writeVerdict(rules, world, { ...a, kind: 'create', key: undefined }) === 'ok';
    if (verdict === 404 && a.kind !== 'create' && !systemCreates) {
      // The same write on an id that does not exist: the same answer, word for word.
      const missing = `missing-${n}`;
      const other = await send(client, a, missing);
      t.equal(other.statusCode, res.statusCode, `${who}: the same status as on a missing id`);
      t.equal(other.body.replaceAll(missing, 'X'), res.body.replaceAll(id as string, 'X'), `${who}: the same body as on a missing id`);
      stats.hiddenAsMissing++;
    }
  }
  t.comment(`writes: ${stats.ok} allowed, ${stats.refused} refused, ${stats.hiddenAsMissing} hidden targets compared with missing ones`);
  t.ok(stats.ok > 0 && stats.refused > 0 && stats.hiddenAsMissing > 0, 'the attempts covered allowed, refused and hidden writes');
}

for (const seed of SEEDS) {
  t.test(`seed ${seed} (rerun with PROPERTY_SEEDS=${seed})`, async (t) => {
    const rng = new Rng(seed);
    const world = generate(rng);
    const rules = new Rules(world);
    const server = await testServer();
    t.teardown(() => server.close());
    const client = new Client(server);
    // The world as its authors wrote it: Consents by their patients, the rest by the loader.
    await seedWorld(server.store, world.writes, LOADER);
    const patients = rules.all('Patient').map((p) => p.id as string);
    t.comment(
      `seed ${seed}: ${world.professionals.length} professionals (${world.professionals.map((p) => `${p.id}:${p.profession}${p.specialty ? `/${p.specialty}` : ''}${p.organization ? `@${p.organization}` : ''}`).join(' ')}), ` +
        `${patients.length} patients, ${rules.all('DocumentReference').length} documents, ${rules.all('Observation').length} observations, ${rules.all('Communication').length} messages, ${world.consents.size} consents`,
    );

    const readers: Reader[] = [];
    for (const pro of world.professionals) for (const purpose of ['TREAT', 'ETREAT'] as const) readers.push({ kind: 'practitioner', pro, purpose });
    for (const patient of patients) readers.push({ kind: 'patient', patient });
    const shuffled = [...patients].sort(() => rng.float() - 0.5);
    readers.push({ kind: 'representative', id: 'rep-0', patients: [shuffled[0]] });
    readers.push({ kind: 'representative', id: 'rep-1', patients: [shuffled[1], shuffled[2]] });
    readers.push({ kind: 'system', client: LOADER });
    readers.push({ kind: 'system', client: 'other-vendor' });
    readers.push({ kind: 'organisation', role: rng.pick(['mandatory-insurer', 'complementary-insurer', 'employer', 'state']), organization: 'ins-0' });

    for (const reader of readers) {
      await t.test(label(reader), async (t) => {
        await checkReader(t, client, world, rules, reader);
      });
    }

    await t.test('random writes obey the write rules, and hidden targets answer as missing ones', async (t) => {
      await checkWrites(t, server, client, world, rules, rng, readers, WRITES);
    });
    // After the writes, reads and searches still agree with the rules, for some readers.
    for (const reader of [...readers].sort(() => rng.float() - 0.5).slice(0, 4)) {
      await t.test(`after the writes: ${label(reader)}`, async (t) => {
        await checkReader(t, client, world, rules, reader);
      });
    }
  });
}
