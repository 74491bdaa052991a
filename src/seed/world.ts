// seed: the dataset generator (issue 18): a deterministic, seeded world of patients, their GPs,
// consents, documents and access history, written through the storage port exactly as the server
// writes each interaction. Knows the port, search indexing, the audit record and the policy's
// stamps; knows nothing of HTTP. This file: the world itself, pure (no I/O, no clock): the same
// options and seed always give the same resources, in the same order.

import type { Consent, DocumentReference, Patient, Practitioner, PractitionerRole, Resource } from '@medplum/fhirtypes';
import type { Actor } from '../auth/actor.js';
import { DEVELOPMENT_ISSUER } from '../auth/context.js';
import { withAccount, type AccountState } from '../policy/account.js';

export const INS_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
const RPPS_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.1';
const LOINC = 'http://loinc.org';
const PROFESSION = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';

export interface WorldOptions {
  patients: number;
  documents: number;
  /** The PRNG seed: equal seeds give equal worlds. */
  seed: number;
  /** Professionals (GPs and others); default one per 50 patients, at least 4. */
  practitioners?: number;
  /** Documents of the first patient (the "heavy" record of the ITI-67 goal), taken from `documents`. */
  heavy?: number;
  /** Access-history records per document (reads, searches, refusals, log reads); default 0.5. */
  accessesPerDocument?: number;
  /** The pilot's shape: accounts in every state, most without documents (docs/performance.md). */
  pilot?: boolean;
  /** The instant the world's history ends (its last write); default 2026-11-30T00:00:00Z. */
  end?: string;
}

/** A document type of the mix: its LOINC code, display, share of documents and pushing vendor kind. */
export interface DocumentKind {
  code: string;
  display: string;
  share: number;
  vendor: 'lab' | 'hospital' | 'imaging' | 'pharmacy';
}

/** The real type mix: lab results first, then prescriptions, imaging, discharge reports (access-matrix categories). */
export const DOCUMENT_MIX: readonly DocumentKind[] = [
  { code: '11502-2', display: 'Laboratory report', share: 0.45, vendor: 'lab' },
  { code: '57833-6', display: 'Prescription for medication', share: 0.25, vendor: 'pharmacy' },
  { code: '18748-4', display: 'Diagnostic imaging study', share: 0.18, vendor: 'imaging' },
  { code: '18842-5', display: 'Discharge summary', share: 0.12, vendor: 'hospital' },
];

/** The vendor systems that push documents (ITI-65), each with its organisation. */
export const VENDORS: readonly { clientId: string; organizationId: string; kind: DocumentKind['vendor'] }[] = [
  { clientId: 'lab-biolor', organizationId: 'org-biolor', kind: 'lab' },
  { clientId: 'lab-cerballiance', organizationId: 'org-cerballiance', kind: 'lab' },
  { clientId: 'chu-nantes', organizationId: 'org-chu-nantes', kind: 'hospital' },
  { clientId: 'chu-amiens', organizationId: 'org-chu-amiens', kind: 'hospital' },
  { clientId: 'imagerie-garonne', organizationId: 'org-imagerie-garonne', kind: 'imaging' },
  { clientId: 'pharma-loire', organizationId: 'org-pharma-loire', kind: 'pharmacy' },
];

/** The system that writes Patients (the insurer's enrolment feed) and the directory feed. */
export const ENROLMENT_CLIENT = 'cnam-enrolment';
export const DIRECTORY_CLIENT = 'annuaire-sante';

// Professions of the non-GP professionals (TRE_G15): physicians, pharmacists, nurses, physios.
const OTHER_PROFESSIONS = ['10', '10', '21', '60', '70'];

