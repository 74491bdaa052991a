// audit: AuditEvent records (IHE BALP) and their durable writing; patient notifications.
// This file: building one AuditEvent from what happened; pure, no I/O.
//
// The shape follows the IHE Basic Audit Log Patterns (BALP) RESTful profiles
// (IHE.BasicAudit.[Patient]Create / Read / Update / Delete / Query):
// - type `rest`, subtype the FHIR restful-interaction, action C/R/U/D/E;
// - a client agent and a server agent, typed with the DICOM roles each profile fixes (the client
//   is the Source of a create/update/search and the Destination of a read; a delete has the
//   Application and the Custodian);
// - a user agent (the authenticated person or organisation) typed IRCP (information recipient)
//   for reads and searches, AUT (author) for writes;
// - one entity per resource touched (System Object / Domain Resource), one per patient
//   (Person / Patient) and, for searches, the query (System Object / Query, base64 in `query`).
// Only ids and codes go into an event, never resource content. The raw query string is kept
// (BALP requires it): an AuditEvent is stored health data, readable by the patient, never logged.

import { isIP } from 'node:net';
import type { AuditEvent, AuditEventAgent, AuditEventEntity, CodeableConcept, Coding } from '@medplum/fhirtypes';
import type { Actor, PurposeOfUse } from '../auth/actor.js';
import { CLIENT_ID_SYSTEM } from '../auth/clients.js';
import { isServedType } from '../base/registry.js';

export type AuditInteraction =
  | 'create'
  | 'read'
  | 'vread'
  | 'update'
  | 'patch'
  | 'delete'
  | 'history-instance'
  | 'history-type'
  | 'history-system'
  | 'search-type'
  | 'search-system'
  | 'transaction'
  | 'batch'
  | 'operation';

export const AUDIT_INTERACTIONS: readonly AuditInteraction[] = [
  'create',
  'read',
  'vread',
  'update',
  'patch',
  'delete',
  'history-instance',
  'history-type',
  'history-system',
  'search-type',
  'search-system',
  'transaction',
  'batch',
  'operation',
];

export type AuditOutcome = 'success' | 'denied' | 'failure';

export interface AuditFacts {
  /** Who asked; undefined when the request was not authenticated. */
  actor: Actor | undefined;
  interaction: AuditInteraction;
  /** success: 0; denied (refused by authorization or consent): 4 minor failure; failure: 8 serious failure. */
  outcome: AuditOutcome;
  /** Patients whose data the interaction touched or tried to touch (ids). */
  patients: string[];
  /** Resources touched (Type/id[/_history/v]), for reads, writes. */
  resources: string[];
  /** For searches: the query string as received (the part after '?'). */
  query?: string;
  /** The resource type of a type-level interaction (search-type, history-type, create...), when known. */
  type?: string;
  /** A short, fixed explanation of a denial or failure (outcomeDesc); never resource content. */
  reason?: string;
  /** The IHE transaction the interaction is (audit/ihe), added to the subtype. */
  transaction?: Coding;
  /** When: an instant (ISO). */
  recorded: string;
  /** The server's identity for source.observer, e.g. the base URL. */
  server: string;
  /** Network address of the client, optional. */
  address?: string;
}

/** System of `agent.who.identifier` for an OAuth client (the client id is the value). */
export const AUDIT_SYSTEM_CLIENT = CLIENT_ID_SYSTEM;

/** System of the organisation roles (OrganisationRole) in `agent.role`. */
export const AUDIT_SYSTEM_ORGANISATION_ROLE = 'urn:carnet:organisation-role';

const AUDIT_EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const RESTFUL_INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const PARTICIPATION_TYPE = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
const PROVENANCE_PARTICIPANT_TYPE = 'http://terminology.hl7.org/CodeSystem/provenance-participant-type';
const ROLE_CLASS = 'http://terminology.hl7.org/CodeSystem/v3-RoleClass';
const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const SECURITY_SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const PROFESSION = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const SPECIALTY = 'https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale';

