// fhir/access: where the FHIR interactions meet authorization and consent: the token's scopes
// (auth/), the patient compartment of patient/ scopes, and the consent policy (policy/). Every
// interaction calls these before it reads or writes, so that batch and transaction entries are
// checked exactly like requests.

import type { Patient, Resource, Subscription } from '@medplum/fhirtypes';
import { subscriptionWrite } from './subscriptions.js';
import { authorize, type Access } from '../auth/authorize.js';
import type { Actor } from '../auth/actor.js';
import type { Permission } from '../auth/scopes.js';
import { compartmentCondition, compartmentFree, inCompartment, patientOf, securityContextOf } from '../policy/compartment.js';
import { CONFIDENTIAL_FROM_REPRESENTATIVES, hasLabel, type Decision, type WriteAction } from '../policy/decide.js';
import type { KnownPatients } from '../policy/known.js';
import { withDerivedActive, type AccountEventKind } from '../policy/account.js';
import type { ReadResult, SearchPage, SearchQuery, Version, WriteOp } from '../store/port.js';
import type { Condition, SearchPlan } from '../search/types.js';
import type { FhirContext, FhirRequest } from './context.js';
import { FhirError, Forbidden, NotFound, Unauthorized, Unprocessable } from '../base/outcome.js';

export type { Access };

export function access(req: FhirRequest, type: string, permission: Permission): Access {
  // Defence in depth: the auth hook refuses unauthenticated requests before they get here.
  if (!req.actor) throw new Unauthorized('Authentication is required');
  // Organisations never read or write record content, whatever their scopes or a consent say; the
  // archive service reads (only) archived records, as the policy decides (decide.ts decideArchive).
  if (req.actor.kind === 'organisation' && (req.actor.role !== 'archive' || (permission !== 'r' && permission !== 's'))) throw new Forbidden(`A ${req.actor.role} never ${req.actor.role === 'archive' ? 'changes' : 'accesses'} record content`);
  // The directory of professionals and organisations is no patient's data: a compartment-limited
  // token reads it too (to see who accessed the record); reaches() and restrict() let it through.
  return authorize(req.actor, type, permission);
}

/** Whether the access reaches this resource's compartment (always, unless restricted). */
export function reaches(granted: Access, resource: Resource): boolean {
  return !granted.compartment || compartmentFree(resource.resourceType) || inCompartment(resource, granted.compartment);
}

/**
 * reaches(), and for a Binary with a securityContext, whether the access reaches that resource:
 * a patient reads the bytes of the documents of their own record (and no one else's).
 */
async function reachable(ctx: FhirContext, granted: Access, resource: Resource): Promise<boolean> {
  if (reaches(granted, resource)) return true;
  const context = securityContextOf(resource);
  if (!context) return false;
  const target = await ctx.store.read(...context);
  return target.kind === 'found' && target.version.resource !== undefined && reaches(granted, target.version.resource);
}

/** The patient a resource is about; for a document's bytes (Binary), the patient of the document. */
export async function patientOfContent(ctx: FhirContext, resource: Resource): Promise<string | undefined> {
  const patient = patientOf(resource);
  const context = patient === undefined ? securityContextOf(resource) : undefined;
  if (!context) return patient;
  const target = await ctx.store.read(...context);
  return target.kind === 'found' && target.version.resource ? patientOf(target.version.resource) : undefined;
}

/**
 * A write must leave the resource inside the reachable compartments. A Binary with a
 * securityContext (a document's bytes, deposited with it) is judged by that context when read.
 */
export function assertWritable(granted: Access, resource: Resource): void {
  if (!reaches(granted, resource) && !securityContextOf(resource)) throw new Forbidden(`${resource.resourceType} would be outside the compartment of patient ${granted.compartment?.join(', ')}, which is all this token reaches`);
}

/** The error a refusal answers: a hidden resource reads exactly like one that does not exist. */
function refusalError(decision: Extract<Decision, { permit: false }>, what: string): FhirError {
  if (decision.status === 404) return new NotFound(what);
  if (decision.status === 422) return Unprocessable.of((decision.issues ?? [{ expression: '', diagnostics: decision.reason }]).map((i) => ({ code: 'business-rule' as const, diagnostics: i.diagnostics, ...(i.expression ? { expression: [i.expression] } : {}) })));
  return new Forbidden(`Refused: ${decision.reason}`);
}

