// auth/catalogue: what users see of the registered clients (GET /apps). Each certified client's
// name, editor, description, certification date and scopes, and the data it reads said in plain
// words, derived from its scopes by one table (so that what a patient is told is exactly what the
// scopes allow, never a vendor's claim). Pure; never keys.

import type { ClientRecord } from '../store/port.js';
import { parseScopes, type Grant, type Permission, type ScopeContext } from './scopes.js';

/** An entry of the public catalogue. */
export interface CatalogueEntry {
  id: string;
  name: string;
  kind: ClientRecord['kind'];
  editor?: string;
  description?: string;
  /** YYYY-MM-DD */
  certifiedOn?: string;
  scopes: string;
  /** What it may do with which data, one plain sentence per scope (dataOf). */
  data: string[];
}

// The data of each resource type in the words of a patient; types not listed use their name.
const DATA: Record<string, string> = {
  '*': 'whole health record',
  Patient: 'identity and contact details',
  DocumentReference: 'documents (reports, prescriptions, letters)',
  Binary: 'document files',
  Observation: 'measurements and test results',
  DiagnosticReport: 'test reports',
  Condition: 'health problems',
  AllergyIntolerance: 'allergies',
  Immunization: 'vaccinations',
  MedicationRequest: 'prescribed medicines',
  MedicationStatement: 'medicines taken',
  MedicationDispense: 'medicines dispensed by pharmacies',
  Procedure: 'procedures and operations',
  Encounter: 'visits and hospital stays',
  Appointment: 'appointments',
  CarePlan: 'care plans',
  Communication: 'messages',
  Consent: 'privacy choices',
  AuditEvent: 'access log',
  Subscription: 'notification subscriptions',
  Practitioner: 'directory of health professionals',
  PractitionerRole: 'directory of health professionals',
  Organization: 'directory of health organisations',
};

// Scopes that grant no clinical data, in plain words; absent: said nothing of (launch/...).
const OTHER: Record<string, string> = {
  openid: 'Knows who you are (your identity)',
  fhirUser: 'Knows who you are (your identity)',
  profile: 'Knows who you are (your identity)',
  offline_access: 'Keeps its access while you are not using it, until you revoke it',
};

const VERBS: [Permission[], string][] = [
  [['r', 's'], 'reads'],
  [['c'], 'adds to'],
  [['u'], 'changes'],
  [['d'], 'deletes'],
];

const OWNER: Record<ScopeContext, (data: string) => string> = {
  patient: (data) => `your ${data}`,
  user: (data) => `the ${data} of the records its user may open`,
  system: (data) => `the ${data} of any record the consent policy lets it reach`,
};

function dataName(type: string): string {
  return DATA[type] ?? `${type} records`;
}

/** One grant in plain words: "Reads and changes your measurements and test results". */
export function grantInWords(grant: Grant): string {
  const verbs = VERBS.filter(([permissions]) => permissions.some((p) => grant.permissions.has(p))).map(([, verb]) => verb);
  const listed = verbs.length > 1 ? `${verbs.slice(0, -1).join(', ')} and ${verbs[verbs.length - 1]}` : verbs[0];
  const sentence = `${listed} ${OWNER[grant.context](dataName(grant.type))}`;
  return sentence.charAt(0).toUpperCase() + sentence.slice(1);
}

/** What a client's scopes let it do, one plain sentence each, without repeats. */
export function dataOf(scopes: string): string[] {
  const sentences: string[] = [];
  for (const token of scopes.split(/\s+/).filter(Boolean)) {
    const [grant] = parseScopes(token);
    const sentence = grant ? grantInWords(grant) : OTHER[token];
    if (sentence !== undefined && !sentences.includes(sentence)) sentences.push(sentence);
  }
  return sentences;
}

/** The certified clients, as the public catalogue shows them (no keys, no organisation). */
export function publicCatalogue(clients: ClientRecord[]): CatalogueEntry[] {
  return clients
    .filter((c) => c.certified)
    .map((c) => ({
      id: c.id,
      name: c.name,
      kind: c.kind,
      ...(c.editor !== undefined ? { editor: c.editor } : {}),
      ...(c.description !== undefined ? { description: c.description } : {}),
      ...(c.certifiedOn !== undefined ? { certifiedOn: c.certifiedOn } : {}),
      scopes: c.scopes,
      data: dataOf(c.scopes),
    }));
}