type Action = NonNullable<AuditEvent['action']>;
type Who = NonNullable<AuditEventAgent['who']>;

/** How each interaction is recorded: the action, and the codes of the client, server and user agents. */
interface Pattern {
  action: Action;
  client: Coding;
  server: Coding;
  user: Coding;
}

const SOURCE: Coding = { system: DCM, code: '110153', display: 'Source Role ID' };
const DESTINATION: Coding = { system: DCM, code: '110152', display: 'Destination Role ID' };
const APPLICATION: Coding = { system: DCM, code: '110150', display: 'Application' };
const CUSTODIAN: Coding = { system: PROVENANCE_PARTICIPANT_TYPE, code: 'custodian', display: 'Custodian' };
const RECIPIENT: Coding = { system: PARTICIPATION_TYPE, code: 'IRCP', display: 'information recipient' };
const AUTHOR: Coding = { system: PARTICIPATION_TYPE, code: 'AUT', display: 'author (originator)' };
const PROVIDER: Coding = { system: ROLE_CLASS, code: 'PROV', display: 'healthcare provider' };

// BALP Read: the client is the Destination of the data, the server its Source.
const READ: Omit<Pattern, 'action'> = { client: DESTINATION, server: SOURCE, user: RECIPIENT };
// BALP Create / Update / Query: the client is the Source of the request (DICOM convention).
const WRITE: Omit<Pattern, 'action'> = { client: SOURCE, server: DESTINATION, user: AUTHOR };
const QUERY: Omit<Pattern, 'action'> = { client: SOURCE, server: DESTINATION, user: RECIPIENT };

const PATTERNS: Record<AuditInteraction, Pattern> = {
  create: { action: 'C', ...WRITE },
  read: { action: 'R', ...READ },
  vread: { action: 'R', ...READ },
  // History is not covered by a BALP profile: it returns resources like a read.
  'history-instance': { action: 'R', ...READ },
  'history-type': { action: 'R', ...READ },
  'history-system': { action: 'R', ...READ },
  update: { action: 'U', ...WRITE },
  patch: { action: 'U', ...WRITE },
  // BALP Delete: the client is the Application, the server the Custodian.
  delete: { action: 'D', client: APPLICATION, server: CUSTODIAN, user: AUTHOR },
  'search-type': { action: 'E', ...QUERY },
  'search-system': { action: 'E', ...QUERY },
  // Not covered by BALP: a transaction or batch submits content (author); an operation is
  // recorded like a query (Carnet's operations return data).
  transaction: { action: 'E', ...WRITE },
  batch: { action: 'E', ...WRITE },
  operation: { action: 'E', ...QUERY },
};

const OUTCOMES: Record<AuditOutcome, { code: NonNullable<AuditEvent['outcome']>; desc?: string }> = {
  success: { code: '0' },
  // "Minor failure: often equivalent to an HTTP 400 response": a refusal (403/404) is one.
  denied: { code: '4', desc: 'Access denied' },
  // "Serious failure: often equivalent to an HTTP 500 response".
  failure: { code: '8', desc: 'The request failed' },
};

const PURPOSE_DISPLAY: Record<PurposeOfUse, string> = { TREAT: 'treatment', ETREAT: 'Emergency Treatment' };

/** Who creates every AuditEvent in the store (the creator of WriteOp and JournalEntry). */
export const AUDIT_CREATOR = 'carnet:audit';

/** The AuditEvent recording one interaction with the server. */
export function auditEvent(facts: AuditFacts): AuditEvent {
  // The codings are shared constants: the caller gets its own copy to store or mark up.
  return copyJson(sharedAuditEvent(facts));
}

/**
 * auditEvent() without the copy: its codings are objects shared by every record, so it is only
 * to be serialised at once (the audit journal), never changed nor kept.
 */