const FAMILY = ['Martin', 'Bernard', 'Thomas', 'Petit', 'Robert', 'Richard', 'Durand', 'Dubois', 'Moreau', 'Laurent', 'Simon', 'Michel', 'Lefèvre', 'Leroy', 'Roux', 'David', 'Bertrand', 'Morel', 'Fournier', 'Girard', 'Bonnet', 'Dupont', 'Lambert', 'Fontaine', 'Rousseau', 'Vincent', 'Muller', 'Lefebvre', 'Faure', 'André', 'Mercier', 'Blanc', 'Guérin', 'Boyer', 'Garnier', 'Chevalier', 'François', 'Legrand', 'Gauthier', 'Garcia'];
const GIVEN_F = ['Marie', 'Nathalie', 'Isabelle', 'Sylvie', 'Catherine', 'Françoise', 'Camille', 'Léa', 'Manon', 'Chloé', 'Emma', 'Inès', 'Jade', 'Louise', 'Hélène', 'Élodie'];
const GIVEN_M = ['Jean', 'Philippe', 'Michel', 'Alain', 'Nicolas', 'Pierre', 'Thomas', 'Lucas', 'Hugo', 'Louis', 'Gabriel', 'Jules', 'Raphaël', 'Arthur', 'Étienne', 'François'];
const CITIES: readonly [string, string, string][] = [
  ['Nantes', '44000', '44109'],
  ['Saint-Nazaire', '44600', '44184'],
  ['Toulouse', '31000', '31555'],
  ['Muret', '31600', '31395'],
  ['Amiens', '80000', '80021'],
  ['Abbeville', '80100', '80001'],
];

/** A small fast PRNG (mulberry32): deterministic for a seed, good enough for test data. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(values: readonly T[]): T {
    return values[this.int(values.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** The INS (NIR) key: 97 - (the 13-digit number mod 97), two digits. */
export function nirKey(nir13: string): string {
  if (!/^\d{13}$/.test(nir13)) throw new RangeError(`not a 13-digit NIR: ${nir13}`);
  return String(97 - Number(BigInt(nir13) % 97n)).padStart(2, '0');
}