/** Names the patient of a refused resource in the error, so that the attempt is in that patient's access log. */
async function refusal(ctx: FhirContext, error: FhirError, resource: Resource, what: string): Promise<FhirError> {
  const patient = await patientOfContent(ctx, resource);
  error.denied = { resources: [what], patients: patient ? [patient] : [], ...((await confidentialContent(ctx, resource)) ? { confidential: true } : {}) };
  return error;
}

/**
 * Whether a resource is kept confidential from the patient's representatives; for a document's
 * bytes (Binary), whether the document is. The access log's records of it are too (audited.ts).
 */
export async function confidentialContent(ctx: FhirContext, resource: Resource): Promise<boolean> {
  if (hasLabel(resource, CONFIDENTIAL_FROM_REPRESENTATIVES)) return true;
  const context = securityContextOf(resource);
  if (!context) return false;
  const target = await ctx.store.read(...context);
  return target.kind === 'found' && target.version.resource !== undefined && hasLabel(target.version.resource, CONFIDENTIAL_FROM_REPRESENTATIVES);
}

/** The policy's read verdict on one resource: the permit, or the error to throw. */
async function policyVerdict(ctx: FhirContext, granted: Access, resource: Resource, creator: string | undefined, what: string): Promise<Extract<Decision, { permit: true }> | FhirError> {
  if (!(await reachable(ctx, granted, resource))) return await refusal(ctx, new NotFound(what), resource, what);
  const decision = await ctx.policy.decide(granted.actor, resource, creator);
  if (decision.permit) return decision;
  return await refusal(ctx, refusalError(decision, what), resource, what);
}

/** Throws unless the actor may read this resource (created by `creator`); returns the permit. */
export async function assertAllowed(ctx: FhirContext, granted: Access, resource: Resource, creator: string | undefined, what: string): Promise<Extract<Decision, { permit: true }>> {
  const verdict = await policyVerdict(ctx, granted, resource, creator, what);
  if (verdict instanceof FhirError) throw verdict;
  return verdict;
}

/** A permitted write, with the writes that go with it in its transaction (fhir/create obligations). */
export type Permit = Extract<Decision, { permit: true }> & { ops?: WriteOp[] };

/** What a write replaces or removes: the stored content and its creator. */
export interface Previous {
  resource: Resource;
  creator?: string;
}

/**
 * The content a stored result stands for: its resource, or for a tombstone the version before it
 * (so that even "deleted" is decided on what it was). Undefined when there is none (missing).
 */
export async function previousOf(ctx: FhirContext, result: ReadResult): Promise<Previous | undefined> {
  if (result.kind === 'missing') return undefined;
  let content = result.version.resource;
  if (!content && result.version.versionId > 1) {
    const before = await ctx.store.readVersion(result.version.type, result.version.id, result.version.versionId - 1);
    content = before.kind === 'missing' ? undefined : before.version.resource;
  }
  return content ? { resource: content, ...(result.version.creator !== undefined ? { creator: result.version.creator } : {}) } : undefined;
}

/**
 * Throws unless the actor may make this write (policy/write.ts): create `after`, replace
 * `before` with `after`, or delete `before`; `account`: the account transition it carries (the
 * account operations alone set it). What it replaces must be readable (else 404, like a
 * resource that does not exist), and the new content must stay inside the token's compartments.
 * Returns the permit with its obligations (the stamps it bumps, the writes that go with it).
 */
export async function assertWrite(ctx: FhirContext, granted: Access, action: WriteAction, change: { before?: Previous; after?: Resource; account?: AccountEventKind }, what: string): Promise<Permit> {
  const { before, after } = change;
  // What it replaces must be readable before anything else is said of the write, so that a
  // hidden resource answers as a missing one, whatever the new content.
  if (before) await assertAllowed(ctx, granted, before.resource, before.creator, what);
  if (after) assertWritable(granted, after);
  const decision = await ctx.policy.decideWrite(granted.actor, action, change);
  if (decision.permit) {
    // What the server itself sets on a Subscription, and the handshake it asks for (fhir/subscriptions).
    if (after?.resourceType === 'Subscription') return { ...decision, ops: subscriptionWrite(ctx, granted.actor, after as Subscription, before?.resource as Subscription | undefined) };
    // The server sets a Patient's `active` from its account (policy/account.ts).
    if (after?.resourceType === 'Patient') Object.assign(after, withDerivedActive(after as Patient));
    return decision;
  }
  throw await refusal(ctx, refusalError(decision, what), after ?? (before as Previous).resource, what);
}

