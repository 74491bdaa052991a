// fhir/audited: the one boundary where interactions become AuditEvents (audit/event builds them).
// A write's AuditEvent joins the write's own store transaction; a read's is made durable before the
// answer is sent (audit/group-commit). Both carry ids and codes only.

import type { AuditEvent, Bundle, Coding, Resource } from '@medplum/fhirtypes';
import { iheTransaction } from '../audit/ihe.js';
import { AUDIT_CREATOR, auditEvent, sharedAuditEvent, type AuditFacts, type AuditInteraction, type AuditOutcome } from '../audit/event.js';
import { patientOf } from '../policy/compartment.js';
import { indexEntries, parseReference } from '../search/extract.js';
import type { WriteOp } from '../store/port.js';
import { auditEventId } from '../audit/id.js';
import type { FhirContext, FhirRequest, FhirResponse } from './context.js';
import { FhirError } from '../base/outcome.js';
import { confidentialContent, patientOfContent } from './access.js';
import { CONFIDENTIAL_FROM_REPRESENTATIVES, hasLabel } from '../policy/decide.js';

/** The RESTful interaction a request is, in the restful-interaction code system. */
export function interactionOf(req: FhirRequest): AuditInteraction {
  const { method, target } = req;
  const get = method === 'GET' || method === 'HEAD';
  switch (target.kind) {
    case 'system':
      return get ? 'search-system' : 'transaction';
    case 'system-history':
      return 'history-system';
    case 'type':
      return get ? 'search-type' : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch' : 'delete';
    case 'type-search':
      return 'search-type';
    case 'type-history':
      return 'history-type';
    case 'instance':
      return get ? 'read' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch' : 'delete';
    case 'instance-history':
      return 'history-instance';
    case 'version':
      return 'vread';
    default:
      return 'operation';
  }
}

/** What an interaction touched, for the record: resource references and their patients. */
export interface Touched {
  resources: string[];
  patients: string[];
  /** Something touched is kept confidential from the patient's representatives: so is the record. */
  confidential?: boolean;
}

export function touchedBy(resources: Resource[]): Touched {
  const refs = new Set<string>();
  const patients = new Set<string>();
  let confidential = false;
  for (const resource of resources) {
    if (resource.resourceType === 'OperationOutcome') continue;
    if (resource.id) refs.add(`${resource.resourceType}/${resource.id}`);
    // An access-log record belongs to the records it is about (its entities), not to whoever
    // made the access: reading your log does not touch the record of a patient named as agent.
    if (resource.resourceType === 'AuditEvent') for (const patient of entityPatients(resource as AuditEvent)) patients.add(patient);
    else {
      const patient = patientOf(resource);
      if (patient) patients.add(patient);
    }
    if (hasLabel(resource, CONFIDENTIAL_FROM_REPRESENTATIVES)) confidential = true;
  }
  return { resources: [...refs], patients: [...patients], ...(confidential ? { confidential } : {}) };
}

/** The patients an AuditEvent is about: its entities that are Patients. */
function entityPatients(event: AuditEvent): string[] {
  const out: string[] = [];
  for (const entity of event.entity ?? []) {
    const parsed = typeof entity.what?.reference === 'string' ? parseReference(entity.what.reference) : null;
    if (parsed && parsed[0] === 'Patient' && parsed[1] !== null) out.push(parsed[1]);
  }
  return out;
}

/** The resources a response carries (a Bundle's entries, or the resource itself). */
function carried(response: FhirResponse): Resource[] {
  const resource = response.resource;
  if (!resource) return [];
  if (resource.resourceType === 'Bundle') return ((resource as Bundle).entry ?? []).map((e) => e.resource).filter((r): r is Resource => r !== undefined);
  return [resource];
}

function transactionOf(req: FhirRequest): { transaction?: Coding } {
  const transaction = iheTransaction(interactionOf(req), 'type' in req.target ? req.target.type : undefined, req.body.kind === 'json' ? req.body.value : undefined);
  return transaction ? { transaction } : {};
}