/** Whether a 15-digit INS carries its valid key. */
export function validIns(ins: string): boolean {
  return /^\d{15}$/.test(ins) && nirKey(ins.slice(0, 13)) === ins.slice(13);
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

export const patientId = (i: number) => `pat-${pad(i, 7)}`;
export const practitionerId = (i: number) => `pra-${pad(i, 5)}`;
export const documentId = (i: number) => `doc-${pad(i, 8)}`;

/** The world's professionals: practitioner i is a GP when i is even (the GPs patients choose), else another profession. */
export interface Professional {
  id: string;
  rpps: string;
  profession: string;
  gp: boolean;
}

export function professional(i: number): Professional {
  const gp = i % 2 === 0;
  return { id: practitionerId(i), rpps: `1${pad(i * 7919 + 10000000, 10)}`, profession: gp ? '10' : OTHER_PROFESSIONS[(i >> 1) % OTHER_PROFESSIONS.length], gp };
}

/** The token claims and the Actor of a professional, as a development token carries them (the mix bench mints the same). */
export function professionalActor(p: Professional, purposeOfUse: 'TREAT' | 'ETREAT' = 'TREAT'): Actor {
  return { kind: 'practitioner', practitionerId: p.id, rpps: p.rpps, profession: p.profession, purposeOfUse, grants: [], issuer: DEVELOPMENT_ISSUER, subject: `Practitioner/${p.id}`, clientId: 'carnet-lps' };
}

export function patientActor(id: string): Actor {
  return { kind: 'patient', patientId: id, grants: [], issuer: DEVELOPMENT_ISSUER, subject: `Patient/${id}`, clientId: 'carnet-app' };
}

export function systemActor(clientId: string, organizationId?: string): Actor {
  return { kind: 'system', clientId, ...(organizationId ? { organizationId } : {}), grants: [], issuer: DEVELOPMENT_ISSUER, subject: clientId };
}

/** One interaction of the world's history, in commit order: what was written, by whom, at what instant. */
export type Interaction =
  | { kind: 'write'; resource: Resource & { id: string }; actor: Actor; at: string }
  /** A read (or a refused one) that writes nothing but its audit record. */
  | { kind: 'access'; actor: Actor; at: string; interaction: 'read' | 'search-type'; outcome: 'success' | 'denied'; type: string; patient: string; resource?: string; query?: string };

/** The account-state mix of the pilot (docs/performance.md "Seeded data"): most open, a notified tail, a few objections and closings. */
const PILOT_STATES: readonly [AccountState, number][] = [
  ['open', 0.62],
  ['notified', 0.3],
  ['objected', 0.05],
  ['closed', 0.03],
];

/** What the world holds, for the caller (progress bars, the mix bench). */
export interface WorldShape {
  patients: number;
  practitioners: number;
  documents: number;
  accesses: number;
  /** Interactions in all (the units of progress). */
  total: number;
}

export function shapeOf(options: WorldOptions): WorldShape {
  const practitioners = options.practitioners ?? Math.max(4, Math.ceil(options.patients / 50));
  const accesses = Math.round(options.documents * (options.accessesPerDocument ?? 0.5));
  // Practitioners and their roles, patients, consents (at most 4 a patient, bounded below), documents, accesses.
  return { patients: options.patients, practitioners, documents: options.documents, accesses, total: practitioners * 2 + options.patients + options.documents + accesses };
}

/**
 * The world's interactions in commit order, one at a time (a million documents never sit in
 * memory): the directory, the patients with their GP, their consents, the documents the vendors
 * push, then the access history. Instants rise from a year before `end` to `end`.
 */
export function* world(options: WorldOptions): Generator<Interaction> {
  const random = new Random(options.seed);
  const shape = shapeOf(options);
  const end = Date.parse(options.end ?? '2026-11-30T00:00:00Z');
  const start = end - 365 * 86_400_000;
  // An instant per interaction (with consents, a little more than the shape counts): strictly rising.
  const step = Math.max(1, Math.floor((end - start) / (shape.total * 1.1)));
  let clock = start;
  const tick = () => new Date((clock += step)).toISOString();
  const pros = Array.from({ length: shape.practitioners }, (_, i) => professional(i));
  const gps = pros.filter((p) => p.gp);
  const others = pros.filter((p) => !p.gp);
  const directory = systemActor(DIRECTORY_CLIENT);

  for (const p of pros) {
    const [family, given] = [random.pick(FAMILY), random.pick([...GIVEN_F, ...GIVEN_M])];
    const practitioner: Practitioner & { id: string } = {
      resourceType: 'Practitioner',
      id: p.id,
      identifier: [{ system: RPPS_SYSTEM, value: p.rpps }],
      active: true,
      name: [{ family, given: [given], prefix: p.profession === '10' ? ['Dr'] : [] }],
    };
    yield { kind: 'write', resource: practitioner, actor: directory, at: tick() };
    const role: PractitionerRole & { id: string } = {
      resourceType: 'PractitionerRole',
      id: `role-${p.id}`,
      active: true,
      practitioner: { reference: `Practitioner/${p.id}` },
      code: [{ coding: [{ system: PROFESSION, code: p.profession }] }],
      ...(p.gp ? { specialty: [{ coding: [{ system: 'https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale', code: 'SM54', display: 'Médecine générale' }] }] } : {}),
    };
    yield { kind: 'write', resource: role, actor: directory, at: tick() };
  }

  // Who is each patient's GP (none for one in ten), and the accounts' states.
  const gpOf = (i: number) => (i % 10 === 9 ? undefined : gps[i % gps.length]);
  const states: AccountState[] = [];
  const enrolment = systemActor(ENROLMENT_CLIENT, 'org-cnam');
  for (let i = 0; i < options.patients; i++) {
    const id = patientId(i);
    const female = random.chance(0.52);
    const birth = new Date(Date.UTC(1935 + random.int(88), random.int(12), 1 + random.int(28)));
    const [city, postalCode, commune] = random.pick(CITIES);
    const nir = `${female ? 2 : 1}${pad(birth.getUTCFullYear() % 100, 2)}${pad(birth.getUTCMonth() + 1, 2)}${commune}${pad(random.int(999) + 1, 3)}`;
    const gp = gpOf(i);
    let state: AccountState = 'open';
    if (options.pilot && i > 0) {
      let r = random.next();
      state = PILOT_STATES.find(([, share]) => (r -= share) < 0)?.[0] ?? 'open';
    }
    states.push(state);
    const patient: Patient & { id: string } = {
      resourceType: 'Patient',
      id,
      identifier: [{ system: INS_SYSTEM, value: `${nir}${nirKey(nir)}`, type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'INS-NIR' }] } }],
      name: [{ use: 'official', family: random.pick(FAMILY).toUpperCase(), given: [random.pick(female ? GIVEN_F : GIVEN_M)] }],
      gender: female ? 'female' : 'male',
      birthDate: birth.toISOString().slice(0, 10),
      address: [{ city, postalCode, country: 'FR' }],
      ...(gp ? { generalPractitioner: [{ reference: `Practitioner/${gp.id}` }] } : {}),
    };
    const at = tick();
    yield { kind: 'write', resource: options.pilot ? { ...withAccount(patient, accountFor(state, at)), id } : patient, actor: enrolment, at };
  }

  // Consents, each written by its patient: a permit for a second professional (one patient in
  // ten), a block (one in a hundred), emergency access off (one in two hundred).
  let consents = 0;
  const consent = (i: number, policy: 'OPTIN' | 'OPTOUT', provision: Consent['provision']): Interaction => {
    const id = patientId(i);
    const at = tick();
    const resource: Consent & { id: string } = {
      resourceType: 'Consent',
      id: `consent-${pad(consents++, 7)}`,
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: LOINC, code: '59284-0' }] }],
      patient: { reference: `Patient/${id}` },
      dateTime: at,
      policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: policy }] },
      provision,
    };
    return { kind: 'write', resource, actor: patientActor(id), at };
  };
  const actorOf = (p: Professional) => ({ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PRCP' }] }, reference: { reference: `Practitioner/${p.id}` } });
  for (let i = 0; i < options.patients; i++) {
    if (states[i] !== 'open') continue;
    if (i % 10 === 3) yield consent(i, 'OPTIN', { type: 'permit', actor: [actorOf(permitted(i, others))] });
    if (i % 100 === 7) yield consent(i, 'OPTOUT', { type: 'deny', actor: [actorOf(blocked(i, gps))] });
    if (i % 200 === 11) yield consent(i, 'OPTOUT', { type: 'deny', purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'ETREAT' }] });
  }

  // Documents pushed by the vendors: the heavy record first, then the rest skewed towards the
  // first patients (a few records with many documents, a long tail with few or none, as in the pilot).
  const heavy = Math.min(options.heavy ?? 0, options.documents);
  const receiving = options.pilot ? Math.max(1, Math.ceil(options.patients * 0.35)) : options.patients;
  const masks: [number, number][] = [];
  for (let d = 0; d < options.documents; d++) {
    const r = random.next();
    const p = d < heavy ? 0 : Math.min(receiving - 1, Math.floor(receiving * r * r));
    const kind = kindOf(random.next());
    const vendor = random.pick(VENDORS.filter((v) => v.kind === kind.vendor));
    const date = new Date(start - random.int(3 * 365) * 86_400_000).toISOString();
    const doc: DocumentReference & { id: string } = {
      resourceType: 'DocumentReference',
      id: documentId(d),
      masterIdentifier: { system: 'urn:ietf:rfc:3986', value: `urn:oid:1.2.250.1.999.${options.seed}.${d}` },
      status: 'current',
      type: { coding: [{ system: LOINC, code: kind.code, display: kind.display }] },
      subject: { reference: `Patient/${patientId(p)}` },
      date,
      author: [{ reference: `Organization/${vendor.organizationId}` }],
      content: [{ attachment: { contentType: 'application/pdf', title: kind.display, creation: date, size: 20_000 + random.int(200_000) } }],
      context: { period: { start: date } },
    };
    const account = states[p];
    // Nothing is stored in the record of an objected or closed account (docs/accounts.md).
    if (account === 'objected' || account === 'closed') continue;
    yield { kind: 'write', resource: doc, actor: systemActor(vendor.clientId, vendor.organizationId), at: tick() };
    if (account === 'open' && random.chance(0.02)) masks.push([d, p]);
  }
  // The patients mask one document in fifty (after the push: they see it, then hide it).
  for (const [d, p] of masks) {
    yield consent(p, 'OPTOUT', { type: 'deny', data: [{ meaning: 'instance', reference: { reference: `DocumentReference/${documentId(d)}` } }] });
  }
  yield* history(options, shape, random, tick, gpOf, states, pros);
}