/**
 * Checks a stored result before it is answered: a resource the actor may not see reads as
 * missing (404). A tombstone has no content: the version before it decides, so that even
 * "deleted" is not revealed.
 */
export async function assertReadable(ctx: FhirContext, granted: Access, result: ReadResult, what: string): Promise<void> {
  if (result.kind === 'missing') return;
  const previous = await previousOf(ctx, result);
  if (!previous) throw new NotFound(what);
  await assertAllowed(ctx, granted, previous.resource, previous.creator, what);
}

/** The versions of a page the actor may see (defence in depth: the query was already restricted). */
export async function visible(ctx: FhirContext, granted: Access, versions: Version[], log: (message: string) => void): Promise<Version[]> {
  const candidates: (Version & { resource: Resource })[] = [];
  for (const version of versions) {
    if (!version.resource) continue;
    if (await reachable(ctx, granted, version.resource)) candidates.push(version as Version & { resource: Resource });
    else log(`policy: ${version.type}/${version.id} matched a restricted query outside the token's compartment`);
  }
  // One consent state read per patient of the page (Policy.decideAll), as decide() would decide each.
  const decisions = await ctx.policy.decideAll(granted.actor, candidates.map((v) => ({ resource: v.resource, ...(v.creator !== undefined ? { creator: v.creator } : {}) })));
  const kept: Version[] = [];
  candidates.forEach((version, i) => {
    if (decisions[i].permit) kept.push(version);
    // The query restriction and decide() must agree; a disagreement is a bug worth a loud log.
    else log(`policy: ${version.type}/${version.id} matched a restricted query but decide() refused it`);
  });
  return kept;
}

/** Policy conditions for the types of a plan: when they differ, each type gets its own. */
function policyFor(ctx: FhirContext, granted: Access, types: string[], known?: KnownPatients): Condition[] {
  if (types.length === 1) return ctx.policy.conditions(granted.actor, types[0], known);
  const groups = new Map<string, { types: string[]; conditions: Condition[] }>();
  for (const type of types) {
    const conditions = ctx.policy.conditions(granted.actor, type);
    const key = JSON.stringify(conditions);
    const group = groups.get(key) ?? { types: [], conditions };
    group.types.push(type);
    groups.set(key, group);
  }
  const all = [...groups.values()];
  if (all.length <= 1) return all[0]?.conditions ?? [];
  return [{ kind: 'any', of: all.map((g) => ({ kind: 'all', of: [{ kind: 'types', types: g.types }, ...g.conditions] })) }];
}

/** A compartment-limited token reaches, among other types, only its compartments (the directory is open). */
function compartmentFor(granted: Access, types: string[]): Condition[] {
  if (!granted.compartment) return [];
  const compartment = granted.compartment;
  const of = types.map((type): Condition => {
    if (compartmentFree(type)) return { kind: 'types', types: [type] };
    const condition = compartmentCondition(type, compartment);
    return condition ? { kind: 'all', of: [{ kind: 'types', types: [type] }, condition] } : { kind: 'any', of: [] };
  });
  return [{ kind: 'any', of }];
}

/**
 * Chains and _has reach other resources: their conditions get those types' restrictions too (the
 * policy, and a token's compartment), so that no probe learns of a resource the caller cannot see.
 */
function restrictNested(ctx: FhirContext, granted: Access, conditions: Condition[]): Condition[] {
  return conditions.map((condition): Condition => {
    switch (condition.kind) {
      case 'chain': {
        const policy = identityMatch(granted.actor, condition.targetTypes, condition.where) ? [] : policyFor(ctx, granted, condition.targetTypes);
        return { ...condition, where: [...restrictNested(ctx, granted, condition.where), ...policy, ...compartmentFor(granted, condition.targetTypes)] };
      }
      case 'has':
        return { ...condition, where: [...restrictNested(ctx, granted, condition.where), ...policyFor(ctx, granted, [condition.sourceType]), ...compartmentFor(granted, [condition.sourceType])] };
      default:
        return condition;
    }
  });
}