export function sharedAuditEvent(facts: AuditFacts): AuditEvent {
  const pattern = PATTERNS[facts.interaction];
  const outcome = OUTCOMES[facts.outcome];
  const actor = facts.actor;
  const purpose = actor?.kind === 'practitioner' ? purposeOf(actor.purposeOfUse) : undefined;

  const desc = facts.outcome === 'success' ? undefined : (nonBlank(facts.reason) ?? outcome.desc);
  const entities = entitiesOf(facts);
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    type: { system: AUDIT_EVENT_TYPE, code: 'rest', display: 'Restful Operation' },
    subtype: [{ system: RESTFUL_INTERACTION, code: facts.interaction, display: facts.interaction }, ...(facts.transaction ? [facts.transaction] : [])],
    action: pattern.action,
    recorded: facts.recorded,
    outcome: outcome.code,
    ...(desc ? { outcomeDesc: desc } : {}),
    ...(purpose ? { purposeOfEvent: [purpose] } : {}),
    agent: agents(facts, pattern, purpose),
    source: source(facts.server),
    ...(entities.length > 0 ? { entity: entities } : {}),
  };
  return event;
}

/** A deep copy of plain JSON data; several times faster than structuredClone, which every record paid. */
function copyJson<T>(value: T): T {
  if (Array.isArray(value)) return value.map(copyJson) as T;
  if (value === null || typeof value !== 'object') return value;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = copyJson((value as Record<string, unknown>)[key]);
  return copy as T;
}

// ---------------------------------------------------------------------------------------------
// Agents

function agents(facts: AuditFacts, pattern: Pattern, purpose: CodeableConcept | undefined): AuditEventAgent[] {
  const actor = facts.actor;
  // Without a person or organisation behind it, the client application itself is the requestor.
  const clientRequests = actor === undefined || actor.kind === 'system';
  const client: AuditEventAgent = {
    type: { coding: [pattern.client] },
    who: clientWho(actor),
    requestor: clientRequests,
  };
  const network = clientNetwork(facts.address);
  if (network) client.network = network;

  const server: AuditEventAgent = {
    type: { coding: [pattern.server] },
    who: { display: facts.server },
    requestor: false,
    network: { address: facts.server, type: '5' },
  };

  const list = [client, server];
  const user = actor && userAgent(actor, pattern.user, purpose);
  if (user) list.push(user);
  const organizationId = actor?.kind === 'practitioner' || actor?.kind === 'system' ? actor.organizationId : undefined;
  // BALP AuthZconsent "userorg": the organisation the practitioner works for, or that operates the system.
  if (organizationId) list.push({ type: { coding: [PROVIDER] }, who: { reference: `Organization/${organizationId}` }, requestor: false });
  return list;
}

function clientWho(actor: Actor | undefined): Who {
  if (actor === undefined) return { display: 'unauthenticated client' };
  const clientId = nonBlank(actor.clientId);
  if (clientId === undefined) return { display: 'unknown client' };
  return { identifier: { system: AUDIT_SYSTEM_CLIENT, value: clientId }, display: clientId };
}

/** network.type: 1 machine name, 2 IP address (audit-event-network-type). */
function clientNetwork(address: string | undefined): AuditEventAgent['network'] {
  const value = nonBlank(address);
  if (value === undefined) return undefined;
  return { address: value, type: isIP(value) === 0 ? '1' : '2' };
}