/** The access history: professionals reading and searching their patients' records, refusals, emergency accesses, patients reading their log. */
function* history(options: WorldOptions, shape: WorldShape, random: Random, tick: () => string, gpOf: (i: number) => Professional | undefined, states: AccountState[], pros: Professional[]): Generator<Interaction> {
  const receiving = options.pilot ? Math.max(1, Math.ceil(options.patients * 0.35)) : options.patients;
  for (let a = 0; a < shape.accesses; a++) {
    const r = random.next();
    const p = Math.min(receiving - 1, Math.floor(receiving * r * r));
    const id = patientId(p);
    const gp = gpOf(p);
    const roll = random.next();
    const at = tick();
    if (roll < 0.1 || !gp || states[p] !== 'open') {
      // The patient reads their access log.
      yield { kind: 'access', actor: patientActor(id), at, interaction: 'search-type', outcome: 'success', type: 'AuditEvent', patient: id, query: `patient=${id}&_sort=-date` };
    } else if (roll < 0.55) {
      yield { kind: 'access', actor: professionalActor(gp), at, interaction: 'search-type', outcome: 'success', type: 'DocumentReference', patient: id, query: `patient=${id}&status=current&_count=10` };
    } else if (roll < 0.9) {
      yield { kind: 'access', actor: professionalActor(gp), at, interaction: 'read', outcome: 'success', type: 'Patient', patient: id, resource: `Patient/${id}` };
    } else if (roll < 0.97) {
      // A professional without a care relationship: refused, exactly as a missing record (404).
      const stranger = pros[(p * 7 + 1) % pros.length];
      if (stranger.id === gp.id) continue;
      yield { kind: 'access', actor: professionalActor(stranger), at, interaction: 'read', outcome: 'denied', type: 'Patient', patient: id, resource: `Patient/${id}` };
    } else {
      // Emergency access ("bris de glace") by another physician.
      const urgent = pros[(p * 13 + 3) % pros.length];
      yield { kind: 'access', actor: professionalActor(urgent, 'ETREAT'), at, interaction: 'read', outcome: 'success', type: 'Patient', patient: id, resource: `Patient/${id}` };
    }
  }
}

function accountFor(state: AccountState, at: string) {
  switch (state) {
    case 'notified':
      // The provisional code's hash is the letter's business: one fixed hash (the seed never activates).
      return { state, objectionEnds: new Date(Date.parse(at) + 42 * 86_400_000).toISOString(), provisionalCode: 'scrypt$c2VlZA==$c2VlZA==' };
    case 'closed':
      return { state, closedAt: at, closedBy: 'person' as const };
    default:
      return { state };
  }
}

function kindOf(r: number): DocumentKind {
  for (const kind of DOCUMENT_MIX) if ((r -= kind.share) < 0) return kind;
  return DOCUMENT_MIX[0];
}

/** The second professional a patient permits. */
export function permitted(i: number, others: readonly Professional[]): Professional {
  return others[(i * 31) % others.length];
}

/** The GP a patient blocks (never their own: the next one). */
export function blocked(i: number, gps: readonly Professional[]): Professional {
  return gps[(i + 1) % gps.length];
}