/**
 * The plan restricted to what the access reaches: the compartment, the policy, nested searches too.
 * `known`: the consent state of the patients the plan is pinned to (Policy.known), if looked up.
 */
export function restrict(ctx: FhirContext, granted: Access, plan: SearchPlan, known?: KnownPatients): SearchPlan {
  const where = [...restrictNested(ctx, granted, plan.where), ...policyFor(ctx, granted, plan.types, known)];
  if (granted.compartment && !plan.types.every((type) => compartmentFree(type))) {
    if (plan.types.length !== 1) throw new Forbidden('A token limited to a patient compartment searches one resource type at a time');
    const condition = compartmentCondition(plan.types[0], granted.compartment);
    if (!condition) throw new Forbidden(`${plan.types[0]} resources are not part of a patient compartment, which is all this token reaches`);
    where.push(condition);
  }
  return { ...plan, where };
}

/** Whether the access sees everything of these types (no compartment, no policy condition). */
export function unrestricted(ctx: FhirContext, granted: Access, types: string[]): boolean {
  return !granted.compartment && types.every((type) => ctx.policy.conditions(granted.actor, type).length === 0);
}

/**
 * A plan as the request's token may run it: search permission on every type (403 otherwise),
 * then one restriction (restrict() covers every type of the plan at once). A search pinned to
 * patients (`?patient=p1`) has their consent state looked up once, instead of the query checking
 * it for every candidate row.
 */
export async function searchable(ctx: FhirContext, req: FhirRequest, plan: SearchPlan): Promise<{ plan: SearchPlan; granted: Access }> {
  const granted = plan.types.map((type) => access(req, type, 's'));
  // The grants differ only in whether a compartment applies; the narrowest one decides.
  const narrowest = granted.find((g) => g.compartment) ?? granted[0];
  const known = plan.types.length === 1 ? await ctx.policy.known(narrowest.actor, plan.types[0], plan.where) : undefined;
  return { plan: restrict(ctx, narrowest, plan, known), granted: narrowest };
}

/**
 * Identity resolution: matching a Patient by an exact identifier (the INS). A vendor system or a
 * professional files and finds data for a patient it knows by INS without being able to read that
 * patient's record: the match only becomes the reference it writes (a conditional reference), or
 * selects among resources it may see anyway (a `patient.identifier` chain). The Patient itself
 * stays unreadable, so the read restriction is not applied to that match, for these actors only.
 */
function identityMatch(actor: Actor | undefined, types: string[], where: Condition[]): boolean {
  return (
    (actor?.kind === 'system' || actor?.kind === 'practitioner') &&
    types.length === 1 &&
    types[0] === 'Patient' &&
    where.length > 0 &&
    where.every((c) => c.kind === 'token' && c.param === 'identifier' && !c.not && c.values.every((v) => typeof v.system === 'string' && v.system !== '' && typeof v.code === 'string'))
  );
}

/** Resolves a conditional reference of a write: an identity match, or a search as the token may run it. */
export async function resolveReference(ctx: FhirContext, req: FhirRequest, plan: SearchPlan): Promise<SearchPage> {
  return (await conditionalMatches(ctx, req, plan)).page;
}

/**
 * The matches of a conditional write's criteria (If-None-Exist, conditional update and delete,
 * conditional references), and the plan the store re-checks inside its transaction: the
 * criteria under the caller's restrictions, so that a resource the caller cannot see never
 * matches (docs/consent.md: a hidden resource is as if it did not exist). The one exception is
 * identity by INS (`identity`): a Patient matched by an exact identifier, which the caller may
 * name without reading it.
 */
export async function conditionalMatches(ctx: FhirContext, req: FhirRequest, plan: SearchPlan): Promise<{ plan: SearchPlan; page: SearchPage; identity: boolean }> {
  if (identityMatch(req.actor, plan.types, plan.where)) {
    access(req, 'Patient', 's'); // the token still needs to allow searching Patients
    return { plan, page: await ctx.store.search(plan, { count: 2 }), identity: true };
  }
  const restricted = (await searchable(ctx, req, plan)).plan;
  return { plan: restricted, page: await ctx.store.search(restricted, { count: 2 }), identity: false };
}