function userAgent(actor: Actor, type: Coding, purpose: CodeableConcept | undefined): AuditEventAgent | undefined {
  let reference: string;
  const role: CodeableConcept[] = [];
  switch (actor.kind) {
    case 'system':
      return undefined;
    case 'patient':
      reference = `Patient/${actor.patientId}`;
      break;
    case 'representative':
      reference = `RelatedPerson/${actor.relatedPersonId}`;
      break;
    case 'practitioner':
      reference = `Practitioner/${actor.practitionerId}`;
      role.push({ coding: [{ system: PROFESSION, code: actor.profession }] });
      if (actor.specialty) role.push({ coding: [{ system: SPECIALTY, code: actor.specialty }] });
      break;
    case 'organisation':
      reference = `Organization/${actor.organizationId}`;
      role.push({ coding: [{ system: AUDIT_SYSTEM_ORGANISATION_ROLE, code: actor.role }] });
      break;
  }
  const who: Who = { reference };
  // BALP OAuth access token use: the token's issuer and subject identify the user.
  const subject = nonBlank(actor.subject);
  if (subject !== undefined) who.identifier = /^\S+$/.test(actor.issuer) ? { system: actor.issuer, value: subject } : { value: subject };
  return {
    type: { coding: [type] },
    ...(role.length > 0 ? { role } : {}),
    who,
    ...(actor.kind === 'practitioner' && actor.rpps ? { altId: actor.rpps } : {}),
    requestor: true,
    ...(purpose ? { purposeOfUse: [purpose] } : {}),
  };
}

function purposeOf(purpose: PurposeOfUse): CodeableConcept {
  return { coding: [{ system: ACT_REASON, code: purpose, display: PURPOSE_DISPLAY[purpose] }] };
}

// ---------------------------------------------------------------------------------------------
// Source

// One server, one base URL: parsed once, not for every record.
let lastSource: { server: string; source: AuditEvent['source'] } | undefined;

function source(server: string): AuditEvent['source'] {
  if (lastSource?.server === server) return lastSource.source;
  const site = hostOf(server);
  const built = {
    ...(site ? { site } : {}),
    observer: { display: server },
    type: [{ system: SECURITY_SOURCE_TYPE, code: '4', display: 'Application Server' }],
  };
  lastSource = { server, source: built };
  return built;
}

function hostOf(server: string): string | undefined {
  try {
    return nonBlank(new URL(server).host);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Entities

const SYSTEM_OBJECT: Coding = { system: ENTITY_TYPE, code: '2', display: 'System Object' };
const PERSON: Coding = { system: ENTITY_TYPE, code: '1', display: 'Person' };
const DOMAIN_RESOURCE: Coding = { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' };
const PATIENT: Coding = { system: OBJECT_ROLE, code: '1', display: 'Patient' };
const QUERY_ROLE: Coding = { system: OBJECT_ROLE, code: '24', display: 'Query' };

function entitiesOf(facts: AuditFacts): AuditEventEntity[] {
  const entities: AuditEventEntity[] = [];
  const resources = unique(facts.resources);
  for (const reference of resources) entities.push({ what: { reference }, type: SYSTEM_OBJECT, role: DOMAIN_RESOURCE });

  const type = nonBlank(facts.type);
  const search = facts.interaction === 'search-type' || facts.interaction === 'search-system';
  if (search || nonBlank(facts.query) !== undefined) {
    // BALP Query: no `what`; the raw query, base64, in `query`; the searched type in `description`.
    const entity: AuditEventEntity = { type: SYSTEM_OBJECT, role: QUERY_ROLE };
    if (type) entity.description = type;
    // base64Binary cannot be empty: an empty query string is recorded by the entity alone.
    if (facts.query) entity.query = Buffer.from(facts.query, 'utf8').toString('base64');
    entities.push(entity);
  } else if (resources.length === 0 && type && isServedType(type)) {
    // A type-level interaction with no resource (a refused create, a history-type): the type.
    entities.push({ what: { type }, type: SYSTEM_OBJECT, role: DOMAIN_RESOURCE });
  }

  for (const id of unique(facts.patients)) entities.push({ what: { reference: `Patient/${id}` }, type: PERSON, role: PATIENT });
  return entities;
}

function unique(values: string[]): string[] {
  return [...new Set(values.filter((v) => v !== ''))];
}

function nonBlank(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== '' ? value : undefined;
}