type Builder = (facts: AuditFacts) => AuditEvent;

function event(ctx: FhirContext, req: FhirRequest, outcome: AuditOutcome, touched: Touched, reason?: string, build: Builder = auditEvent): AuditEvent & { id: string } {
  const target = req.target;
  // Only searches record their query (BALP Query); reads skip building it.
  const searched = target.kind === 'type' || target.kind === 'system' || target.kind === 'type-search';
  const query = searched ? new URLSearchParams(req.query).toString() : '';
  return {
    // The record of an access to what is kept from the representatives is kept from them too.
    ...(touched.confidential ? { meta: { security: [CONFIDENTIAL_FROM_REPRESENTATIVES] } } : {}),
    ...build({
      actor: req.actor,
      interaction: interactionOf(req),
      outcome,
      patients: touched.patients,
      resources: touched.resources,
      ...(query ? { query } : {}),
      ...('type' in target ? { type: target.type } : {}),
      ...(reason ? { reason } : {}),
      ...transactionOf(req),
      recorded: ctx.now(),
      server: ctx.baseUrl,
    }),
    id: auditEventId(),
  };
}

/**
 * The store op that records a write, joined to the write's transaction. The record itself is
 * committed with the write; its index rows may come later (deferIndex), never after a search that
 * could find it (docs/performance.md).
 */
export function auditOp(ctx: FhirContext, req: FhirRequest, outcome: AuditOutcome, touched: Touched, reason?: string): WriteOp {
  const resource = event(ctx, req, outcome, touched, reason);
  return { kind: 'create', resource, index: indexEntries(resource), creator: AUDIT_CREATOR, deferIndex: true };
}

/** The record of an interaction that writes nothing itself, handed to the audit log (serialised there at once). */
function readRecord(ctx: FhirContext, req: FhirRequest, outcome: AuditOutcome, touched: Touched, reason?: string): AuditEvent & { id: string } {
  return event(ctx, req, outcome, touched, reason, sharedAuditEvent);
}

/** Records a finished interaction (unless its write already did) before the answer is sent. */
export async function recordSuccess(ctx: FhirContext, req: FhirRequest, response: FhirResponse): Promise<void> {
  if (!ctx.audit || response.audited || !req.actor) return;
  if (response.denied) {
    await ctx.auditLog.write(readRecord(ctx, req, 'denied', response.denied, `${response.status} refused`));
    return;
  }
  const resources = carried(response);
  const touched = touchedBy(resources);
  // A document's bytes are in the log of the document's patient (ITI-68 retrieve).
  for (const resource of resources) {
    if (resource.resourceType !== 'Binary') continue;
    const patient = await patientOfContent(ctx, resource);
    if (patient !== undefined && !touched.patients.includes(patient)) touched.patients.push(patient);
    if (await confidentialContent(ctx, resource)) touched.confidential = true;
  }
  // BALP Query records name the patients and the query, not every resource a page returned.
  const interaction = interactionOf(req);
  const listed = interaction.startsWith('search') || interaction === 'history-type' || interaction === 'history-system' ? { ...touched, resources: [] } : touched;
  await ctx.auditLog.write(readRecord(ctx, req, 'success', listed));
}

/** Records a refused or failed interaction; what it tried to touch comes with the error, when known. */
export async function recordFailure(ctx: FhirContext, req: FhirRequest, error: unknown): Promise<void> {
  if (!ctx.audit || !req.actor) return;
  const fhir = error instanceof FhirError ? error : undefined;
  const denied = fhir !== undefined && (fhir.status === 401 || fhir.status === 403 || fhir.denied !== undefined);
  const touched = fhir?.denied ?? { resources: [], patients: [] };
  const reason = fhir ? `${fhir.status} ${fhir.issues[0]?.code ?? ''}`.trim() : 'internal error';
  await ctx.auditLog.write(readRecord(ctx, req, denied ? 'denied' : 'failure', touched, reason));
}
